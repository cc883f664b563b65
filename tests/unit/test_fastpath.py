"""capsa.cli.fastpath: ``ps``, ``images`` and ``volume ls`` started cold without click.

The fast path must read a command line exactly as click reads it for these commands, or
leave it to click: each case here runs click (with the command bodies replaced by
recorders) and the fast path's parser on the same arguments, and compares what the body
would be called with. ``tests/integration/test_cli_fastpath.py`` compares whole runs (output,
errors, exit codes) of both on real containers, images and volumes.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from capsa.cli import fastpath, list_containers, list_images, list_volumes
from capsa.cli import main as cli_main

BODIES = {
    "ps": (list_containers, "ps"),
    "images": (list_images, "images"),
    "volume ls": (list_volumes, "ls"),
}
# each body's keyword arguments and their defaults (taken before any test replaces a body)
DEFAULTS = {
    command: {
        key: p.default
        for key, p in inspect.signature(getattr(module, name)).parameters.items()
        if key != "app"
    }
    for command, (module, name) in BODIES.items()
}


# -- the option tables are click's --------------------------------------------------------


def _click_command(path: tuple[str, ...]) -> click.Command:
    cmd: click.Command = cli_main.cli
    for name in path:
        assert isinstance(cmd, click.Group)
        found = cmd.commands.get(name)
        assert found is not None, f"click has no command {' '.join(path)}"
        cmd = found
    return cmd


def _kind(param: click.Option) -> str:
    if param.is_flag:
        return fastpath.FLAG
    if param.multiple:
        return fastpath.MULTIPLE
    if isinstance(param.type, click.types.IntParamType):
        return fastpath.INT
    assert param.type is click.STRING, f"{param.name}: a type the fast path does not know"
    assert param.nargs == 1, param.name
    return fastpath.VALUE


def _options(cmd: click.Command, skip: tuple[str, ...] = ()) -> dict[str, tuple[str, str]]:
    table = {}
    for param in cmd.params:
        if isinstance(param, click.Option) and param.name not in skip:
            for opt in [*param.opts, *param.secondary_opts]:
                table[opt] = (str(param.name), _kind(param))
    return table


@pytest.mark.parametrize("path", sorted(fastpath.PATHS))
def test_each_command_takes_the_options_and_arguments_click_declares(
    path: tuple[str, ...],
) -> None:
    cmd = _click_command(path)
    options, arguments = fastpath.COMMANDS[fastpath.PATHS[path]]
    assert options == _options(cmd)
    assert not any(p.envvar for p in cmd.params)  # the fast path reads none
    declared = [p for p in cmd.params if isinstance(p, click.Argument)]
    assert tuple(p.name for p in declared) == arguments
    assert all(p.nargs == 1 and not p.required for p in declared)


def test_the_global_options_are_clicks() -> None:
    names = {"config_path": "config"}  # click's name -> App's
    table = {
        opt: (names.get(dest, dest), kind)
        for opt, (dest, kind) in _options(cli_main.cli, skip=("version",)).items()
    }
    assert table == fastpath.GLOBAL_OPTIONS
    envvars = {
        names.get(str(p.name), str(p.name)): p.envvar
        for p in cli_main.cli.params
        if isinstance(p, click.Option) and p.envvar
    }
    assert envvars == fastpath.GLOBAL_ENV


def test_every_name_is_one_click_gives_the_same_command() -> None:
    commands: dict[str, set[int]] = {}
    for path, command in fastpath.PATHS.items():
        commands.setdefault(command, set()).add(id(_click_command(path)))
    assert all(len(ids) == 1 for ids in commands.values()), commands


# -- the same call as click, or none -------------------------------------------------------


class _Recorder:
    """Stands in for ``App`` and the command bodies: what click would run."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        recorder = self

        class FakeApp:
            def __init__(
                self, root: Any, runroot: Any, config: Any, debug: Any, host: Any = None
            ) -> None:
                self.settings = {"root": root, "runroot": runroot, "config": config, "host": host}
                self.settings["debug"] = debug

            def close(self) -> None:
                pass

        def body(command: str) -> Any:
            def record(app: FakeApp, **kwargs: Any) -> None:
                recorder.calls.append((command, app.settings, kwargs))

            return record

        monkeypatch.setattr(cli_main, "App", FakeApp)
        for command, (module, name) in BODIES.items():
            monkeypatch.setattr(module, name, body(command))

    def click_call(self, args: list[str]) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
        self.calls.clear()
        try:
            cli_main.cli.main(args=args, prog_name="capsa", standalone_mode=False)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            pass
        assert len(self.calls) <= 1
        return self.calls[0] if self.calls else None


def _fast_call(args: list[str]) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    call = fastpath.parse(args, os.environ)
    if call is None:
        return None
    return call.command, call.settings, {**DEFAULTS[call.command], **call.kwargs}


