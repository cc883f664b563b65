"""Every signal a container's process starts with is at its default disposition and
unblocked (as under Docker and podman): in run and exec, with and without --init,
whether the command was forked from a warm monitor host or started cold."""

from __future__ import annotations

import pytest
from tests.helpers import capsa_cli
from tests.helpers.capsa_cli import IMAGE, CapsaCli

busybox_tarball = capsa_cli.busybox_tarball  # fixtures
capsa_module = capsa_cli.capsa_module
capsa = capsa_cli.capsa

pytestmark = pytest.mark.root

# grep itself, not through sh: busybox's sh ignores SIGQUIT
SHOW = ("grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status")
CLEAN = ["SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000"]


def _masks(output: str) -> list[str]:
    return sorted(line for line in output.splitlines() if line.startswith("Sig"))


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
@pytest.mark.parametrize("init", [False, True], ids=["plain", "init"])
def test_run_and_exec_start_with_default_signals(capsa: CapsaCli, warm: bool, init: bool) -> None:
    flags = ("--init",) if init else ()
    keeper = capsa.name()
    if warm:  # a running container keeps the monitor host up: commands fork from it
        capsa.detached("--name", keeper, "--init")
    else:
        capsa.env["CAPSA_WARM"] = "0"
    try:
        ran = capsa.run("run", "--rm", *flags, IMAGE, *SHOW)
        assert _masks(ran.stdout) == CLEAN
        name = capsa.name()
        capsa.detached("--name", name, *flags)
        execd = capsa.run("exec", name, *SHOW)
        assert _masks(execd.stdout) == CLEAN
    finally:
        capsa.env.pop("CAPSA_WARM", None)


def test_sigint_stops_an_init_container(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.detached("--name", name, "--init")
    capsa.run("kill", "-s", "INT", name)
    capsa.wait_status(name, "exited")
    assert capsa.fmt(name, "{{.State.ExitCode}}") == "130"
