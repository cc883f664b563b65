"""Crash and reboot (issue 11): containers start again after a host restart, networks
rebuild on first use and go when nobody uses them, ``system restore`` brings back the
containers whose restart policy says so, and a killed monitor or monitor host loses
neither the exit status (where the kernel still has it) nor the output.

A reboot is simulated on this module's private roots only: every process of its
containers and monitors killed, its mounts unmounted, its cgroups removed, its run root
emptied, its bridges and its networks' nftables chains and map elements deleted (the
kernel objects a reboot loses; the data root keeps every record).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.helpers import capsa_cli
from tests.helpers.capsa_cli import CGROUP_ROOT, IMAGE, CapsaCli
from tests.helpers.host import cmdline, free_subnet, ppid

busybox_tarball = capsa_cli.busybox_tarball  # fixtures
capsa_module = capsa_cli.capsa_module
capsa = capsa_cli.capsa

pytestmark = pytest.mark.root

SLEEP = ("sleep", "300")


# -- the host's view ------------------------------------------------------------------------


def _titled(capsa: CapsaCli, prefix: str) -> list[int]:
    return [p for p in capsa.monitor_pids() if cmdline(p).startswith(prefix)]


def _links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def _ruleset(capsa: CapsaCli) -> str:
    """The root's own nftables table (``inet capsa-<tag>``) as JSON text, "" if none."""
    from capsa.engine.network.service import root_firewall_table

    table = root_firewall_table(str(capsa.root))
    proc = subprocess.run(
        ["nft", "-j", "list", "table", "inet", table], capture_output=True, text=True
    )
    return proc.stdout if proc.returncode == 0 else ""


def _networks(capsa: CapsaCli) -> list[Any]:
    from capsa.engine.network.store import NetworkStore

    store = NetworkStore(str(capsa.root))
    try:
        return list(store.networks())
    finally:
        store.close()


def _network_state(capsa: CapsaCli) -> tuple[list[Any], list[Any]]:
    """(endpoints, leases) in the root's networks.db."""
    from capsa.engine.network.store import NetworkStore

    store = NetworkStore(str(capsa.root))
    try:
        return list(store.endpoints()), list(store.leases())
    finally:
        store.close()


def _in_kernel(capsa: CapsaCli, net: Any) -> list[str]:
    """What of network ``net`` the kernel holds: its bridge, its chains and elements."""
    from capsa.engine.network.firewall import net_chains

    held = [f"bridge {net.bridge}"] if net.bridge in _links() else []
    rules = _ruleset(capsa)
    held += [f"chain {c}" for c in net_chains(net.id) if c in rules]
    if f'"{net.bridge}"' in rules:
        held.append(f"element {net.bridge}")
    return held


# -- losing the kernel's state ----------------------------------------------------------------


def _supervisors_first(capsa: CapsaCli) -> list[int]:
    """The roots' monitor processes, host then shims first: killed in this order none
    of them can take over from another (nor a new host adopt a shim)."""
    rank = {"capsa-monitor host": 0, "capsa-monitor shim": 1}
    return sorted(
        capsa.monitor_pids(),
        key=lambda p: next((r for t, r in rank.items() if cmdline(p).startswith(t)), 2),
    )


def _our_processes(capsa: CapsaCli, ids: set[str]) -> list[int]:
    """Monitors (supervisors first), the containers' processes, anything on our roots."""
    inside: list[int] = []
    for cid in ids:
        procs = CGROUP_ROOT / "pids" / f"capsa-{cid}" / "cgroup.procs"
        with contextlib.suppress(OSError):
            inside += [int(p) for p in procs.read_text().split()]
    roots = (str(capsa.root), str(capsa.runroot))
    others = [
        int(e)
        for e in os.listdir("/proc")
        if e.isdigit() and int(e) != os.getpid() and any(r in cmdline(int(e)) for r in roots)
    ]
    return [*_supervisors_first(capsa), *inside, *others]


def _kill_everything(capsa: CapsaCli, ids: set[str]) -> None:
    deadline = time.monotonic() + 10
    while pids := _our_processes(capsa, ids):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert time.monotonic() < deadline, f"processes survive SIGKILL: {pids}"
        time.sleep(0.05)


def _remove_cgroups(ids: set[str]) -> None:
    for cid in ids:
        for path in CGROUP_ROOT.glob(f"*/capsa-{cid}"):
            deadline = time.monotonic() + 5
            while path.exists():
                with contextlib.suppress(OSError):
                    path.rmdir()
                assert time.monotonic() < deadline, f"cannot remove {path}"
                time.sleep(0.02)


