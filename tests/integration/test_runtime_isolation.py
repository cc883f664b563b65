"""What a container sees: namespaces, filesystem, credentials, limits, devices."""

from __future__ import annotations

import ctypes
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers.bundle import BundleFactory, SpecEdit, sh
from tests.helpers.probe import Probe, caps_mask, parse_probe
from tests.helpers.runtime import Runtime

from capsa.oci.runtime_spec import (
    Capabilities,
    Device,
    DeviceCgroup,
    IDMapping,
    Mount,
    Namespace,
    Rlimit,
    Root,
    Spec,
    User,
)

pytestmark = pytest.mark.root


def run_probe(runtime: Runtime, bundle: Path, *sections: str) -> Probe:
    return parse_probe(run_out(runtime, bundle, *sections))


def run_out(runtime: Runtime, bundle: Path, *args: str) -> str:
    """Run the bundle's process (args replace the probe's sections) and return stdout."""
    if args:
        _set_args(bundle, ["/probe", *args])
    proc = runtime.run("run", "--bundle", str(bundle), runtime.new_id(), check=False)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr}"
    return proc.stdout


def _set_args(bundle: Path, args: list[str]) -> None:
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = args
    (bundle / "config.json").write_text(json.dumps(config))


def _host_ns(kind: str) -> str:
    return os.readlink(f"/proc/self/ns/{kind}")


def _add_namespace(kind: str) -> SpecEdit:
    def edit(spec: Spec) -> None:
        assert spec.linux is not None and spec.linux.namespaces is not None
        spec.linux.namespaces.append(Namespace(type=kind))

    return edit


# -- namespaces ------------------------------------------------------------------------


def test_default_namespaces_are_new(runtime: Runtime, bundle: BundleFactory) -> None:
    probe = run_probe(runtime, bundle(), "namespaces")
    for kind in ("pid", "net", "ipc", "uts", "mnt"):
        assert probe.namespace(kind) != _host_ns(kind), kind
    for kind in ("user", "cgroup"):  # not asked for: shared with the host
        assert probe.namespace(kind) == _host_ns(kind), kind


def test_pid_namespace(runtime: Runtime, bundle: BundleFactory) -> None:
    out = run_out(runtime, bundle(sh("echo $$; cd /proc && echo [0-9]*")))
    me, pids = out.splitlines()
    assert me == "1"
    assert pids.split() == ["1"]  # the glob runs in the shell: no other process is visible


def test_uts_namespace(runtime: Runtime, bundle: BundleFactory) -> None:
    probe = run_probe(runtime, bundle(hostname="capsa-box"), "ids")
    assert probe.get("hostname") == "capsa-box"
    assert os.uname().nodename != "capsa-box"


def test_domainname(runtime: Runtime, bundle: BundleFactory) -> None:
    if runtime.is_runc:
        pytest.xfail("runc 1.1 ignores domainname")
    probe = run_probe(runtime, bundle(domainname="example.test"), "ids")
    assert probe.get("domainname") == "example.test"


def test_mount_namespace_hides_host(
    runtime: Runtime, bundle: BundleFactory, tmp_path: Path
) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text("host only")
    probe = run_probe(runtime, bundle(), "mounts")
    targets = {m.target for m in probe.mounts}
    assert "/" in targets and "/proc" in targets
    assert not [t for t in targets if t.startswith(("/work", str(tmp_path)))]
    out = run_out(runtime, bundle(sh(f"cat {secret} || echo missing")))
    assert "host only" not in out
    assert "missing" in out


def test_network_namespace_has_only_lo(runtime: Runtime, bundle: BundleFactory) -> None:
    out = run_out(runtime, bundle(sh("tail -n +3 /proc/net/dev | cut -d: -f1")))
    assert out.split() == ["lo"]


