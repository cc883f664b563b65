"""``ps``, ``images`` and ``volume ls`` started cold print the same bytes, errors and exit
codes on the fast path (``capsa.cli.fastpath``, no click) as through click.

Each command line runs three times on the same containers, images and volumes: the
``capsa`` command (cold: ``CAPSA_WARM=0``, so the fast path), click's ``main``, the
``capsa`` command again; click's result must be one of the two fast ones (a "5 seconds
ago" may turn into "6 seconds ago" between runs, never both times). With ``-D`` a
traceback shows the frames of the path taken, so debug output is not compared.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from tests.helpers import capsa_cli
from tests.helpers.capsa_cli import CAPSA, IMAGE, CapsaCli

from capsa.cli import fastpath

busybox_tarball = capsa_cli.busybox_tarball  # fixtures
capsa_module = capsa_cli.capsa_module
capsa = capsa_cli.capsa

pytestmark = pytest.mark.root

CLICK = "import sys; sys.argv[0] = sys.argv.pop(1); from capsa.cli.main import main; main()"

# (arguments, whether the fast path takes them: the others check the fallback)
COMMAND_LINES = [
    (["ps"], True),
    (["ps", "-a"], True),
    (["ps", "-aq"], True),
    (["ps", "-a", "--no-trunc"], True),
    (["ps", "-aq", "--no-trunc"], True),
    (["ps", "-a", "-s"], True),
    (["ps", "-n", "2"], True),
    (["ps", "-l", "--format", "{{.Names}}"], True),
    (["ps", "-a", "--format", "json"], True),
    (["ps", "-a", "--format", "table {{.ID}}\t{{.Names}}\t{{.Labels}}"], True),
    (["ps", "-a", "--format", '{{.Names}} {{.Command}} {{.Label "tier"}} {{.State}}'], True),
    (["ps", "-a", "--format", "{{json .Labels}}"], True),
    (["ps", "-a", "--format", "{{.Nope}}"], True),
    (["ps", "-a", "--format", "{{.Names"], True),
    (["ps", "-a", "--filter", "name=fp-"], True),
    (["ps", "-a", "-f", "label=tier=front", "-f", "status=created"], True),
    (["ps", "-a", "--filter", "status=bogus"], True),
    (["ps", "-a", "--filter", "bogus=1"], True),
    (["ps", "-a", "--filter", "nameonly"], True),
    (["ps", "-a", "--filter", "before=no-such-container"], True),
    (["ps", "-a", "--filter", "name=\udcff"], True),
    (["container", "ls", "-a"], True),
    (["container", "list", "-aq"], True),
    (["images"], True),
    (["images", "-a"], True),
    (["images", "-q"], True),
    (["images", "--no-trunc", "--digests"], True),
    (["images", "capsa-test/busybox"], True),
    (["images", "fp/other:v1"], True),
    (["images", "no-such-repo"], True),
    (["images", "--format", "json"], True),
    (["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"], True),
    (["images", "--format", "table {{.Repository}}\t{{.Tag}}"], True),
    (["images", "-f", "dangling=false"], True),
    (["images", "-f", "dangling=maybe"], True),
    (["images", "-f", "label=fp=1"], True),
    (["images", "-f", "reference=fp/*"], True),
    (["images", "-f", "nope=1"], True),
    (["image", "ls", "-q"], True),
    (["volume", "ls"], True),
    (["volume", "ls", "-q"], True),
    (["volume", "list", "--format", "{{.Name}} {{.Labels}} {{.Mountpoint}}"], True),
    (["volume", "ls", "--format", "json"], True),
    (["volume", "ls", "--format", "table"], True),
    (["volume", "ls", "-f", "name=fp-v1"], True),
    (["volume", "ls", "-f", "label=tier"], True),
    (["volume", "ls", "-f", "dangling=true"], True),
    (["volume", "ls", "-f", "dangling=maybe"], True),
    (["volume", "ls", "-f", "bogus=1"], True),
    (["ps", "-x"], False),
    (["ps", "--help"], False),
    (["images", "a", "b"], False),
    (["volume", "ls", "-n", "1"], False),
]


def _run(capsa: CapsaCli, argv: list[str], warm: bool = False) -> tuple[int, str, str]:
    proc = subprocess.run(
        argv,
        env={**capsa.env, "CAPSA_WARM": "1" if warm else "0"},
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode()


def _objects(capsa: CapsaCli) -> None:
    """Containers, images and volumes with what the listings show differently."""
    capsa.run("create", "--name", "fp-plain", IMAGE)  # no command: the image's is shown
    capsa.run(
        "create", "--name", "fp-labelled", "--label", "tier=front",
        "--label", "colour=\x1b[31mred\x1b[0m", "-v", "fp-v2:/data", IMAGE,
        "sh", "-c", "echo a long command that ps truncates; sleep 1",
    )  # fmt: skip
    capsa.run("run", "--name", "fp-exited", IMAGE, "sh", "-c", "exit 3", check=False)
    capsa.run("tag", IMAGE, "fp/other:v1")
    capsa.run("tag", IMAGE, "fp/other:v2")
    for name in ("fp-v1", "fp-v10", "fp-v9"):
        capsa.run("volume", "create", name)
    capsa.run("volume", "create", "--label", "tier=back", "fp-labelled")


def test_the_fast_path_prints_what_click_prints(capsa: CapsaCli) -> None:
    _objects(capsa)
    try:
        for args, fast in COMMAND_LINES:
            taken = fastpath.parse(args, {}) is not None
            assert taken == fast, f"fast path {'takes' if taken else 'refuses'} {args}"
            first = _run(capsa, [CAPSA, *args])
            clicked = _run(capsa, [sys.executable, "-c", CLICK, CAPSA, *args])
            if clicked != first:
                assert clicked == _run(capsa, [CAPSA, *args]), args
            assert "Traceback" not in clicked[2], (args, clicked[2])
    finally:
        capsa.run("rm", "-f", "fp-plain", "fp-labelled", "fp-exited", check=False)
        capsa.run("rmi", "fp/other:v1", "fp/other:v2", check=False)
        for name in ("fp-v1", "fp-v2", "fp-v10", "fp-v9", "fp-labelled"):
            capsa.run("volume", "rm", name, check=False)


def test_a_cold_ps_imports_neither_click_nor_re_with_image_commands(capsa: CapsaCli) -> None:
    """A container made without a command shows its image's: read without json or re."""
    capsa.run("create", "--name", capsa.name(), IMAGE)
    env = {**capsa.env, "CAPSA_WARM": "0", "PYTHONPROFILEIMPORTTIME": "1"}
    proc = subprocess.run([CAPSA, "ps", "-a"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0 and '"/bin/sh"' in proc.stdout, proc.stderr[-500:]
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "capsa.oci.image_spec" in imported
    assert not {"click", "re", "json", "enum", "hashlib"} & imported


def test_a_warm_listing_prints_what_click_prints(capsa: CapsaCli) -> None:
    """Forked from the monitor host (capsa.cli.command): the fast path there too."""
    capsa.detached("--name", capsa.name(), "--init")
    socket = capsa.runroot / "monitor-host.sock"
    capsa.wait_for(socket.exists, 10, "the monitor host")
    for args in (["ps", "-a"], ["ps", "--format", "{{.Names}} {{.State}}"], ["images", "-q"]):
        warm = _run(capsa, [CAPSA, *args], warm=True)
        clicked = _run(capsa, [sys.executable, "-c", CLICK, CAPSA, *args])
        if clicked != warm:
            assert clicked == _run(capsa, [CAPSA, *args], warm=True), args
    for args in (["ps", "--bogus"], ["volume", "ls", "-f", "bogus=1"]):
        assert _run(capsa, [CAPSA, *args], warm=True) == _run(
            capsa, [sys.executable, "-c", CLICK, CAPSA, *args]
        )


def test_output_to_a_closed_pipe_dies_of_sigpipe_on_both_paths(capsa: CapsaCli) -> None:
    for argv in ([CAPSA, "ps", "-a"], [sys.executable, "-c", CLICK, CAPSA, "ps", "-a"]):
        read, write = os.pipe()
        os.close(read)
        try:
            proc = subprocess.run(
                argv,
                env={**capsa.env, "CAPSA_WARM": "0"},
                stdout=write,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                timeout=60,
            )
        finally:
            os.close(write)
        assert (proc.returncode, proc.stderr) == (-signal.SIGPIPE, b""), argv
