"""capsa-runtime as the scripts and engines that drive runc use it, checked against
runc itself on the same bundles: its JSON byte for byte (state, list) or field for
field (events), its cgroup names, kill 0, its logs, exec --cgroup, configs without a
mount namespace, a symlinked /proc, and bad input (one line, runc's exit status)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import wait_for
from tests.helpers.bundle import BundleFactory, sh
from tests.helpers.runtime import Runtime

from capsa.oci.runtime_spec import Spec

pytestmark = pytest.mark.root

IDLE = 'trap "exit 0" TERM; while :; do sleep 0.05; done'


def _capsa_binary() -> str:
    """This venv's capsa-runtime, or another build's (``CAPSA_RUNTIME_BINARY``)."""
    if os.environ.get("CAPSA_RUNTIME_BINARY"):
        return os.environ["CAPSA_RUNTIME_BINARY"]
    local = Path(sys.executable).parent / "capsa-runtime"
    return str(local) if local.exists() else (shutil.which("capsa-runtime") or str(local))


def _runc_binary() -> str:
    found = shutil.which("runc") or "/usr/sbin/runc"
    if not Path(found).is_file():
        pytest.skip("needs runc, the reference")
    return found


@pytest.fixture
def capsa(tmp_path: Path, test_token: str) -> Iterator[Runtime]:
    rt = Runtime("capsa-runtime", _capsa_binary(), tmp_path / "capsa-root", token=f"{test_token}-c")
    yield rt
    assert not rt.cleanup()


@pytest.fixture
def runc(tmp_path: Path, test_token: str) -> Iterator[Runtime]:
    rt = Runtime("runc", _runc_binary(), tmp_path / "runc-root", token=f"{test_token}-r")
    yield rt
    assert not rt.cleanup()


def _no_cgroups_path(spec: Spec) -> None:
    assert spec.linux is not None
    spec.linux.cgroups_path = None


def _start_both(
    capsa: Runtime, runc: Runtime, bundle: Path, *, create_only: bool = False
) -> dict[str, str]:
    """The same bundle under both runtimes: {runtime name: container id}."""
    ids = {}
    for rt in (capsa, runc):
        cid = rt.new_id()
        verb = ("create",) if create_only else ("run", "-d")
        rt.run(*verb, "--bundle", str(bundle), cid)
        ids[rt.name] = cid
    return ids


def _init_pid(rt: Runtime, cid: str) -> int:
    return int(rt.state(cid)["pid"])


# -- item 5: state, list, events print runc's JSON ------------------------------------


def _normalized(text: str, cid: str, rt: Runtime) -> str:
    """The text with what differs between two containers (id, pid, created) and two
    runtimes (the spec version each implements) replaced."""
    text = text.replace(cid, "<ID>")
    text = re.sub(r'"ociVersion": ?"[^"]*"', '"ociVersion": <VERSION>', text)
    text = re.sub(r'"pid": ?\d+', '"pid": <PID>', text)
    return re.sub(r'"created": ?"[^"]*"', '"created": <CREATED>', text)


def _annotated(spec: Spec) -> None:
    _no_cgroups_path(spec)
    spec.annotations = {"z.last": "1", "a.first": "<tag> & é"}


@pytest.mark.parametrize("start", [False, True], ids=["created", "running"])
def test_state_and_list_print_runcs_json_byte_for_byte(
    capsa: Runtime, runc: Runtime, bundle: BundleFactory, start: bool
) -> None:
    b = bundle(sh(IDLE), edit=_annotated)
    ids = _start_both(capsa, runc, b, create_only=True)
    if start:
        for rt in (capsa, runc):
            rt.run("start", ids[rt.name])
    out = {}
    for rt in (capsa, runc):
        state = rt.run("state", ids[rt.name]).stdout
        listed = rt.run("list", "--format", "json").stdout
        out[rt.name] = (_normalized(state, ids[rt.name], rt), _normalized(listed, ids[rt.name], rt))
    assert out["capsa-runtime"][0] == out["runc"][0]
    assert out["capsa-runtime"][1] == out["runc"][1]
    # and the values are the container's
    state = json.loads(capsa.run("state", ids["capsa-runtime"]).stdout)
    assert state["status"] == ("running" if start else "created")
    assert state["annotations"] == {"a.first": "<tag> & é", "z.last": "1"}


def test_list_of_nothing_is_null_as_in_runc(capsa: Runtime, runc: Runtime) -> None:
    assert capsa.run("list", "--format", "json").stdout == runc.run("list", "-f", "json").stdout
    assert capsa.run("list").stdout == runc.run("list").stdout  # the table's header


# runc 1.1's omitempty fields: missing on one side only when zero there
_OPTIONAL = {
    "total", "percpu", "percpu_kernel", "percpu_user", "periods", "throttledPeriods",
    "throttledTime", "cpus", "mems", "cache", "raw", "usage", "max", "current", "limit",
    "ioServiceBytesRecursive", "ioServicedRecursive", "major", "minor", "op", "value",
}  # fmt: skip
_MAPS = ("data.memory.raw", "data.hugetlb")  # Go maps: keys sorted, contents the host's


def _assert_same_shape(ours: Any, theirs: Any, path: str = "") -> None:
    assert type(ours) is type(theirs), f"{path}: {ours!r} vs runc's {theirs!r}"
    if isinstance(ours, list) and ours and theirs:
        _assert_same_shape(ours[0], theirs[0], f"{path}[0]")
    if not isinstance(ours, dict):
        return
    if path in _MAPS:
        assert list(ours) == sorted(ours), path
        return
    common = [k for k in theirs if k in ours]
    assert [k for k in ours if k in theirs] == common, f"{path}: key order {list(ours)}"
    for key in set(ours) ^ set(theirs):
        side = ours if key in ours else theirs
        assert key in _OPTIONAL and side[key], f"{path}.{key}: only one runtime has it"
    for key in common:
        _assert_same_shape(ours[key], theirs[key], f"{path}.{key}".lstrip("."))


def test_events_stats_is_runcs_json(capsa: Runtime, runc: Runtime, bundle: BundleFactory) -> None:
    ids = _start_both(capsa, runc, bundle(sh(IDLE), edit=_no_cgroups_path))
    texts = {rt.name: rt.run("events", "--stats", ids[rt.name]).stdout for rt in (capsa, runc)}
    ours, theirs = (json.loads(texts[n]) for n in ("capsa-runtime", "runc"))
    assert texts["capsa-runtime"].endswith("}\n") and texts["capsa-runtime"].count("\n") == 1
    assert ", " not in texts["capsa-runtime"] and '": ' not in texts["capsa-runtime"]
    assert list(ours) == list(theirs) == ["type", "id", "data"]
    assert list(ours["data"]) == list(theirs["data"])
    _assert_same_shape(ours, theirs)
    assert ours["data"]["pids"]["current"] >= 1


def test_events_stream_prints_runcs_stats_events(
    capsa: Runtime, runc: Runtime, bundle: BundleFactory, tmp_path: Path
) -> None:
    ids = _start_both(capsa, runc, bundle(sh(IDLE), edit=_no_cgroups_path))
    reference = json.loads(runc.run("events", "--stats", ids["runc"]).stdout)
    out = tmp_path / "events.out"
    with out.open("wb") as f:
        proc = capsa.spawn("events", "--interval", "50ms", ids["capsa-runtime"], stdout=f)
    try:
        wait_for(lambda: out.read_bytes().count(b"\n") >= 2, what="two events")
    finally:
        proc.kill()
        proc.wait()
    first = out.read_text().splitlines()[0]
    assert ", " not in first and '": ' not in first
    _assert_same_shape(json.loads(first), reference)


# -- item 6: without cgroupsPath, the cgroup is named as runc names it -----------------


def test_default_cgroup_is_named_as_runc_names_it(
    capsa: Runtime, runc: Runtime, bundle: BundleFactory
) -> None:
    ids = _start_both(capsa, runc, bundle(sh(IDLE), edit=_no_cgroups_path))
    placed = {}
    for rt in (capsa, runc):
        text = Path(f"/proc/{_init_pid(rt, ids[rt.name])}/cgroup").read_text()
        placed[rt.name] = text.replace(ids[rt.name], "<ID>")
    assert placed["capsa-runtime"] == placed["runc"]
    assert "<ID>" in placed["runc"]


# -- item 2: kill 0 ------------------------------------------------------------------------


def test_kill_0_checks_liveness_as_runc(
    capsa: Runtime, runc: Runtime, bundle: BundleFactory
) -> None:
    b = bundle(sh("while [ ! -e /tmp/stop ]; do sleep 0.05; done"), edit=_no_cgroups_path)
    ids = _start_both(capsa, runc, b)
    for rt in (capsa, runc):
        assert rt.run("kill", ids[rt.name], "0", check=False).returncode == 0
        assert rt.status(ids[rt.name]) == "running"
    (b / "rootfs" / "tmp" / "stop").write_text("")  # both containers share this rootfs
    for rt in (capsa, runc):
        rt.wait_status(ids[rt.name], "stopped")
        proc = rt.run("kill", ids[rt.name], "0", check=False)
        assert proc.returncode == 1, (rt.name, proc.stderr)


# -- item 3: --log, --log-format, --debug -------------------------------------------------

_RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:Z|[+-]\d\d:\d\d)"  # logrus: to the second
_TEXT_LINE = re.compile(rf'^time="{_RFC3339}" level=(\w+) msg=(".*"|\S+)$')


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_file_gets_runcs_lines(capsa: Runtime, runc: Runtime, tmp_path: Path, fmt: str) -> None:
    for rt in (capsa, runc):
        log = tmp_path / f"{rt.name}.{fmt}.log"
        proc = rt.run(
            "--log", str(log), "--log-format", fmt, "kill", rt.new_id(), "KILL", check=False
        )
        assert proc.returncode == 1
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr  # the error, plainly
        lines = log.read_text().splitlines()
        assert len(lines) == 1, (rt.name, lines)
        if fmt == "json":
            entry = json.loads(lines[0])
            assert list(entry) == ["level", "msg", "time"]
            assert entry["level"] == "error" and "does not exist" in entry["msg"]
            assert re.fullmatch(_RFC3339, entry["time"]), entry["time"]
        else:
            match = _TEXT_LINE.match(lines[0])
            assert match and match.group(1) == "error", lines[0]


def test_debug_writes_debug_lines_to_the_log(
    capsa: Runtime, runc: Runtime, bundle: BundleFactory, tmp_path: Path
) -> None:
    b = bundle(["true"], edit=_no_cgroups_path)
    for rt in (capsa, runc):
        log = tmp_path / f"{rt.name}.debug.log"
        rt.run(
            "--debug",
            "--log",
            str(log),
            "--log-format",
            "json",
            "run",
            "--bundle",
            str(b),
            rt.new_id(),
        )
        levels = [json.loads(line)["level"] for line in log.read_text().splitlines()]
        assert "debug" in levels, (rt.name, levels)


def test_a_bad_log_format_is_refused_as_runc(capsa: Runtime, runc: Runtime) -> None:
    for rt in (capsa, runc):
        proc = rt.run("--log-format", "xml", "list", check=False)
        assert proc.returncode == 1
        assert "xml" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


# -- item 4: exec --cgroup -----------------------------------------------------------------


def _cgroup_lines(rt: Runtime, cid: str, *flags: str) -> dict[str, str]:
    out = rt.run("exec", *flags, cid, "cat", "/proc/self/cgroup").stdout
    return {line.split(":", 2)[1]: line.split(":", 2)[2] for line in out.splitlines()}


def test_exec_cgroup_puts_the_process_in_a_sub_cgroup(
    capsa: Runtime, runc: Runtime, bundle: BundleFactory
) -> None:
    ids = _start_both(capsa, runc, bundle(sh(IDLE), edit=_no_cgroups_path))
    for rt in (capsa, runc):
        cid = ids[rt.name]
        own = _cgroup_lines(rt, cid)
        mem = Path("/sys/fs/cgroup/memory", own["memory"].lstrip("/"))
        (mem / "sub").mkdir()
        got = _cgroup_lines(rt, cid, "--cgroup", "memory:sub")
        assert got["memory"] == own["memory"] + "/sub", rt.name
        assert got["pids"] == own["pids"], rt.name  # the other hierarchies: the container's


def test_exec_cgroup_path_for_every_hierarchy(capsa: Runtime, bundle: BundleFactory) -> None:
    cid = capsa.new_id()
    capsa.run("run", "-d", "--bundle", str(bundle(sh(IDLE), edit=_no_cgroups_path)), cid)
    own = _cgroup_lines(capsa, cid)
    for controllers, path in own.items():
        tree = {"": "unified", "name=systemd": "systemd"}.get(controllers, controllers)
        d = Path("/sys/fs/cgroup", tree, path.lstrip("/"))
        if not d.is_dir():
            continue
        (d / "all").mkdir()
        if controllers == "cpuset":  # a v1 cpuset takes no task before it has cpus and mems
            for name in ("cpuset.cpus", "cpuset.mems"):
                (d / "all" / name).write_text((d / name).read_text())
    got = _cgroup_lines(capsa, cid, "--cgroup", "all")
    assert got == {k: v + "/all" for k, v in own.items()}


@pytest.mark.parametrize(
    "value",
    ["missing-sub", "memory:missing-sub", "a:b:c", "nosuchcontroller:x", "../../capsa-no-such"],
)
def test_exec_cgroup_refuses_what_runc_refuses(
    capsa: Runtime, runc: Runtime, bundle: BundleFactory, value: str
) -> None:
    ids = _start_both(capsa, runc, bundle(sh(IDLE), edit=_no_cgroups_path))
    for rt in (capsa, runc):
        proc = rt.run("exec", "--cgroup", value, ids[rt.name], "true", check=False)
        assert proc.returncode == 255, (rt.name, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


# -- item 1: a config without a mount namespace -------------------------------------------


def _in_private_mount_ns(rt: Runtime, tmp_path: Path) -> tuple[Runtime, Path]:
    """The runtime run from a private mount namespace (its mount namespace, where a
    container without one makes its mounts, goes away with it); the wrapper writes that
    namespace's id to a file first."""
    marker = tmp_path / f"{rt.name}.mntns"
    wrapper = tmp_path / f"{rt.name}-in-mntns"
    inner = f'readlink /proc/self/ns/mnt > {marker}; exec "{rt.binary}" "$@"'
    wrapper.write_text(
        f"#!/bin/sh\nexec unshare --mount --propagation private sh -c '{inner}' sh \"$@\"\n"
    )
    wrapper.chmod(0o755)
    return Runtime(rt.name, str(wrapper), rt.root, token=rt.token), marker