def simulate_reboot(capsa: CapsaCli, keep_network: bool = False) -> None:
    """What a reboot does to this module's containers (see the module doc). With
    ``keep_network`` the bridges and rules survive (a run root lost without a reboot)."""
    from capsa.engine.network import firewall
    from capsa.engine.network.service import root_firewall_table
    from capsa.linux.syscalls import MNT_DETACH, umount2

    ids = capsa.all_ids()
    _kill_everything(capsa, ids)
    for point in sorted(capsa.mounts(), key=len, reverse=True):
        umount2(point, MNT_DETACH)
    _remove_cgroups(ids)
    for entry in capsa.runroot.iterdir():
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    if keep_network:
        return
    for net in _networks(capsa):
        if net.bridge in _links():
            subprocess.run(["ip", "link", "del", net.bridge], check=True)
        firewall.remove_network(net, root_firewall_table(str(capsa.root)))
        assert not _in_kernel(capsa, net), _in_kernel(capsa, net)


@pytest.fixture
def user_network(capsa: CapsaCli) -> Iterator[str]:
    name = capsa.name()
    capsa.run("network", "create", "--subnet", free_subnet(), name)
    yield name
    capsa.cleanup()
    capsa.run("network", "rm", name, check=False)


def _status(capsa: CapsaCli, name: str) -> str:
    out = capsa.run("ps", "-a", "--filter", f"name={name}", "--format", "{{.Status}}")
    return out.stdout.strip()


def _running(capsa: CapsaCli, *names: str) -> None:
    for name in names:
        capsa.wait_status(name, "running")


# -- 1. after a reboot every container starts again ------------------------------------------


def test_containers_start_again_after_a_reboot(capsa: CapsaCli, user_network: str) -> None:
    r1, r2 = capsa.name(), capsa.name()
    capsa.detached("--name", r1, "--init", "--network", "bridge", cmd=SLEEP)
    capsa.detached("--name", r2, "--init", "--network", user_network, cmd=SLEEP)
    _running(capsa, r1, r2)
    simulate_reboot(capsa)

    assert _status(capsa, r1).startswith("Exited (unknown)")  # ps -a first, as a user would
    doc = capsa.inspect(r2)["State"]
    assert doc["Status"] == "exited" and doc["ExitCode"] is None and "unknown" in doc["Error"]
    assert _network_state(capsa) == ([], []), "stale endpoints or leases kept"

    capsa.run("start", r1, r2)
    _running(capsa, r1, r2)
    for name, network in ((r1, "bridge"), (r2, user_network)):
        gateway = capsa.inspect(name)["NetworkSettings"]["Networks"][network]["Gateway"]
        ping = capsa.run("exec", name, "ping", "-c", "1", "-W", "2", gateway, check=False)
        assert ping.returncode == 0, f"{name} cannot reach {gateway}: {ping.stdout}"
    for net in _networks(capsa):
        assert any(h.startswith("chain") for h in _in_kernel(capsa, net)), f"no rules for {net}"

    capsa.run("rm", "-f", r1, r2)
    for net in _networks(capsa):
        assert not _in_kernel(capsa, net), (
            f"left after the last container: {_in_kernel(capsa, net)}"
        )
    assert _network_state(capsa) == ([], [])


# -- 2. networks nobody uses leave the kernel ---------------------------------------------------


