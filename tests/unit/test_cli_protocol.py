"""The CLI holds the engine's protocol (``capsa.engine.protocol.Engine``), local or remote.

mypy checks the calls (``App.engine`` is an ``Engine``); these check what mypy cannot
see: that no CLI module names a concrete engine class to type by, that the records a
remote command sends load nothing below the engine, and that a command given a service
runs as its client (never forked by the local monitor host).
"""

from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys

import pytest

import capsa.cli
from capsa import errors
from capsa.cli import entry
from capsa.engine.monitor import warm_wire

CLI = pathlib.Path(capsa.cli.__file__).parent
# where the engine's concrete classes live: a frontend builds one, never types by it
CONCRETE = ("capsa.engine.local",)
CONCRETE_SUFFIXES = (".service", ".restore", ".events")
BUILDS_THE_ENGINE = {"app.py"}  # App.engine: LocalEngine(settings) or RemoteEngine(host)


def _imports(path: pathlib.Path) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
    return found


def test_cli_modules_name_no_concrete_engine_class() -> None:
    bad = []
    for path in sorted(CLI.rglob("*.py")):
        if path.name in BUILDS_THE_ENGINE:
            continue
        for module, line in _imports(path):
            engine_side = module.startswith("capsa.engine.")
            if module in CONCRETE or (engine_side and module.endswith(CONCRETE_SUFFIXES)):
                bad.append(f"{path.relative_to(CLI)}:{line}: {module}")
    assert bad == [], "type by capsa.engine.protocol instead:\n" + "\n".join(bad)


def test_the_fs_records_and_their_codec_load_nothing_below_the_engine() -> None:
    script = (
        "import sys\n"
        "from capsa.client import codec\n"
        "from capsa.engine import protocol\n"
        "from capsa.engine.fsops.types import CommitOptions, CopyOptions, PathStat\n"
        "for fn in vars(protocol.Files).values():\n"
        "    if callable(fn):\n"
        "        codec.hints(fn)\n"
        "hints = codec.hints(protocol.Files.stat_path)\n"
        "assert hints['return'] is PathStat, hints\n"
        "st = codec.decode(hints['return'], {'name': 'a', 'size': 1, 'mode': 33188,\n"
        "    'mtime': 1.5, 'link_target': ''}, 'result')\n"
        "assert st == PathStat('a', 1, 33188, 1.5, ''), st\n"
        "opts = codec.hints(protocol.Files.commit)['opts']\n"
        "assert codec.decode(opts, {'reference': 'r', 'pause': False}, 'opts') == "
        "CommitOptions(reference='r', pause=False)\n"
        "assert codec.decode(codec.hints(protocol.Files.archive)['opts'], None, 'o') is None\n"
        "below = ('capsa.linux', 'capsa.cgroups', 'capsa.runtime', 'capsa.store')\n"
        "loaded = [m for m in sys.modules if m.startswith(below)]\n"
        "loaded += [m for m in sys.modules if m == 'capsa.engine.fsops.service']\n"
        "print(sorted(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_restore_is_the_local_engines_only() -> None:
    from capsa.client.remote import RemoteEngine

    engine = RemoteEngine("unix:///nonexistent/capsa.sock")
    with pytest.raises(errors.Unavailable, match="--host"):
        engine.restore.run()


@pytest.mark.parametrize(
    "argv",
    [
        ["capsa", "--host", "unix:///x.sock", "ps"],
        ["capsa", "--host=unix:///x.sock", "ps"],
        ["capsa", "-H", "unix:///x.sock", "ps"],
        ["capsa", "-Hunix:///x.sock", "ps"],
        ["capsa", "-DH", "unix:///x.sock", "ps"],
        ["capsa", "-D", "--runroot", "/r", "-H", "unix:///x.sock", "ps"],
    ],
)
def test_a_service_given_on_the_command_line_is_no_warm_start(
    monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    monkeypatch.setenv("CAPSA_CONFIG", os.devnull)
    monkeypatch.delenv("CAPSA_HOST", raising=False)
    assert entry._socket_path(argv) is None


def test_capsa_host_is_no_warm_start_unless_the_flag_empties_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CAPSA_CONFIG", os.devnull)
    monkeypatch.setenv("CAPSA_RUNROOT", "/env/run")
    monkeypatch.setenv("CAPSA_HOST", "unix:///x.sock")
    assert entry._socket_path(["capsa", "ps"]) is None
    local = f"/env/run/{warm_wire.SOCKET_NAME}"
    assert entry._socket_path(["capsa", "--host=", "ps"]) == local  # click: the local engine
    monkeypatch.setenv("CAPSA_HOST", "")
    assert entry._socket_path(["capsa", "-D", "ps"]) == local