def _without_mount_ns(spec: Spec) -> None:
    _no_cgroups_path(spec)
    assert spec.linux is not None
    spec.linux.namespaces = [n for n in spec.linux.namespaces or [] if n.type != "mount"]
    spec.linux.masked_paths = None
    spec.linux.readonly_paths = None


def _without_namespaces(spec: Spec) -> None:
    _without_mount_ns(spec)
    assert spec.linux is not None
    spec.linux.namespaces = []
    spec.hostname = None


@pytest.mark.parametrize("edit", [_without_mount_ns, _without_namespaces], ids=["no-mnt", "none"])
def test_a_config_without_a_mount_namespace_runs_in_the_runtimes(
    capsa: Runtime, runc: Runtime, bundle: BundleFactory, tmp_path: Path, edit: Any
) -> None:
    script = "readlink /proc/self/ns/mnt; ls /probe /bin/busybox; pwd"
    b = bundle(sh(script), edit=edit)
    out = {}
    for base in (capsa, runc):
        rt, marker = _in_private_mount_ns(base, tmp_path)
        cid = base.new_id()
        base.created.append(cid)  # for the fixture's cleanup, should the run fail
        proc = rt.run("run", "--bundle", str(b), cid, check=False)
        assert proc.returncode == 0, (base.name, proc.stderr)
        lines = proc.stdout.splitlines()
        assert lines[0] == marker.read_text().strip(), base.name  # the runtime's namespace
        out[base.name] = lines[1:]
    assert out["capsa-runtime"] == out["runc"] == ["/bin/busybox", "/probe", "/"]


