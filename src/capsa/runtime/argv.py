"""A small command-line parser with runc's conventions.

``argparse`` with the ``gettext``, ``locale`` and ``shutil`` it pulls in costs about
10 ms per start, a third of a ``runc run``; this parser costs nothing to import.
Global flags come before the verb; a verb's flags may come before or between its
positionals; a verb with ``rest`` takes everything after its positionals verbatim
(``exec ID sh -c ...``), and ``--`` ends the flags.
"""

from __future__ import annotations

import sys

from capsa.errors import InvalidArgument
from capsa.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

BOOL, VALUE, INT, APPEND = "bool", "value", "int", "append"


@record
class Flag:
    names: tuple[str, ...]
    kind: str = VALUE
    default: Any = None
    help: str = ""

    @property
    def dest(self) -> str:
        longest = max(self.names, key=len)
        return longest.lstrip("-").replace("-", "_")


@record
class Verb:
    name: str
    help: str = ""
    flags: list[Flag] = field(default_factory=list)
    positionals: tuple[str, ...] = ()
    optional: tuple[tuple[str, str], ...] = ()  # (name, default)
    rest: str | None = None


class Args:
    """Parsed values as attributes (``args.bundle``, ``args.id``)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)


def _defaults(flags: list[Flag]) -> dict[str, Any]:
    return {
        f.dest: ([] if f.kind == APPEND else (False if f.kind == BOOL else f.default))
        for f in flags
    }


def _take_flag(
    arg: str, argv: list[str], i: int, table: dict[str, Flag], values: dict[str, Any]
) -> int:
    """Consume the flag at ``argv[i]``; return the index after it."""
    name, eq, inline = arg.partition("=")
    flag = table.get(name)
    if flag is None:
        raise InvalidArgument(f"unknown flag {name}")
    if flag.kind == BOOL:
        values[flag.dest] = inline.lower() not in ("false", "0") if eq else True
        return i + 1
    if eq:
        value, nxt = inline, i + 1
    elif i + 1 < len(argv):
        value, nxt = argv[i + 1], i + 2
    else:
        raise InvalidArgument(f"flag {name} needs a value")
    if flag.kind == INT:
        try:
            values[flag.dest] = int(value)
        except ValueError:
            raise InvalidArgument(f"flag {name}: {value!r} is not a number") from None
    elif flag.kind == APPEND:
        values[flag.dest].append(value)
    else:
        values[flag.dest] = value
    return nxt


def _parse_flags(
    argv: list[str],
    flags: list[Flag],
    stop_at_positional: bool,
) -> tuple[dict[str, Any], list[str]]:
    """Flags in ``argv`` -> (values, positionals in order, with the rest after '--')."""
    table = {n: f for f in flags for n in f.names}
    values = _defaults(flags)
    positionals: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            positionals.extend(argv[i:])
            break
        if arg.startswith("-") and len(arg) > 1 and not (stop_at_positional and positionals):
            i = _take_flag(arg, argv, i, table, values)
            continue
        positionals.append(arg)
        if stop_at_positional:
            positionals.extend(argv[i + 1 :])
            break
        i += 1
    return values, positionals


def parse_verb(verb: Verb, argv: list[str]) -> dict[str, Any]:
    needed = len(verb.positionals)
    # with a remainder, flags stop at the last required positional
    if verb.rest is not None:
        values, pos = _parse_flags_until(argv, verb, needed)
    else:
        values, pos = _parse_flags(argv, verb.flags, stop_at_positional=False)
    if pos and pos[0] == "--" and verb.rest is None:
        pos = pos[1:]
    if len(pos) < needed:
        missing = verb.positionals[len(pos)]
        raise InvalidArgument(f"{verb.name}: missing {missing.replace('_', '-')}")
    for name, value in zip(verb.positionals, pos, strict=False):
        values[name] = value
    extra = pos[needed:]
    for name, default in verb.optional:
        values[name] = extra.pop(0) if extra else default
    if verb.rest is not None:
        values[verb.rest] = extra[1:] if extra[:1] == ["--"] else extra
    elif extra:
        raise InvalidArgument(f"{verb.name}: unexpected argument {extra[0]!r}")
    return values


def _parse_flags_until(
    argv: list[str],
    verb: Verb,
    needed: int,
) -> tuple[dict[str, Any], list[str]]:
    table = {n: f for f in verb.flags for n in f.names}
    values = _defaults(verb.flags)
    pos: list[str] = []
    i = 0
    while i < len(argv) and len(pos) < needed:
        arg = argv[i]
        if arg.startswith("-") and len(arg) > 1 and arg != "--":
            i = _take_flag(arg, argv, i, table, values)
        else:
            if arg != "--":
                pos.append(arg)
            i += 1
    return values, pos + argv[i:]


def usage(prog: str, global_flags: list[Flag], verbs: list[Verb]) -> str:
    lines = [f"usage: {prog} [global flags] COMMAND [flags] [arguments]", "", "commands:"]
    lines += [f"  {v.name:<10} {v.help}" for v in verbs]
    lines += ["", "global flags:"]
    lines += [f"  {', '.join(f.names):<24} {f.help}" for f in global_flags]
    return "\n".join(lines)


def verb_usage(prog: str, verb: Verb) -> str:
    args = " ".join(p.upper() for p in verb.positionals)
    opt = " ".join(f"[{n.upper()}]" for n, _ in verb.optional)
    rest = f" [{verb.rest.upper()}...]" if verb.rest else ""
    lines = [f"usage: {prog} {verb.name} [flags] {args} {opt}{rest}".rstrip(), "", verb.help]
    if verb.flags:
        lines += ["", "flags:"]
        lines += [f"  {', '.join(f.names):<24} {f.help}" for f in verb.flags]
    return "\n".join(lines)


def parse(prog: str, argv: list[str], global_flags: list[Flag], verbs: list[Verb]) -> Args:
    """Parse ``argv`` (without the program name); print help and exit for -h/--help."""
    by_name = {v.name: v for v in verbs}
    values, rest = _parse_flags(argv, global_flags, stop_at_positional=True)
    if values.get("help") or not (rest or values.get("version")):
        sys.stdout.write(usage(prog, global_flags, verbs) + "\n")
        raise SystemExit(0)
    if not rest:
        return Args(dict(values, verb=None))
    name, verb_argv = rest[0], rest[1:]
    verb = by_name.get(name)
    if verb is None:
        raise InvalidArgument(f"unknown command {name!r}")
    if verb_argv[:1] in (["-h"], ["--help"]):
        sys.stdout.write(verb_usage(prog, verb) + "\n")
        raise SystemExit(0)
    values.update(parse_verb(verb, verb_argv))
    values["verb"] = name
    return Args(values)