COMMON = [
    ["ps"],
    ["ps", "-a"],
    ["ps", "-aq"],
    ["ps", "-qa", "--no-trunc"],
    ["ps", "-a", "--format", "{{.ID}} {{.Names}}"],
    ["ps", "--format=table {{.Names}}\t{{.Status}}", "-a"],
    ["ps", "-f", "name=web", "--filter", "status=exited", "-fid=abc", "--filter=label=a=b"],
    ["ps", "-n", "3"],
    ["ps", "-n3", "-s"],
    ["ps", "--last=2", "-l"],
    ["ps", "-asq"],
    ["container", "ls", "-a"],
    ["container", "list"],
    ["container", "ps", "-q"],
    ["images"],
    ["images", "-q"],
    ["images", "busybox"],
    ["images", "-a", "busybox:latest", "--digests"],
    ["images", "--no-trunc", "--format", "json"],
    ["images", "--filter", "dangling=true", "-f", "reference=a*"],
    ["images", "--", "-weird"],
    ["image", "ls", "-aq"],
    ["image", "list"],
    ["volume", "ls"],
    ["volume", "ls", "-q"],
    ["volume", "list", "--format", "{{.Name}}"],
    ["volume", "ls", "-f", "name=v1", "--filter=dangling=true"],
    ["--root", "/tmp/r", "--runroot=/tmp/rr", "ps", "-a"],
    ["--config", "/c.toml", "-D", "images"],
    ["--debug", "volume", "ls"],
    ["--root", "", "ps"],
]
REFUSED = [
    [],
    ["ps", "--help"],
    ["ps", "-h"],
    ["ps", "-ah"],
    ["--help"],
    ["-h", "ps"],
    ["-v"],
    ["--version"],
    ["ps", "-x"],
    ["ps", "--bogus"],
    ["ps", "-n"],
    ["ps", "-n", "x"],
    ["ps", "--last=x"],
    ["ps", "--all=1"],
    ["ps", "-a=1"],
    ["ps", "extra"],
    ["ps", "--format"],
    ["images", "a", "b"],
    ["volume", "ls", "name"],
    ["volume"],
    ["volume", "create", "x"],
    ["container", "--help", "ls"],
    ["--root"],
    ["--", "ps"],
    ["-D", "-x", "ps"],
    ["run", "busybox"],
    ["ps", "--", "-a"],
]


