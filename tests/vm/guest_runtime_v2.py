"""capsa-runtime on a real cgroup2 kernel; run inside the guest by test_runtime_v2_vm.py.

Skips itself unless /sys/fs/cgroup is cgroup2. Each test drives the ``capsa-runtime``
CLI with a private ``--root`` over one shared, read-only busybox rootfs (built once per
module) and a cgroupsPath ``/<capsa-test-rand>/<container id>``. The guest's CPU is
~15x slower than the host's: few containers, few processes.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.helpers import unique_name
from tests.helpers.bundle import write_config
from tests.helpers.rootfs import BUSYBOX, build_busybox_rootfs
from tests.helpers.runtime import Runtime

from capsa.oci.defaults import default_spec
from capsa.oci.runtime_spec import (
    CPUResources,
    Device,
    DeviceCgroup,
    MemoryResources,
    Namespace,
    PidsResources,
    Resources,
    Root,
    Spec,
)

CGROUP_ROOT = Path("/sys/fs/cgroup")
MiB = 1 << 20
TIMEOUT = 180  # seconds per runtime command: python starts slowly under TCG

SpecEdit = Callable[[Spec], None]


def _is_cgroup2() -> bool:
    """Whether /sys/fs/cgroup is a cgroup2 mount (mountinfo: fstype after " - ")."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        fields, _, rest = line.partition(" - ")
        parts = fields.split()
        if len(parts) > 4 and parts[4] == str(CGROUP_ROOT):
            fstype = rest.split()[0] if rest else ""
            return fstype == "cgroup2"
    return False


pytestmark = pytest.mark.skipif(not _is_cgroup2(), reason="/sys/fs/cgroup is not cgroup2")


@dataclass(frozen=True)
class Container:
    id: str
    bundle: Path
    cgroup: Path  # its directory under /sys/fs/cgroup

    def read(self, name: str) -> str:
        return (self.cgroup / name).read_text().strip()

    def keyed(self, name: str) -> dict[str, int]:
        """A flat-keyed cgroup file (memory.events, pids.events) as a dict."""
        pairs = (line.split() for line in self.read(name).splitlines())
        return {key: int(value) for key, value in pairs}


@dataclass
class Bundles:
    """``bundles(args, edit) -> Container``: a bundle over the shared rootfs."""

    tmp: Path
    rootfs: Path
    runtime: Runtime

    def __call__(self, args: list[str], edit: SpecEdit | None = None) -> Container:
        cid = self.runtime.new_id()
        bundle = self.tmp / cid
        bundle.mkdir()
        spec = default_spec(terminal=False, args=args)
        spec.root = Root(path=str(self.rootfs), readonly=True)
        assert spec.linux is not None
        spec.linux.cgroups_path = f"/{self.runtime.token}/{cid}"
        if edit is not None:
            edit(spec)
        write_config(bundle, spec)
        return Container(cid, bundle, CGROUP_ROOT / self.runtime.token / cid)


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not BUSYBOX.is_file():
        pytest.skip(f"needs {BUSYBOX} (apt-get install busybox-static)")
    return build_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs", probe=False)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    binary = Path(sys.executable).parent / "capsa-runtime"
    if not binary.exists():
        pytest.skip(f"no {binary}")
    rt = Runtime("capsa-runtime", str(binary), tmp_path / "runtime-root", token=unique_name())
    yield rt
    problems = rt.cleanup()
    problems += _remove_cgroups(CGROUP_ROOT / rt.token)
    assert not problems, problems


def _remove_cgroups(parent: Path) -> list[str]:
    """rmdir ``parent`` (runtimes delete only the leaf); report leaves left behind."""
    if not parent.is_dir():
        return []
    problems = []
    for child in sorted(p for p in parent.iterdir() if p.is_dir()):
        problems.append(f"cgroup {child} left behind")
        with contextlib.suppress(OSError):
            child.rmdir()
    try:
        parent.rmdir()
    except OSError as e:
        problems.append(f"cannot remove {parent}: {e}")
    return problems


@pytest.fixture
def bundles(tmp_path: Path, rootfs: Path, runtime: Runtime) -> Bundles:
    return Bundles(tmp_path, rootfs, runtime)


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


