"""``--change`` instructions (``docker import``/``commit``): Dockerfile lines applied to a config.

Supported, as Docker accepts them: CMD, ENTRYPOINT (JSON array or shell form ->
``[shell..., "cmd"]``), ENV and LABEL (``k=v`` pairs with quotes, or the legacy
``k v`` form), EXPOSE (``80``, ``80/tcp``, ``53/udp``, ranges), WORKDIR, USER,
VOLUME (JSON array or words), STOPSIGNAL and ONBUILD. ``$VAR``/``${VAR}`` are
expanded from the config's environment where a Dockerfile expands them.
"""

from __future__ import annotations

import json
import posixpath
import re
import signal

from capsa.errors import InvalidArgument
from capsa.oci.codec import from_dict, to_dict
from capsa.oci.image_spec import ContainerConfig

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

DEFAULT_SHELL = ["/bin/sh", "-c"]
DOCKERFILE_INSTRUCTIONS = frozenset(
    {
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    }
)
_LINE_RE = re.compile(r"^\s*(\S+)\s*(.*?)\s*$", re.DOTALL)
_PORT_RE = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?(?:/([A-Za-z]+))?$")
_VAR_RE = re.compile(
    r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))"
)
_PROTOCOLS = ("tcp", "udp", "sctp")


def apply_changes(changes: Iterable[str], config: ContainerConfig | None = None) -> ContainerConfig:
    """A copy of ``config`` (or an empty one) with every instruction applied in order."""
    state = _State(from_dict(ContainerConfig, to_dict(config)) if config else ContainerConfig())
    for change in changes:
        for line in _lines(change):
            state.apply(line)
    return state.config