def test_masked_paths_without_a_mount_namespace_are_refused_as_runc(
    capsa: Runtime, runc: Runtime, bundle: BundleFactory
) -> None:
    def edit(spec: Spec) -> None:
        _without_mount_ns(spec)
        assert spec.linux is not None
        spec.linux.masked_paths = ["/proc/kcore"]

    b = bundle(["true"], edit=edit)
    for rt in (capsa, runc):
        proc = rt.run("create", "--bundle", str(b), rt.new_id(), check=False)
        assert proc.returncode == 1
        assert "unable to restrict sys entries without a private MNT namespace" in proc.stderr


# -- item 7: /proc or /sys a symlink in the rootfs ----------------------------------------


@pytest.mark.parametrize("entry,kind", [("proc", "proc"), ("sys", "sysfs")])
def test_a_symlinked_proc_or_sys_is_refused_as_runc(
    capsa: Runtime, runc: Runtime, bundle: BundleFactory, entry: str, kind: str
) -> None:
    def prepare(rootfs: Path) -> None:
        (rootfs / entry).rmdir()
        (rootfs / entry).symlink_to("tmp")

    b = bundle(["true"], prepare=prepare, edit=_no_cgroups_path)
    expected = (
        f'error mounting "{kind}" to rootfs at "/{entry}": '
        f'filesystem "{kind}" must be mounted on ordinary directory'
    )
    for rt in (capsa, runc):
        cid = rt.new_id()
        proc = rt.run("run", "--bundle", str(b), cid, check=False)
        assert proc.returncode == 1, (rt.name, proc.stderr)
        assert expected in proc.stderr.replace('\\"', '"'), (rt.name, proc.stderr)
        assert rt.status(cid) is None


