"""The listing commands on a cold start, without click: ``ps``, ``images``, ``volume ls``.

With no monitor host up (nothing running), a command pays for the interpreter and its
imports itself; click alone costs more than the whole listing. ``parse`` reads the
command line of ``ps`` (``container ls``...), ``images`` (``image ls``) and ``volume
ls`` exactly as click would for the options those commands declare, and gives up
(None: click runs the command) on anything else: help, the version, an unknown or
malformed option, a value click would refuse, shell completion. ``invoke`` then calls
the same command body as click (``capsa.cli.list_*``) and ends as click's group does
(``capsa.cli.failure``): output, errors and exit codes are the same either way
(``tests/integration/test_cli_fastpath.py`` runs both on the same inputs;
``tests/unit/test_fastpath.py`` checks these option tables against click's).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

# what an option takes: nothing, a value (the last one given counts), a value per use
# (collected in order), an integer (the last one)
FLAG, VALUE, MULTIPLE, INT = "flag", "value", "multiple", "int"

# option -> (the command body's parameter, what it takes)
GLOBAL_OPTIONS = {
    "--root": ("root", VALUE),
    "--runroot": ("runroot", VALUE),
    "--config": ("config", VALUE),
    "-H": ("host", VALUE),
    "--host": ("host", VALUE),
    "-D": ("debug", FLAG),
    "--debug": ("debug", FLAG),
}
GLOBAL_ENV = {
    "root": "CAPSA_ROOT",
    "runroot": "CAPSA_RUNROOT",
    "config": "CAPSA_CONFIG",
    "host": "CAPSA_HOST",
}

PS_OPTIONS = {
    "-a": ("show_all", FLAG),
    "--all": ("show_all", FLAG),
    "-q": ("quiet", FLAG),
    "--quiet": ("quiet", FLAG),
    "-s": ("size", FLAG),
    "--size": ("size", FLAG),
    "-n": ("last", INT),
    "--last": ("last", INT),
    "-l": ("latest", FLAG),
    "--latest": ("latest", FLAG),
    "--no-trunc": ("no_trunc", FLAG),
    "-f": ("filters", MULTIPLE),
    "--filter": ("filters", MULTIPLE),
    "--format": ("fmt", VALUE),
}
IMAGES_OPTIONS = {
    "-a": ("show_all", FLAG),
    "--all": ("show_all", FLAG),
    "-q": ("quiet", FLAG),
    "--quiet": ("quiet", FLAG),
    "--digests": ("digests", FLAG),
    "--no-trunc": ("no_trunc", FLAG),
    "-f": ("filters", MULTIPLE),
    "--filter": ("filters", MULTIPLE),
    "--format": ("fmt", VALUE),
}
VOLUME_LS_OPTIONS = {
    "-q": ("quiet", FLAG),
    "--quiet": ("quiet", FLAG),
    "-f": ("filters", MULTIPLE),
    "--filter": ("filters", MULTIPLE),
    "--format": ("fmt", VALUE),
}

# command -> its options and its positional arguments (each optional, one value)
COMMANDS: dict[str, tuple[dict[str, tuple[str, str]], tuple[str, ...]]] = {
    "ps": (PS_OPTIONS, ()),
    "images": (IMAGES_OPTIONS, ("repository",)),
    "volume ls": (VOLUME_LS_OPTIONS, ()),
}
# the names click knows the commands by (``capsa.cli.containers``, ``images``, ``volumes``)
PATHS = {
    ("ps",): "ps",
    ("container", "ps"): "ps",
    ("container", "ls"): "ps",
    ("container", "list"): "ps",
    ("images",): "images",
    ("image", "ls"): "images",
    ("image", "list"): "images",
    ("volume", "ls"): "volume ls",
    ("volume", "list"): "volume ls",
}


class Call:
    """A command line the fast path runs: the command, the global settings and the
    body's keyword arguments."""

    def __init__(self, command: str, top: str, settings: dict[str, object]) -> None:
        self.command = command  # "ps", "images", "volume ls"
        self.top = top  # the top-level command's name, as click's group sees it
        self.settings = settings  # root, runroot, config, host, debug
        self.kwargs: dict[str, object] = {}