def resources(spec: Spec) -> Resources:
    assert spec.linux is not None
    if spec.linux.resources is None:
        spec.linux.resources = Resources()
    return spec.linux.resources


def run_kept(runtime: Runtime, c: Container) -> tuple[int, str, str]:
    """``run --keep``: the container exits but its cgroup stays for inspection."""
    proc = runtime.run(
        "run", "--keep", "--bundle", str(c.bundle), c.id, check=False, timeout=TIMEOUT
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_memory_limit_oom_kills_the_init(runtime: Runtime, bundles: Bundles) -> None:
    def edit(spec: Spec) -> None:
        resources(spec).memory = MemoryResources(limit=32 * MiB)

    # busybox dd allocates and fills one 100 MiB buffer
    c = bundles(["/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"], edit)
    code, out, err = run_kept(runtime, c)
    assert code == 128 + 9, (code, out, err)
    assert c.read("memory.max") == str(32 * MiB)
    events = c.keyed("memory.events")
    assert events["oom_kill"] >= 1, events
    runtime.run("delete", c.id, timeout=TIMEOUT)
    assert not c.cgroup.exists()


def test_pids_limit_stops_a_fork_loop(runtime: Runtime, bundles: Bundles) -> None:
    def edit(spec: Spec) -> None:
        resources(spec).pids = PidsResources(limit=20)

    c = bundles(sh("for i in $(seq 40); do sleep 30 & done; echo all-forked"), edit)
    code, out, err = run_kept(runtime, c)
    assert c.read("pids.max") == "20"
    assert c.keyed("pids.events")["max"] > 0, c.read("pids.events")
    assert "all-forked" not in out and "fork" in err, (code, out, err)
    runtime.run("delete", "--force", c.id, timeout=TIMEOUT)


def test_container_sees_its_own_cgroup(runtime: Runtime, bundles: Bundles) -> None:
    def edit(spec: Spec) -> None:
        assert spec.linux is not None and spec.linux.namespaces is not None
        spec.linux.namespaces.append(Namespace(type="cgroup"))
        resources(spec).memory = MemoryResources(limit=32 * MiB)

    c = bundles(sh("cat /proc/self/cgroup; cat /sys/fs/cgroup/memory.max"), edit)
    proc = runtime.run("run", "--bundle", str(c.bundle), c.id, timeout=TIMEOUT)
    assert proc.stdout.split() == ["0::/", str(32 * MiB)], proc.stdout + proc.stderr


def _deny_all_with_devices(*devices: Device) -> SpecEdit:
    """A deny-all device config creating ``devices``. As in runc, a linux.devices entry
    gets no allow rule of its own, and replaces (rule included) the default device of
    the same path: the nodes exist but cannot be opened."""

    def edit(spec: Spec) -> None:
        assert spec.linux is not None
        resources(spec).devices = [DeviceCgroup(allow=False, access="rwm")]
        spec.linux.devices = list(devices)

    return edit


def _run_devices(runtime: Runtime, bundles: Bundles, script: str, edit: SpecEdit) -> str:
    c = bundles(sh(script), edit)
    proc = runtime.run("run", "--bundle", str(c.bundle), c.id, check=False, timeout=TIMEOUT)
    return proc.stdout + proc.stderr


def _denied(output: str, path: str) -> bool:
    """busybox said it could not open ``path``: EPERM (the device cgroup's answer)."""
    return any(path in line and "Operation not permitted" in line for line in output.splitlines())


def test_null_replaced_by_config_is_denied(runtime: Runtime, bundles: Bundles) -> None:
    null = Device(path="/dev/null", type="c", major=1, minor=3, file_mode=0o666)
    script = "ls -l /dev/null; cat /dev/null && echo null-readable; head -c 4 /dev/zero | wc -c"
    out = _run_devices(runtime, bundles, script, _deny_all_with_devices(null))
    assert out.startswith("crw-rw-rw-"), out  # /dev/null exists
    assert "\n4\n" in out, out  # /dev/zero keeps its default rule
    assert "null-readable" not in out, out
    assert _denied(out, "/dev/null"), out


def test_config_device_not_allowed_by_itself(runtime: Runtime, bundles: Bundles) -> None:
    """runc's dev.bats "device cgroup deny": /dev/kmsg is created but denied."""
    kmsg = Device(path="/dev/kmsg", type="c", major=1, minor=11, file_mode=0o600)
    script = "ls -l /dev/kmsg; echo capsa-test > /dev/kmsg && echo kmsg-writable; cat /dev/null"
    out = _run_devices(runtime, bundles, script, _deny_all_with_devices(kmsg))
    assert out.startswith("crw-------"), out
    assert "kmsg-writable" not in out, out
    assert _denied(out, "/dev/kmsg"), out


def test_lifecycle_on_cgroup2(runtime: Runtime, bundles: Bundles) -> None:
    def edit(spec: Spec) -> None:
        res = resources(spec)
        res.memory = MemoryResources(limit=32 * MiB)
        res.cpu = CPUResources(quota=50_000, period=100_000)

    c = bundles(["/bin/sleep", "1000"], edit)
    runtime.run("run", "-d", "--bundle", str(c.bundle), c.id, timeout=TIMEOUT)
    assert c.read("cpu.max") == "50000 100000"
    assert c.read("memory.max") == str(32 * MiB)
    runtime.run("pause", c.id, timeout=TIMEOUT)
    assert runtime.status(c.id) == "paused"
    assert c.read("cgroup.freeze") == "1"
    runtime.run("resume", c.id, timeout=TIMEOUT)
    assert runtime.status(c.id) == "running"
    assert c.read("cgroup.freeze") == "0"
    runtime.run("update", "--memory", "64m", c.id, timeout=TIMEOUT)
    assert c.read("memory.max") == str(64 * MiB)
    event = json.loads(runtime.run("events", "--stats", c.id, timeout=TIMEOUT).stdout)
    assert event["type"] == "stats" and event["id"] == c.id, event
    assert event["data"]["memory"]["usage"]["usage"] > 0, event["data"]["memory"]
    assert event["data"]["memory"]["usage"]["limit"] == 64 * MiB, event["data"]["memory"]
    runtime.run("delete", "--force", c.id, timeout=TIMEOUT)
    assert not c.cgroup.exists()
    assert runtime.status(c.id) is None


def test_exec_cgroup_joins_a_sub_cgroup_on_cgroup2(runtime: Runtime, bundles: Bundles) -> None:
    """runc's ``exec --cgroup PATH``; cgroup v2 has no controller-specific form."""
    c = bundles(["/bin/sleep", "1000"])
    runtime.run("run", "-d", "--bundle", str(c.bundle), c.id, timeout=TIMEOUT)
    (c.cgroup / "sub").mkdir()
    out = runtime.run(
        "exec", "--cgroup", "sub", c.id, "cat", "/proc/self/cgroup", timeout=TIMEOUT
    ).stdout
    assert out.split() == [f"0::/{runtime.token}/{c.id}/sub"], out
    bad = runtime.run("exec", "--cgroup", "memory:sub", c.id, "true", check=False, timeout=TIMEOUT)
    assert bad.returncode == 255 and "unknown controller memory" in bad.stderr, bad.stderr
    runtime.run("delete", "--force", c.id, timeout=TIMEOUT)
    assert not c.cgroup.exists()


def test_without_cgroups_path_the_cgroup_is_placed_as_runc_does(
    runtime: Runtime, bundles: Bundles
) -> None:
    """runc's cgroupfs driver on cgroup2: the container id under the parent of the
    runtime's own cgroup (which holds processes, so cannot enable controllers below)."""

    def edit(spec: Spec) -> None:
        assert spec.linux is not None
        spec.linux.cgroups_path = None

    c = bundles(["/bin/cat", "/proc/self/cgroup"], edit)
    own = Path("/proc/self/cgroup").read_text().strip().partition("::")[2]
    parent = own.rstrip("/").rpartition("/")[0] or "/"
    proc = runtime.run("run", "--bundle", str(c.bundle), c.id, timeout=TIMEOUT)
    expected = f"0::{parent.rstrip('/')}/{c.id}"
    assert proc.stdout.split() == [expected], proc.stdout + proc.stderr