def _lines(change: str) -> list[str]:
    joined = re.sub(r"\\[ \t]*\r?\n", "", change)
    lines = re.split(r"\r?\n", joined)
    return [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


class _State:
    def __init__(self, config: ContainerConfig) -> None:
        self.config = config
        self.cmd_set = False
        self.handlers: dict[str, Callable[[str], None]] = {
            "CMD": self.cmd,
            "ENTRYPOINT": self.entrypoint,
            "ENV": self.env,
            "EXPOSE": self.expose,
            "WORKDIR": self.workdir,
            "USER": self.user,
            "LABEL": self.label,
            "VOLUME": self.volume,
            "STOPSIGNAL": self.stopsignal,
            "ONBUILD": self.onbuild,
        }

    def apply(self, line: str) -> None:
        match = _LINE_RE.match(line)
        assert match is not None  # _lines drops blank lines
        name, rest = match.group(1).upper(), match.group(2)
        handler = self.handlers.get(name)
        if handler is None:
            raise InvalidArgument(f"--change: unsupported instruction {name}")
        if not rest:
            raise InvalidArgument(f"--change: {name} requires at least one argument")
        handler(rest)

    def expand(self, raw: str) -> str:
        return process_word(raw, env_map(self.config.env or []))

    def command(self, rest: str) -> list[str]:
        parsed = json_array(rest)
        if parsed is not None:
            return parsed
        return [*(self.config.shell or DEFAULT_SHELL), rest]

    def cmd(self, rest: str) -> None:
        self.config.cmd = self.command(rest)
        self.cmd_set = True

    def entrypoint(self, rest: str) -> None:
        self.config.entrypoint = self.command(rest)
        if not self.cmd_set:  # as in a Dockerfile: a new ENTRYPOINT resets an inherited CMD
            self.config.cmd = None

    def env(self, rest: str) -> None:
        env = list(self.config.env or [])
        for key, value in self.pairs("ENV", rest):
            env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={value}"]
        self.config.env = env

    def label(self, rest: str) -> None:
        labels = dict(self.config.labels or {})
        labels.update(self.pairs("LABEL", rest))
        self.config.labels = labels

    def pairs(self, name: str, rest: str) -> list[tuple[str, str]]:
        words = split_words(rest)
        if split_assignment(words[0]) is None:  # legacy form: ``ENV key value with spaces``
            key = self.expand(words[0])
            value = rest[len(words[0]) :].strip()
            if not value:
                raise InvalidArgument(f"--change: {name} {key}: missing value")
            return [(key, self.expand(value))]
        out = []
        for word in words:
            assignment = split_assignment(word)
            if assignment is None:
                raise InvalidArgument(f"--change: {name}: expected name=value, got {word!r}")
            key = self.expand(assignment[0])
            if not key:
                raise InvalidArgument(f"--change: {name}: names can not be blank")
            out.append((key, self.expand(assignment[1])))
        return out

    def expose(self, rest: str) -> None:
        ports = dict(self.config.exposed_ports or {})
        for word in split_words(rest):
            for port in parse_ports(self.expand(word)):
                ports[port] = {}
        self.config.exposed_ports = ports

    def workdir(self, rest: str) -> None:
        path = self.expand(rest)
        if not path:
            raise InvalidArgument("--change: WORKDIR: empty path")
        base = self.config.working_dir or "/"
        self.config.working_dir = posixpath.normpath(posixpath.join("/", base, path))

    def user(self, rest: str) -> None:
        value = self.expand(rest)
        if not value or len(value.split()) != 1:
            raise InvalidArgument(f"--change: USER requires exactly one argument, got {rest!r}")
        self.config.user = value

    def volume(self, rest: str) -> None:
        parsed = json_array(rest)
        paths = parsed if parsed is not None else split_words(rest)
        volumes = dict(self.config.volumes or {})
        for raw in paths:
            path = self.expand(raw).strip()
            if not path:
                raise InvalidArgument("--change: VOLUME: empty path")
            volumes[path] = {}
        self.config.volumes = volumes

    def stopsignal(self, rest: str) -> None:
        value = self.expand(rest)
        if not valid_signal(value):
            raise InvalidArgument(f"--change: STOPSIGNAL: invalid signal {value!r}")
        self.config.stop_signal = value

    def onbuild(self, rest: str) -> None:
        trigger = rest.split(None, 1)[0].upper()
        if trigger in ("ONBUILD", "FROM", "MAINTAINER"):
            raise InvalidArgument(f"--change: ONBUILD: {trigger} isn't allowed as a trigger")
        if trigger not in DOCKERFILE_INSTRUCTIONS:
            raise InvalidArgument(f"--change: ONBUILD: unknown instruction {trigger}")
        self.config.on_build = [*(self.config.on_build or []), rest]


def json_array(text: str) -> list[str] | None:
    """The JSON form of an instruction (``["a", "b"]``), or None for the shell form."""
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # not JSON (or nested past the parser's depth)
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def split_words(text: str) -> list[str]:
    """Split on unquoted whitespace; quotes and backslashes stay in the words."""
    words: list[str] = []
    current: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and quote != "'" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch.isspace():
            if current:
                words.append("".join(current))
                current = []
            i += 1
            continue
        current.append(ch)
        i += 1
    if quote:
        raise InvalidArgument(f"--change: unmatched quote in {text!r}")
    if current:
        words.append("".join(current))
    return words


def split_assignment(word: str) -> tuple[str, str] | None:
    """``key=value`` split at the first unquoted, unescaped ``=`` (raw halves)."""
    quote = ""
    i = 0
    while i < len(word):
        ch = word[i]
        if ch == "\\" and quote != "'":
            i += 2
            continue
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "=":
            return word[:i], word[i + 1 :]
        i += 1
    return None


def process_word(raw: str, env: dict[str, str]) -> str:
    """Remove quotes and backslashes, expanding variables outside single quotes."""
    out: list[str] = []
    quote = ""
    i = 0
    while i < len(raw):
        ch = raw[i]
        if quote == "'":
            if ch == "'":
                quote = ""
            else:
                out.append(ch)
        elif ch == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1]
            keep = quote == '"' and nxt not in '"\\$'
            out.append(ch + nxt if keep else nxt)
            i += 1
        elif ch == "$" and (match := _VAR_RE.match(raw, i)):
            out.append(_expand(match, env))
            i = match.end() - 1
        elif ch in "'\"" and (not quote or ch == quote):
            quote = "" if quote else ch
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _expand(match: re.Match[str], env: dict[str, str]) -> str:
    name = match.group(1) or match.group(4)
    value = env.get(name, "")
    op, word = match.group(2), match.group(3) or ""
    if op == "-":
        return value or word
    if op == "+":
        return word if value else ""
    return value


def env_map(env: list[str]) -> dict[str, str]:
    return dict(e.partition("=")[::2] for e in env)


def parse_ports(text: str) -> list[str]:
    """``8000-8001/udp`` -> ``["8000/udp", "8001/udp"]``."""
    match = _PORT_RE.match(text)
    if not match:
        raise InvalidArgument(f"--change: EXPOSE: invalid port {text!r}")
    start = int(match.group(1))
    end = int(match.group(2) or start)
    proto = (match.group(3) or "tcp").lower()
    if proto not in _PROTOCOLS:
        raise InvalidArgument(f"--change: EXPOSE: invalid protocol {proto!r}")
    if end > 65535 or end < start:
        raise InvalidArgument(f"--change: EXPOSE: invalid port range {text!r}")
    return [f"{port}/{proto}" for port in range(start, end + 1)]


def valid_signal(text: str) -> bool:
    """A signal number or name (``9``, ``KILL``, ``SIGTERM``, ``SIGRTMIN+3``)."""
    if text.isdigit():
        return 1 <= int(text) <= int(signal.SIGRTMAX)
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    if name in signal.Signals.__members__:
        return True
    match = re.fullmatch(r"SIGRTMIN\+(\d+)|SIGRTMAX-(\d+)", name)
    if not match:
        return False
    offset = int(match.group(1) or match.group(2))
    return offset <= int(signal.SIGRTMAX) - int(signal.SIGRTMIN)