# -- items 8 and 9: bad input gives one line and runc's exit status -----------------------


def _one_line(proc: subprocess.CompletedProcess[str]) -> None:
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "Error:" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("verb", ["run", "create"])
def test_bad_json_config_is_one_line(
    capsa: Runtime, runc: Runtime, bundle: BundleFactory, verb: str
) -> None:
    b = bundle(["true"])
    (b / "config.json").write_text("{bad json")
    for rt in (capsa, runc):
        cid = rt.new_id()
        proc = rt.run(verb, "--bundle", str(b), cid, check=False)
        assert proc.returncode == 1, (rt.name, proc.stderr)
        _one_line(proc)
        assert rt.status(cid) is None


def _runs(rt: Runtime, cid: str, cmdline: bytes) -> bool:
    for pid in json.loads(rt.run("ps", "--format", "json", cid).stdout) or []:
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes() == cmdline:
                return True
        except OSError:
            continue
    return False


def test_exec_pid_file_in_a_missing_directory(
    capsa: Runtime, runc: Runtime, bundle: BundleFactory, tmp_path: Path
) -> None:
    ids = _start_both(capsa, runc, bundle(sh(IDLE), edit=_no_cgroups_path))
    bad = str(tmp_path / "no-such-dir" / "pid")
    for rt in (capsa, runc):
        cid = ids[rt.name]
        proc = rt.run("exec", "--pid-file", bad, cid, "sleep", "61", check=False)
        assert proc.returncode == 255, (rt.name, proc.stderr)
        _one_line(proc)
        # the process its caller cannot know of is not left behind

        def gone(rt: Runtime = rt, cid: str = cid) -> bool:
            return not _runs(rt, cid, b"sleep\x0061\x00")

        wait_for(gone, what=f"{rt.name}'s exec'd process to go")