@pytest.mark.parametrize("args", COMMON, ids=" ".join)
def test_common_command_lines_take_the_fast_path_with_clicks_values(
    args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in fastpath.GLOBAL_ENV.values():
        monkeypatch.delenv(var, raising=False)
    expected = _Recorder(monkeypatch).click_call(args)
    assert expected is not None
    assert _fast_call(args) == expected


@pytest.mark.parametrize("args", REFUSED, ids=" ".join)
def test_what_click_refuses_or_answers_itself_is_left_to_click(
    args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert fastpath.parse(args, os.environ) is None


def test_the_roots_come_from_the_environment_unless_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CAPSA_ROOT", "/env/root")
    monkeypatch.setenv("CAPSA_RUNROOT", "")  # empty: unset, for click
    monkeypatch.setenv("CAPSA_CONFIG", "/env/c.toml")
    recorder = _Recorder(monkeypatch)
    for args in (["ps"], ["--root", "/flag", "ps"], ["--runroot=/rr", "--config", "", "ps"]):
        assert _fast_call(args) == recorder.click_call(args)
    assert _fast_call(["ps"])[1]["root"] == "/env/root"  # type: ignore[index]


def test_shell_completion_is_left_to_click(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_CAPSA_COMPLETE", "bash_complete")
    assert fastpath.parse(["ps"], os.environ) is None


TOKENS = [
    "ps", "images", "volume", "container", "image", "ls", "list", "create", "busybox",
    "-a", "-q", "-s", "-l", "-D", "-h", "-x", "-aq", "-qs", "-n", "-n2", "-fname=a", "-f",
    "name=a", "status=exited", "--all", "--quiet", "--size", "--latest", "--no-trunc",
    "--digests", "--last", "--last=1", "--last=x", "3", "-1", "x", "--filter", "--filter=",
    "--filter=id=1", "--format", "--format=json", "{{.ID}}", "table {{.Names}}", "--",
    "-", "", "--root", "--root=/r", "/r", "--runroot", "--config", "--debug", "--help",
    "--version", "-v", "--all=", "-af", "-fa", "--no-trunc=1", "=", "-=",
]  # fmt: skip


OPTIONS = [
    "-a", "-q", "-s", "-l", "-aq", "-qs", "-n2", "-fname=a", "-f", "name=a", "--all",
    "--quiet", "--no-trunc", "--last=1", "--filter=id=1", "--format=json", "-n", "3",
    "--filter", "status=exited", "--format", "{{.ID}}", "--digests", "busybox",
]  # fmt: skip
_WORDS = st.lists(st.sampled_from(TOKENS), max_size=6)
_COMMAND_LINES = st.one_of(
    _WORDS,
    st.builds(
        lambda before, path, after: [*before, *path, *after],
        st.lists(st.sampled_from(["-D", "--root", "/r", "--config=c", "-x", "--"]), max_size=2),
        st.sampled_from(sorted(fastpath.PATHS)),
        st.one_of(_WORDS, st.lists(st.sampled_from(OPTIONS), max_size=6)),
    ),
)


@settings(max_examples=500, deadline=None)
@given(_COMMAND_LINES)
@example(["ps", "-af", "x"])
@example(["images", "-fa", "busybox"])
def test_any_command_line_the_fast_path_takes_is_read_as_click_reads_it(
    args: list[str],
) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        for var in fastpath.GLOBAL_ENV.values():
            monkeypatch.delenv(var, raising=False)
        fast = _fast_call(args)
        if fast is not None:
            assert fast == _Recorder(monkeypatch).click_call(args)


# -- what a cold listing imports ------------------------------------------------------------

# each costs a cold ``ps`` milliseconds, or belongs to what listing does not do
NEVER = (
    "click",
    "typing",
    "inspect",
    "dataclasses",
    "hashlib",
    "shutil",
    "subprocess",
    "threading",
    "signal",
    "secrets",
    "socket",
    "selectors",
    "tomllib",
    "pyroute2",
    "capsa.engine.network.service",
    "capsa.runtime.container",
    "capsa.engine.monitor.client",
    "capsa.store.snapshots",
)
# and these only where the command needs them (images parse references with ``re``)
NOT_FOR = {
    "ps": (
        "re",
        "json",
        "enum",
        "datetime",
        "capsa.engine.images.service",
        "capsa.store.content",
        "capsa.engine.volumes.service",
    ),
    "volume ls": (
        "re",
        "json",
        "enum",
        "datetime",
        "capsa.engine.images.service",
        "capsa.engine.containers.service",
    ),
    "images": ("capsa.engine.containers.service", "capsa.engine.volumes.service"),
}


@pytest.mark.parametrize("args", [["ps", "-a"], ["images"], ["volume", "ls"]], ids=" ".join)
def test_a_cold_listing_imports_only_what_listing_needs(args: list[str], tmp_path: Path) -> None:
    command = fastpath.parse(args, {})
    assert command is not None
    heavy = (*NEVER, *NOT_FOR[command.command])
    code = (
        "import sys\n"
        "from capsa.cli import fastpath\n"
        f"status = fastpath.run(['capsa', {', '.join(map(repr, args))}])\n"
        f"print(status, ' '.join(m for m in {heavy!r} if m in sys.modules))"
    )
    env = {"CAPSA_ROOT": str(tmp_path / "root"), "CAPSA_RUNROOT": str(tmp_path / "run")}
    # -I -S: no site hooks (a .pth may import anything); capsa from this test's path
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys; sys.path[:0] = {sys.path!r}\n{code}"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    status, *loaded = out.stdout.split("\n")[-2].split()
    assert (status, loaded) == ("0", [])


# -- output.echo is click.echo -------------------------------------------------------------

_ECHO = (
    "import sys\n"
    "from capsa.cli.output import setup_streams\n"
    "setup_streams()\n"
    "if sys.argv[1] == 'click':\n"
    "    from click import echo\n"
    "else:\n"
    "    from capsa.cli.output import echo\n"
    "for text in sys.argv[3:]:\n"
    "    echo(text, err=sys.argv[2] == 'err')\n"
)
TEXTS = ["plain", "", "\x1b[31mred\x1b[0m and \x1b[2K", "\x1b]0;title\x07", "é ✓", "\udcff"]


def _echoed(which: str, stream: str, tty: bool, encoding: str) -> bytes:
    import pty

    env = {**os.environ, "PYTHONIOENCODING": encoding}
    argv = [sys.executable, "-c", _ECHO, which, stream, *TEXTS]
    if not tty:
        proc = subprocess.run(argv, capture_output=True, env=env, check=True)
        return proc.stderr if stream == "err" else proc.stdout
    main, sub = pty.openpty()
    try:
        out = {"stdout": sub} if stream == "out" else {"stderr": sub}
        subprocess.run(argv, env=env, check=True, **out)  # type: ignore[call-overload]
        os.close(sub)
        sub = -1
        chunks = []
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the pty's other side is closed: all read
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(main)
        if sub >= 0:
            os.close(sub)


@pytest.mark.parametrize("tty", [False, True], ids=["pipe", "tty"])
@pytest.mark.parametrize("stream", ["out", "err"])
@pytest.mark.parametrize("encoding", ["utf-8", "ascii"])
def test_echo_writes_the_bytes_click_echo_writes(tty: bool, stream: str, encoding: str) -> None:
    assert _echoed("capsa", stream, tty, encoding) == _echoed("click", stream, tty, encoding)


@pytest.mark.parametrize("args", [["ps", "-a"], ["version"], ["ps", "--filter", "bogus=1"]])
def test_a_command_started_with_stdout_closed_ends_without_a_traceback(
    args: list[str], tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "CAPSA_ROOT": str(tmp_path / "root"),
        "CAPSA_RUNROOT": str(tmp_path / "run"),
        "CAPSA_WARM": "0",
    }
    proc = subprocess.run(
        [sys.executable, "-c", "from capsa.cli.entry import main; main()", *args],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: os.close(1),  # Python starts with sys.stdout None
    )
    assert "Traceback" not in proc.stderr
    assert proc.returncode == (1 if "bogus=1" in args else 0), proc.stderr
