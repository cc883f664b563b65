"""``run --cgroupns``, and what ``events`` shows and when it ends (root, issue 12):
``--until`` without ``--since``, the ``attach`` and ``exec_*`` events, and an
``events`` whose reader went away."""
# ruff: noqa: F811  (pytest fixtures imported from tests.helpers.capsa_cli)

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.capsa_cli import (  # noqa: F401  (fixtures)
    IMAGE,
    CapsaCli,
    busybox_tarball,
    capsa,
    capsa_module,
)

pytestmark = pytest.mark.root

SHOW_CGROUPS = "readlink /proc/self/ns/cgroup; cat /proc/self/cgroup"


# -- --cgroupns -------------------------------------------------------------------------------


def _host_default() -> str:
    """Docker's and podman's default: private on a cgroup v2 host, host on v1 or hybrid."""
    return "private" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "host"


@pytest.mark.parametrize("flag", ["host", "private", ""])
def test_cgroupns_follows_the_flag(capsa: CapsaCli, flag: str) -> None:
    name = capsa.name()
    flags = ["--cgroupns", flag] if flag else []
    out = capsa.run("run", "--name", name, *flags, IMAGE, "sh", "-c", SHOW_CGROUPS).stdout
    ns, *cgroups = out.split()
    cid = capsa.full_id(name)
    mode = flag or _host_default()
    assert capsa.fmt(name, "{{.HostConfig.CgroupnsMode}}") == mode
    paths = [line.split(":", 2)[2] for line in cgroups]
    if mode == "host":
        assert ns == os.readlink("/proc/self/ns/cgroup")
        assert paths and all(p.endswith(f"/capsa-{cid}") for p in paths), cgroups
    else:
        assert ns != os.readlink("/proc/self/ns/cgroup")
        assert paths and all(p == "/" for p in paths), cgroups


def test_cgroupns_refuses_other_modes(capsa: CapsaCli) -> None:
    name = capsa.name()
    proc = capsa.run("create", "--name", name, "--cgroupns", "shared", IMAGE, check=False)
    assert proc.returncode == 125
    assert proc.stderr == "Error: invalid cgroup namespace mode: shared\n"
    assert capsa.run("ps", "-aq", "--filter", f"name={name}").stdout == ""


# -- events --until -------------------------------------------------------------------------


def _events(capsa: CapsaCli, *args: str, timeout: float = 30) -> list[dict[str, Any]]:
    out = capsa.run("events", "--format", "json", *args, timeout=timeout).stdout
    return [json.loads(line) for line in out.splitlines()]


def test_events_until_past_without_since_shows_the_past(capsa: CapsaCli) -> None:
    """dockerd: --until alone sends the past events up to it, and ends when it is past."""
    name = capsa.name()
    cid = capsa.run("create", "--name", name, IMAGE).stdout.strip()
    until = f"{time.time() + 0.001:.3f}"
    shown = _events(capsa, "--until", until, "--filter", f"container={name}")
    assert [(e["Action"], e["id"]) for e in shown] == [("create", cid)]
    assert _events(capsa, "--until", until, "--filter", "container=nosuch") == []


def test_events_until_future_without_since_streams_until_then(capsa: CapsaCli) -> None:
    before, after = capsa.name(), capsa.name()
    capsa.run("create", "--name", before, IMAGE)
    until = f"{time.time() + 8:.3f}"
    proc = capsa.popen(
        "events", "--until", until, "--format", "{{.Action}} {{.Actor.Attributes.name}}"
    )
    capsa.run("create", "--name", after, IMAGE)
    out, err = proc.communicate(timeout=30)  # it ends by itself once `until` is past
    assert (proc.returncode, err) == (0, "")
    assert f"create {before}" in out.splitlines(), out  # the past up to then, as dockerd
    assert f"create {after}" in out.splitlines(), out


def test_events_until_before_since_is_refused(capsa: CapsaCli) -> None:
    proc = capsa.run("events", "--since", "20", "--until", "10", check=False)
    assert proc.returncode != 0
    assert "`since` time (20) cannot be after `until` time (10)" in proc.stderr


# -- attach and exec events -----------------------------------------------------------------


def _since(capsa: CapsaCli, since: str, name: str) -> list[dict[str, Any]]:
    now = f"{time.time() + 0.001:.3f}"
    return _events(capsa, "--since", since, "--until", now, "--filter", f"container={name}")