def parse(args: list[str], env: Mapping[str, str]) -> Call | None:
    """``args`` (``sys.argv[1:]``) as click would read them, or None to leave it to click."""
    if any(name.endswith("_COMPLETE") for name in env):  # click's shell completion
        return None
    settings: dict[str, object] = {"root": None, "runroot": None, "config": None, "host": None}
    settings["debug"] = False
    rest = _options(args, GLOBAL_OPTIONS, settings, interspersed=False)
    if rest is None:
        return None
    found = _command(rest)
    if found is None:
        return None
    command, consumed = found
    for key, var in GLOBAL_ENV.items():
        if settings[key] is None and env.get(var):
            settings[key] = env[var]
    options, arguments = COMMANDS[command]
    call = Call(command, rest[0], settings)
    positional = _options(rest[consumed:], options, call.kwargs, interspersed=True)
    if positional is None or len(positional) > len(arguments):
        return None
    call.kwargs.update(zip(arguments, positional, strict=False))
    return call


def _command(rest: list[str]) -> tuple[str, int] | None:
    """The command named at the start of ``rest`` and how many words name it."""
    for length in (1, 2):
        command = PATHS.get(tuple(rest[:length]))
        if command is not None:
            return command, length
    return None


def _options(
    args: list[str],
    table: Mapping[str, tuple[str, str]],
    into: dict[str, object],
    interspersed: bool,
) -> list[str] | None:
    """Take ``table``'s options out of ``args`` into ``into``; the other arguments
    (from the first one on, unless ``interspersed``), or None if click would refuse
    or treat specially anything here."""
    positional: list[str] = []
    queue = list(args)
    while queue:
        arg = queue.pop(0)
        if arg == "--":
            return positional + queue if interspersed else None
        if arg[:1] != "-" or len(arg) == 1:
            if not interspersed:
                return [arg, *queue]
            positional.append(arg)
            continue
        if not _option(arg, queue, table, into):
            return None
    return positional


def _option(
    arg: str, queue: list[str], table: Mapping[str, tuple[str, str]], into: dict[str, object]
) -> bool:
    """One option word (``--name``, ``--name=value``, ``-abc``, ``-fvalue``); False if
    click would not take it as this table's options."""
    name, eq, value = arg.partition("=")
    if arg[:2] == "--":
        found = table.get(name)
        if found is None or (eq and found[1] == FLAG):
            return False
        if eq:
            queue.insert(0, value)
        return _store(found, queue, into)
    for i, ch in enumerate(arg[1:], start=2):
        found = table.get("-" + ch)
        if found is None:
            return False
        if found[1] != FLAG and i < len(arg):  # the rest of the word is the value
            queue.insert(0, arg[i:])
            return _store(found, queue, into)
        if not _store(found, queue, into):
            return False
    return True


def _store(found: tuple[str, str], queue: list[str], into: dict[str, object]) -> bool:
    dest, kind = found
    if kind == FLAG:
        into[dest] = True
        return True
    if not queue:
        return False  # click: "Option ... requires an argument."
    value = queue.pop(0)
    if kind == MULTIPLE:
        into[dest] = (*into.get(dest, ()), value)  # type: ignore[misc]
    elif kind == INT:
        try:
            into[dest] = int(value)
        except ValueError:
            return False  # click: "... is not a valid integer."
    else:
        into[dest] = value
    return True


def invoke(call: Call) -> int:
    """Run the command as click's group would; the exit status."""
    from capsa.cli import failure, output
    from capsa.cli.app import App

    output.setup_streams()
    body = _body(call.command)
    s = call.settings
    debug = bool(s["debug"])
    app = App(s["root"], s["runroot"], s["config"], debug, s["host"])  # type: ignore[arg-type]
    try:
        try:
            body(app, **call.kwargs)
        except Exception as e:
            return failure.report(e, call.top, debug)
        finally:
            app.close()
    except (KeyboardInterrupt, EOFError):
        return failure.aborted()
    return 0


def _body(command: str) -> Callable[..., None]:
    """The function click's command calls too."""
    if command == "ps":
        from capsa.cli.list_containers import ps

        return ps
    if command == "images":
        from capsa.cli.list_images import images

        return images
    from capsa.cli.list_volumes import ls

    return ls


def run(argv: list[str]) -> int | None:
    """The exit status of the command ``argv`` ran here; None if click must run it."""
    call = parse(argv[1:], os.environ)
    return None if call is None else invoke(call)