@pytest.mark.parametrize("verb", [("create",), ("run", "-d")])
def test_create_pid_file_in_a_missing_directory(
    capsa: Runtime, runc: Runtime, bundle: BundleFactory, tmp_path: Path, verb: tuple[str, ...]
) -> None:
    b = bundle(sh(IDLE), edit=_no_cgroups_path)
    for rt in (capsa, runc):
        cid = rt.new_id()
        bad = str(tmp_path / "no-such-dir" / "pid")
        proc = rt.run(*verb, "--pid-file", bad, "--bundle", str(b), cid, check=False)
        assert proc.returncode == 1, (rt.name, proc.stderr)
        _one_line(proc)
        assert rt.status(cid) is None


def test_bad_paths_and_terminal_flags_are_one_line(
    capsa: Runtime, runc: Runtime, bundle: BundleFactory, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")

    def tty(spec: Spec) -> None:
        _no_cgroups_path(spec)
        assert spec.process is not None
        spec.process.terminal = True

    b = bundle(["sh"], edit=tty)
    for base in (capsa, runc):
        under_a_file = Runtime(base.name, base.binary, tmp_path / "a-file" / "root")
        cases = [
            (base, ("create", "--console-socket", str(tmp_path / "no.sock"))),  # no listener
            (base, ("run", "-d")),  # a tty, detached, and nowhere to send it
            (under_a_file, ("create",)),  # --root below a regular file
        ]
        for rt, args in cases:
            cid = base.new_id()
            proc = rt.run(*args, "--bundle", str(b), cid, check=False)
            assert proc.returncode == 1, (base.name, args, proc.stderr)
            _one_line(proc)
            assert base.status(cid) is None