def test_exec_events(capsa: CapsaCli) -> None:
    name = capsa.name()
    cid = capsa.detached("--name", name, "--init")
    since = f"{time.time():.3f}"
    assert capsa.run("exec", name, "sh", "-c", "exit 3", check=False).returncode == 3
    shown = [e for e in _since(capsa, since, name) if e["Action"].startswith("exec_")]
    actions = [e["Action"] for e in shown]
    assert actions == ["exec_create: sh -c exit 3", "exec_start: sh -c exit 3", "exec_die"]
    assert {e["id"] for e in shown} == {cid}
    exec_ids = {e["Actor"]["Attributes"]["execID"] for e in shown}
    assert len(exec_ids) == 1 and len(exec_ids.pop()) == 64, shown
    assert shown[2]["Actor"]["Attributes"]["exitCode"] == "3"
    assert all(e["Actor"]["Attributes"]["name"] == name for e in shown)
    only = _events(capsa, "--since", since, "--until", f"{time.time():.3f}", "-f", "event=exec_die")
    assert [e["Actor"]["Attributes"]["exitCode"] for e in only if e["id"] == cid] == ["3"]


def test_detached_exec_reports_its_end(capsa: CapsaCli, tmp_path: Path) -> None:
    """``exec -d`` returns at once, the exec's end is still an ``exec_die`` with its
    code, and the command's output pipe is not held until then."""
    name = capsa.name()
    cid = capsa.detached("--name", name, "--init", "-v", f"{tmp_path}:/x")
    since = f"{time.time():.3f}"
    script = "while [ ! -e /x/go ]; do sleep 0.1; done; exit 7"
    # captured output: a watcher that kept the pipe would hold this until /x/go appears
    proc = capsa.run("exec", "-d", name, "sh", "-c", script, timeout=30)
    assert proc.returncode == 0 and proc.stdout == ""
    assert [e["Action"] for e in _since(capsa, since, name) if e["Action"] == "exec_die"] == []
    (tmp_path / "go").touch()
    deadline = time.monotonic() + 20
    died: list[dict[str, Any]] = []
    while not died and time.monotonic() < deadline:
        died = [e for e in _since(capsa, since, name) if e["Action"] == "exec_die"]
        time.sleep(0.1)
    assert [e["Actor"]["Attributes"]["exitCode"] for e in died] == ["7"], died
    assert died[0]["id"] == cid
    failed = capsa.run("exec", "-d", name, "/no/such", check=False)
    assert failed.returncode == 127 and "no such file" in failed.stderr, failed.stderr


def test_attach_events(capsa: CapsaCli, tmp_path: Path) -> None:
    since = f"{time.time():.3f}"
    ran = capsa.name()
    capsa.run("run", "--name", ran, IMAGE, "true")
    actions = [e["Action"] for e in _since(capsa, since, ran)]
    assert actions[:3] == ["create", "attach", "start"], actions  # as dockerd orders them

    name = capsa.name()
    capsa.detached("--name", name, "--init", "-v", f"{tmp_path}:/x", cmd=_wait_for("/x/go"))
    attach = capsa.popen("attach", name)
    try:
        capsa.wait_for(
            lambda: "attach" in [e["Action"] for e in _since(capsa, since, name)],
            timeout=20,
            what="the attach event",
        )
        (tmp_path / "go").touch()
        assert attach.wait(20) == 0
    finally:
        if attach.poll() is None:
            attach.kill()
            attach.wait()
    attached = [e for e in _since(capsa, since, name) if e["Action"] == "attach"]
    assert [e["Actor"]["Attributes"]["name"] for e in attached] == [name]


def _wait_for(path: str) -> tuple[str, ...]:
    return ("sh", "-c", f"while [ ! -e {path} ]; do sleep 0.1; done")


# -- a reader that goes away ----------------------------------------------------------------


def test_events_end_when_their_reader_goes(capsa: CapsaCli) -> None:
    """No event comes, so no write fails: the closed pipe itself must end ``events``
    (run warm here: a running container keeps the monitor host up, which forks it)."""
    capsa.detached("--init")
    proc = capsa.popen("events", stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    time.sleep(0.5)  # let it reach its wait for events (a closed pipe is seen either way)
    proc.stdout.close()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("`capsa events` still runs after its reader went away")