@pytest.fixture
def host_shm() -> Iterator[int]:
    """A SysV shared memory segment in the host's IPC namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    shmid = libc.shmget(0, 4096, 0o600)  # IPC_PRIVATE: always a new segment
    if shmid < 0:
        raise OSError(ctypes.get_errno(), "shmget")
    try:
        yield shmid
    finally:
        libc.shmctl(shmid, 0, None)  # IPC_RMID


def test_ipc_namespace(runtime: Runtime, bundle: BundleFactory, host_shm: int) -> None:
    assert host_shm in _shm_ids(Path("/proc/sysvipc/shm").read_text())
    out = run_out(runtime, bundle(sh("cat /proc/sysvipc/shm")))
    assert out.startswith("       key")
    assert _shm_ids(out) == []


def _shm_ids(table: str) -> list[int]:
    return [int(line.split()[1]) for line in table.splitlines()[1:] if line.strip()]


def _map_users(spec: Spec) -> None:
    assert spec.linux is not None and spec.linux.namespaces is not None
    spec.linux.namespaces.append(Namespace(type="user"))
    # Container root is host root (the bundle lives under a 0700 tmp dir); the rest shift.
    mapping = [IDMapping(0, 0, 1), IDMapping(1, 100001, 65535)]
    spec.linux.uid_mappings = mapping
    spec.linux.gid_mappings = list(mapping)


def test_user_namespace_mapping(runtime: Runtime, bundle: BundleFactory) -> None:
    script = "cat /proc/self/uid_map /proc/self/gid_map; readlink /proc/self/ns/user"
    b = bundle(sh(script), edit=_map_users)
    lines = [line.split() for line in run_out(runtime, b).splitlines()]
    assert lines[:4] == [["0", "0", "1"], ["1", "100001", "65535"]] * 2
    assert lines[4] != [_host_ns("user")]


def test_user_namespace_joined_by_path(runtime: Runtime, bundle: BundleFactory) -> None:
    """The two-stage path: a user namespace joined first, the others made inside it."""
    first = runtime.new_id()
    idle = 'trap "exit 0" TERM; while :; do sleep 0.05; done'
    runtime.run("run", "-d", "--bundle", str(bundle(sh(idle), edit=_map_users)), first)
    init = runtime.state(first)["pid"]

    def edit(spec: Spec) -> None:
        assert spec.linux is not None and spec.linux.namespaces is not None
        spec.linux.namespaces.append(Namespace(type="user", path=f"/proc/{init}/ns/user"))

    script = "readlink /proc/self/ns/user; cat /proc/self/uid_map; grep ^Uid: /proc/self/status"
    out = run_out(runtime, bundle(sh(script), edit=edit)).splitlines()
    assert out[0] == os.readlink(f"/proc/{init}/ns/user") != _host_ns("user")
    assert [line.split() for line in out[1:3]] == [["0", "0", "1"], ["1", "100001", "65535"]]
    assert out[3].split()[1:] == ["0", "0", "0", "0"]
    runtime.run("kill", first, "KILL")


def test_cgroup_namespace(runtime: Runtime, bundle: BundleFactory) -> None:
    probe = run_probe(runtime, bundle(edit=_add_namespace("cgroup")), "namespaces", "cgroups")
    assert probe.namespace("cgroup") != _host_ns("cgroup")
    paths = {line.split(":", 2)[2] for line in probe.all("cgroup")}
    assert paths == {"/"}


def test_time_namespace(runtime: Runtime, bundle: BundleFactory) -> None:
    if not Path("/proc/self/ns/time").exists():
        pytest.skip("kernel has no time namespace")
    if runtime.is_runc:
        pytest.xfail("runc 1.1 does not know the time namespace")

    def edit(spec: Spec) -> None:
        _add_namespace("time")(spec)
        assert spec.linux is not None
        year = {"secs": 86400 * 365, "nanosecs": 0}
        spec.linux.time_offsets = {"boottime": year, "monotonic": year}  # uptime is boottime

    out = run_out(
        runtime, bundle(sh("readlink /proc/self/ns/time; cut -d. -f1 /proc/uptime"), edit=edit)
    )
    ns, uptime = out.split()
    assert ns != _host_ns("time")
    assert int(uptime) >= 86400 * 365


@pytest.mark.parametrize("joined", [("network", "ipc"), ("network", "pid")])
def test_namespaces_joined_by_path(
    runtime: Runtime, bundle: BundleFactory, joined: tuple[str, ...]
) -> None:
    """A second container joins the first's namespaces by path (a pid namespace only
    takes the children of whoever joins it: the init is forked after the join)."""
    first = runtime.new_id()
    idle = 'trap "exit 0" TERM; while :; do sleep 0.05; done'
    runtime.run("run", "-d", "--bundle", str(bundle(sh(idle))), first)
    init = runtime.state(first)["pid"]
    proc_names = {"network": "net", "ipc": "ipc", "pid": "pid"}

    def edit(spec: Spec) -> None:
        assert spec.linux is not None and spec.linux.namespaces is not None
        for ns in spec.linux.namespaces:
            if ns.type in joined:
                ns.path = f"/proc/{init}/ns/{proc_names[ns.type]}"

    script = "; ".join(f"readlink /proc/self/ns/{proc_names[k]}" for k in joined) + "; echo $$"
    out = run_out(runtime, bundle(sh(script), edit=edit)).split()
    assert out[:-1] == [os.readlink(f"/proc/{init}/ns/{proc_names[k]}") for k in joined]
    if "pid" in joined:
        assert int(out[-1]) > 1  # the first container's init is PID 1 there
    else:
        assert out[-1] == "1"
    runtime.run("kill", first, "KILL")


# -- filesystem ----------------------------------------------------------------------------


def test_masked_paths(runtime: Runtime, bundle: BundleFactory) -> None:
    script = (
        "for f in /proc/kcore /proc/keys /proc/timer_list; do"
        " echo $f=$(cat $f 2>/dev/null | wc -c); done;"
        " echo acpi=$(ls /proc/acpi 2>/dev/null | wc -l)"
    )
    out = run_out(runtime, bundle(sh(script)))
    for line in out.split():
        assert line.endswith("=0"), out


def test_readonly_paths(runtime: Runtime, bundle: BundleFactory) -> None:
    script = (
        "echo x > /proc/sys/kernel/hostname && echo proc-sys-writable;"
        "echo 1 > /proc/sysrq-trigger && echo sysrq-writable;"
        "touch /sys/kernel/x 2>/dev/null && echo sys-writable;"
        "cat /proc/sys/kernel/ostype"
    )
    out = run_out(runtime, bundle(sh(script)))
    assert out.split() == ["Linux"]


def test_readonly_root(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle(
        sh("touch /newfile && echo wrote; touch /dev/shm/ok && echo shm-ok"),
        root=Root("rootfs", True),
    )
    assert run_out(runtime, b).split() == ["shm-ok"]
    assert not (b / "rootfs/newfile").exists()


def test_writable_root(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle(sh("echo data > /newfile"))
    run_out(runtime, b)
    assert (b / "rootfs/newfile").read_text() == "data\n"


DEVICES = (
    "null",
    "zero",
    "full",
    "random",
    "urandom",
    "tty",
    "ptmx",
    "fd",
    "stdin",
    "stdout",
    "stderr",
    "shm",
    "pts",
    "mqueue",
)


def test_default_devices(runtime: Runtime, bundle: BundleFactory) -> None:
    script = (
        "for d in "
        + " ".join(DEVICES)
        + "; do [ -e /dev/$d ] || [ -L /dev/$d ] && echo $d; done; stat -c '%F %t:%T' /dev/null"
    )
    out = run_out(runtime, bundle(sh(script))).splitlines()
    assert out[:-1] == list(DEVICES)
    assert out[-1] == "character special file 1:3"


def test_extra_device(runtime: Runtime, bundle: BundleFactory) -> None:
    def edit(spec: Spec) -> None:
        assert spec.linux is not None and spec.linux.resources is not None
        spec.linux.devices = [
            Device(path="/dev/fulldup", type="c", major=1, minor=7, file_mode=0o666)
        ]
        spec.linux.resources.devices = [
            *(spec.linux.resources.devices or []),
            DeviceCgroup(allow=True, type="c", major=1, minor=7, access="rwm"),
        ]

    script = "stat -c '%F %t:%T %a' /dev/fulldup; head -c 3 /dev/fulldup | wc -c"
    out = run_out(runtime, bundle(sh(script), edit=edit)).splitlines()
    assert out == ["character special file 1:7 666", "3"]


def test_mount_through_escaping_symlink_stays_inside(
    runtime: Runtime, bundle: BundleFactory, tmp_path: Path
) -> None:
    outside = tmp_path / "outside-capsa-test"
    outside.mkdir()
    source = tmp_path / "volume"
    source.mkdir()
    (source / "token").write_text("volume")

    def prepare(rootfs: Path) -> None:
        (rootfs / "mnt").rmdir()
        (rootfs / "mnt").symlink_to(outside)  # absolute: a host path if followed naively

    def edit(spec: Spec) -> None:
        assert spec.mounts is not None
        spec.mounts.append(Mount("/mnt/vol", "bind", str(source), ["rbind", "rw"]))

    b = bundle(sh("cat /mnt/vol/token; echo written > /mnt/vol/new"), prepare=prepare, edit=edit)
    assert run_out(runtime, b).split() == ["volume"]
    assert list(outside.iterdir()) == []
    assert (source / "new").read_text() == "written\n"
    assert (b / "rootfs" / str(outside).lstrip("/") / "vol").is_dir()


# -- process attributes --------------------------------------------------------------------


def test_default_capabilities(runtime: Runtime, bundle: BundleFactory) -> None:
    probe = run_probe(runtime, bundle(), "status")
    mask = caps_mask(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
    assert (probe.cap("eff"), probe.cap("prm"), probe.cap("bnd")) == (mask,) * 3
    # exec as uid 0 clears the ambient set; nothing is inheritable by default
    assert (probe.cap("inh"), probe.cap("amb")) == (0, 0)


def test_configured_capabilities(runtime: Runtime, bundle: BundleFactory) -> None:
    names = ["CAP_CHOWN", "CAP_NET_RAW", "CAP_SYS_ADMIN"]

    def edit(spec: Spec) -> None:
        assert spec.process is not None
        spec.process.capabilities = Capabilities(
            bounding=[*names, "CAP_KILL"], effective=names, permitted=names
        )

    probe = run_probe(runtime, bundle(edit=edit), "status")
    assert probe.cap("eff") == caps_mask(names)
    assert probe.cap("prm") == caps_mask(names)
    assert probe.cap("bnd") == caps_mask([*names, "CAP_KILL"])
    assert probe.cap("amb") == 0
    assert probe.cap("inh") == 0


def test_no_new_privileges(runtime: Runtime, bundle: BundleFactory) -> None:
    assert run_probe(runtime, bundle(), "status").get("nonewprivs") == "1"

    def edit(spec: Spec) -> None:
        assert spec.process is not None
        spec.process.no_new_privileges = False

    assert run_probe(runtime, bundle(edit=edit), "status").get("nonewprivs") == "0"


def test_rlimits(runtime: Runtime, bundle: BundleFactory) -> None:
    assert run_probe(runtime, bundle(), "rlimits").rlimit("nofile") == ("1024", "1024")

    def edit(spec: Spec) -> None:
        assert spec.process is not None
        spec.process.rlimits = [
            Rlimit("RLIMIT_NOFILE", hard=512, soft=256),
            Rlimit("RLIMIT_CORE", hard=0, soft=0),
        ]

    probe = run_probe(runtime, bundle(edit=edit), "rlimits")
    assert probe.rlimit("nofile") == ("256", "512")
    assert probe.rlimit("core") == ("0", "0")


def test_user_groups_and_umask(runtime: Runtime, bundle: BundleFactory) -> None:
    def edit(spec: Spec) -> None:
        assert spec.process is not None
        spec.process.user = User(uid=1000, gid=1000, umask=0o027, additional_gids=[10, 20])

    probe = run_probe(runtime, bundle(edit=edit), "ids", "status")
    assert (probe.uid, probe.gid) == (1000, 1000)
    assert {10, 20} <= set(probe.groups) <= {10, 20, 1000}
    assert probe.get("umask") == "0027"
    assert probe.cap("eff") == 0  # a non-root user keeps no effective capability


def test_cwd(runtime: Runtime, bundle: BundleFactory) -> None:
    def edit(spec: Spec) -> None:
        assert spec.process is not None
        spec.process.cwd = "/home/user"

    assert run_probe(runtime, bundle(edit=edit), "ids").get("cwd") == "/home/user"


def test_env(runtime: Runtime, bundle: BundleFactory) -> None:
    def edit(spec: Spec) -> None:
        assert spec.process is not None and spec.process.env is not None
        spec.process.env += ["FOO=bar baz", "EMPTY=", "EQ=a=b"]

    env = run_probe(runtime, bundle(edit=edit), "environment").env
    assert env["FOO"] == "bar baz"
    assert env["EMPTY"] == ""
    assert env["EQ"] == "a=b"
    assert env["PATH"].startswith("/usr/local/sbin")
    assert "CAPSA_TEST_RUNC" not in env  # nothing of the runtime's environment


def test_oom_score_adj(runtime: Runtime, bundle: BundleFactory) -> None:
    def edit(spec: Spec) -> None:
        assert spec.process is not None
        spec.process.oom_score_adj = 123

    assert run_probe(runtime, bundle(edit=edit), "ids").get("oom_score_adj") == "123"


def test_no_runtime_fd_leaks(runtime: Runtime, bundle: BundleFactory) -> None:
    fds = run_probe(runtime, bundle(), "fds").fds
    assert set(fds) == {0, 1, 2}, fds


def test_sysctl(runtime: Runtime, bundle: BundleFactory) -> None:
    host_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    host_shmmax = Path("/proc/sys/kernel/shmmax").read_text()

    def edit(spec: Spec) -> None:
        assert spec.linux is not None
        spec.linux.sysctl = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "123456789"}

    b = bundle(sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax"), edit=edit)
    assert run_out(runtime, b).split() == ["1", "123456789"]
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host_forward
    assert Path("/proc/sys/kernel/shmmax").read_text() == host_shmmax


def test_ambient_capabilities_for_non_root(runtime: Runtime, bundle: BundleFactory) -> None:
    names = ["CAP_NET_BIND_SERVICE"]

    def edit(spec: Spec) -> None:
        assert spec.process is not None
        spec.process.user = User(uid=1000, gid=1000)
        spec.process.capabilities = Capabilities(
            bounding=names, effective=names, permitted=names, inheritable=names, ambient=names
        )

    probe = run_probe(runtime, bundle(edit=edit), "status")
    assert probe.uid == 1000
    assert probe.cap("amb") == caps_mask(names)
    assert probe.cap("eff") == caps_mask(names)
