"""Image references with Docker's normalization.

``busybox`` -> ``docker.io/library/busybox:latest``; ``host:5000/a/b:tag``;
``name@sha256:...``. The first path component is a registry host when it contains
a ``.`` or a ``:`` or is ``localhost``; otherwise the image lives on Docker Hub.
"""

from __future__ import annotations

import re

from capsa.errors import InvalidArgument
from capsa.record import record

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"  # Go's \w: ASCII only
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_PATTERNS = {  # matched whole (``fullmatch``: a ``$`` would let a final newline in)
    "path": rf"{_COMPONENT}(?:/{_COMPONENT})*",
    "domain": _DOMAIN,
    "tag": _TAG,
    "digest": _DIGEST,
    "id": r"[a-f0-9]{64}",
}
_COMPILED: dict[str, re.Pattern[str]] = {}


def _match(kind: str, text: str) -> bool:
    """Compiled on first use: the CLI's start-up should not pay for every pattern."""
    pattern = _COMPILED.get(kind)
    if pattern is None:
        pattern = _COMPILED[kind] = re.compile(_PATTERNS[kind])
    return pattern.fullmatch(text) is not None


@record(frozen=True)
class Reference:
    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def name(self) -> str:
        """The full normalized reference: ``docker.io/library/busybox:latest``."""
        out = self.repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @property
    def familiar_repository(self) -> str:
        """``busybox`` for Docker Hub's official images, as docker prints them."""
        if self.domain == DEFAULT_DOMAIN:
            return self.path.removeprefix(OFFICIAL_PREFIX)
        return self.repository

    @property
    def familiar(self) -> str:
        out = self.familiar_repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    def with_tag(self, tag: str) -> Reference:
        if not _match("tag", tag):
            raise InvalidArgument(f"invalid tag {tag!r}")
        return Reference(self.domain, self.path, tag, None)

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.domain, self.path, None, digest)

    def __str__(self) -> str:
        return self.name


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    return domain, path


def parse(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalize ``text``; InvalidArgument names what is wrong."""
    raw = text.strip()
    if not raw:
        raise InvalidArgument("invalid reference format: empty name")
    name, digest = raw, None
    if "@" in raw:
        name, _, digest = raw.partition("@")
        if not _match("digest", digest):
            raise InvalidArgument(f"invalid reference format: bad digest in {text!r}")
    tag = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not _match("tag", tag):
            raise InvalidArgument(f"invalid reference format: bad tag in {text!r}")
    domain, path = _split_domain(name)
    if not _match("domain", domain):
        raise InvalidArgument(f"invalid reference format: bad registry host in {text!r}")
    if not _match("path", path):
        hint = " (repository names must be lowercase)" if path != path.lower() else ""
        raise InvalidArgument(f"invalid reference format: {text!r}{hint}")
    if len(f"{domain}/{path}") > 255:
        raise InvalidArgument(f"invalid reference format: {text!r} is too long")
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def is_image_id(text: str) -> bool:
    """A full or ``sha256:``-prefixed 64-hex image id."""
    return bool(_match("id", text.removeprefix("sha256:")))


def is_short_id(text: str) -> bool:
    """A prefix of an image id (at least 4 hex digits), as ``docker rmi 3f5`` takes."""
    return 4 <= len(text) <= 64 and all(c in "0123456789abcdef" for c in text)


def familiar_match(pattern: str, ref: Reference) -> bool:
    """Docker's ``reference.FamiliarMatch`` (``images REPO``, ``--filter reference=``):
    ``pattern`` matches the familiar name with its tag or digest (``busybox:1.36``) or
    the familiar repository alone (``busybox``), as Go's ``path.Match`` does: ``*`` and
    ``?`` stop at ``/``. InvalidArgument for a malformed pattern."""
    regex = re.compile(_path_regex(pattern))
    return bool(regex.fullmatch(ref.familiar) or regex.fullmatch(ref.familiar_repository))


def _path_regex(pattern: str) -> str:
    """Go's ``path.Match`` pattern as a regular expression."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            item, i = _char_class(pattern, i + 1)
            out.append(item)
            continue
        else:
            char, i = _pattern_char(pattern, i)
            out.append(re.escape(char))
            continue
        i += 1
    return "".join(out)


def _char_class(pattern: str, i: int) -> tuple[str, int]:
    """``[^a-z...]`` from just after its ``[``: the regex and where the pattern goes on."""
    negate = pattern[i : i + 1] == "^"
    i += negate
    items: list[str] = []
    while pattern[i : i + 1] != "]" or not items:
        low, i = _pattern_char(pattern, i, in_class=True)
        high = low
        if pattern[i : i + 1] == "-":
            high, i = _pattern_char(pattern, i + 1, in_class=True)
            if high < low:
                raise InvalidArgument(f"syntax error in pattern: {pattern}")
        items.append(re.escape(low) + ("-" + re.escape(high) if high != low else ""))
    return "[" + ("^" if negate else "") + "".join(items) + "]", i + 1


def _pattern_char(pattern: str, i: int, in_class: bool = False) -> tuple[str, int]:
    """One literal character (``\\`` escapes the next) and the index after it."""
    if pattern[i : i + 1] == "\\":
        i += 1
    char = pattern[i : i + 1]
    if not char or (in_class and pattern[i - 1 : i] != "\\" and char in "-]"):
        raise InvalidArgument(f"syntax error in pattern: {pattern}")
    return char, i + 1