@pytest.mark.parametrize("prune", [("network", "prune", "-f"), ("system", "prune", "-f")])
def test_prune_takes_down_networks_nobody_uses(capsa: CapsaCli, prune: tuple[str, ...]) -> None:
    """The run root lost (its records of what was set up gone) while the bridge and its
    rules stay, and the container killed: its endpoint is stale, nobody uses the network."""
    name = capsa.name()
    capsa.detached("--name", name, "--init", "--network", "bridge", cmd=SLEEP)
    _running(capsa, name)
    simulate_reboot(capsa, keep_network=True)
    (default,) = [n for n in _networks(capsa) if n.name == "bridge"]
    assert _in_kernel(capsa, default), "the simulation lost the bridge"
    capsa.run(*prune)
    assert not _in_kernel(capsa, default), (
        f"left after {' '.join(prune)}: {_in_kernel(capsa, default)}"
    )
    assert _network_state(capsa) == ([], []), "stale endpoints or leases kept"
    names = capsa.run("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert "bridge" in names, "the default network's definition went too"


# -- 3. system restore ------------------------------------------------------------------------


def test_system_restore_starts_what_the_restart_policy_brings_back(capsa: CapsaCli) -> None:
    always, unless, stopped, plain, rm = (capsa.name() for _ in range(5))
    capsa.detached(
        "--name", always, "--init", "--restart", "always", "--network", "bridge", cmd=SLEEP
    )
    capsa.detached("--name", unless, "--init", "--restart", "unless-stopped", cmd=SLEEP)
    capsa.detached("--name", stopped, "--init", "--restart", "unless-stopped", cmd=SLEEP)
    capsa.detached("--name", plain, "--init", cmd=SLEEP)
    capsa.run("run", "-d", "--rm", "--name", rm, "--init", IMAGE, *SLEEP)
    _running(capsa, always, unless, stopped, plain, rm)
    capsa.run("stop", "-t", "1", stopped)
    simulate_reboot(capsa)

    out = capsa.run("system", "restore").stdout
    started = out.split("Started:")[1].split() if "Started:" in out else []
    assert sorted(started) == sorted([always, unless]), out
    _running(capsa, always, unless)
    assert capsa.status(stopped) == "exited" and capsa.status(plain) == "exited"
    assert capsa.fmt(plain, "{{.State.Error}}").startswith("exit status unknown")
    gone = capsa.run("inspect", rm, check=False)
    assert gone.returncode != 0, "a --rm container that was running is kept"
    assert capsa.run("exec", always, "true").returncode == 0
    again = capsa.run("system", "restore").stdout  # nothing more to do
    assert "Started:" not in again, again


# -- 4. a killed monitor or host loses no exit status and no output ---------------------------


GO = "/tmp/go"
LATE = f"echo early; until [ -e {GO} ]; do sleep 0.05; done; echo late; exit 3"


def _late_exit(capsa: CapsaCli) -> tuple[str, str]:
    """A container that writes a line, waits for ``_go``, writes another and exits 3."""
    name = capsa.name()
    return name, capsa.detached("--name", name, cmd=("sh", "-c", LATE))


def _go(capsa: CapsaCli, name: str) -> None:
    capsa.run("exec", name, "touch", GO)


def _ended_with_3(capsa: CapsaCli, name: str) -> None:
    capsa.wait_for(lambda: capsa.status(name) == "exited", 30, f"{name} to exit")
    state = capsa.inspect(name)["State"]
    assert state["ExitCode"] == 3, state
    assert state["Error"] == "", state
    assert capsa.run("logs", name).stdout.split() == ["early", "late"]


def test_killed_monitor_keeps_exit_code_and_output(capsa: CapsaCli) -> None:
    name, cid = _late_exit(capsa)
    monitor = capsa.monitor_pid(cid)  # still its own: the hand-over comes after 3 s
    assert cmdline(monitor).startswith(f"capsa-monitor {name}"), cmdline(monitor)
    os.kill(monitor, signal.SIGKILL)
    _go(capsa, name)
    _ended_with_3(capsa, name)


def _asleep(pid: int) -> bool:
    """The host sleeps: its program is a sealed memfd, not the interpreter."""
    with contextlib.suppress(OSError):
        return os.readlink(f"/proc/{pid}/exe").startswith("/memfd:")
    return False


@pytest.mark.parametrize("when", ["awake", "asleep"])
def test_killed_host_keeps_exit_code_and_output(capsa: CapsaCli, when: str) -> None:
    """The shim keeps the status and the output; the next command starts a host that
    adopts it."""
    name, _ = _late_exit(capsa)

    def handed_over() -> bool:  # to the host, and the monitor is the init's shim now
        hosts = _titled(capsa, "capsa-monitor host")
        shim = cmdline(ppid(capsa.pid(name))).startswith("capsa-monitor shim")
        return len(hosts) == 1 and shim

    capsa.wait_for(handed_over, 15, "the monitor host to adopt the container")
    (host,) = _titled(capsa, "capsa-monitor host")
    if when == "asleep":
        capsa.wait_for(lambda: _asleep(host), 30, "the host to go to sleep")
    os.kill(host, signal.SIGKILL)
    _go(capsa, name)
    _ended_with_3(capsa, name)


def test_unknown_exit_code_is_never_made_up(capsa: CapsaCli) -> None:
    """Host and shim both killed: the container is init's child, its status lost."""
    name, _ = _late_exit(capsa)
    for pid in _supervisors_first(capsa):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _go(capsa, name)
    capsa.wait_for(lambda: capsa.status(name) == "exited", 30, f"{name} to exit")
    state = capsa.inspect(name)["State"]
    assert state["ExitCode"] is None and state["Error"].startswith("exit status unknown"), state
    assert _status(capsa, name).startswith("Exited (unknown)")
    assert capsa.run("wait", name).stdout.strip() == "unknown"
