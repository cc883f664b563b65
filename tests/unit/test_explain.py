"""``capsa explain``'s report builders over fake /proc trees and a temp-dir cgroupfs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from capsa.cgroups import open_manager, parse_mountinfo
from capsa.cgroups.manager import CgroupManager
from capsa.cli import explain as explain_cli
from capsa.engine.containers.types import ContainerRecord, ContainerSpec, MountSpec, State
from capsa.engine.explain import service as ex
from capsa.linux import capabilities as caps
from capsa.oci import runtime_spec as oci
from capsa.oci.codec import to_dict
from capsa.oci.seccomp_default import default_profile

CID = "c0ffee" * 10 + "abcd"
PID = 4242
CONTAINER_NS = {"pid": 11, "net": 12, "mnt": 13, "ipc": 14, "uts": 15, "cgroup": 17}
HOST_NS = {"pid": 1, "net": 2, "mnt": 3, "ipc": 4, "uts": 5, "user": 6, "cgroup": 7, "time": 8}
DOCKER_MINUS_NET_RAW = [c for c in caps.DOCKER_DEFAULT_CAPS if c != "CAP_NET_RAW"]

MOUNTINFO = """\
178 100 0:63 / / ro,relatime - overlay overlay rw,lowerdir+=/r/snapshots/2/fs,\
lowerdir+=/r/snapshots/1/fs,upperdir=/r/overlay-rw/c1/upper,workdir=/r/overlay-rw/c1/work
179 178 0:69 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
180 178 0:70 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
182 178 0:72 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro
183 182 0:73 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs rw,mode=755
187 183 0:32 /capsa-c1 /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory
196 178 254:0 /srv/vol/_data /data rw,relatime - ext4 /dev/vda rw
197 178 254:0 /home/me/src /my\\040src ro,relatime - ext4 /dev/vda rw
200 178 254:0 /r/containers/c1/hostname /etc/hostname ro,relatime - ext4 /dev/vda rw
101 179 0:69 /sys /proc/sys ro,nosuid,nodev,noexec,relatime - proc proc rw
127 179 0:81 / /proc/acpi ro,relatime - tmpfs tmpfs ro
128 179 0:70 /null /proc/kcore rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
"""


def status_text(bounding: list[str], *, seccomp: int, nnp: int, uid: str = "0") -> str:
    mask = f"{caps.parse(bounding, last=40):016x}"
    return (
        f"Name:\tsleep\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t0\t0\t0\t0\nGroups:\t10 20 \n"
        f"CapInh:\t{0:016x}\nCapPrm:\t{mask}\nCapEff:\t{mask}\nCapBnd:\t{mask}\n"
        f"CapAmb:\t{0:016x}\nNoNewPrivs:\t{nnp}\n"
        f"Seccomp:\t{seccomp}\nSeccomp_filters:\t{seccomp // 2}\n"
    )


def make_process(proc: Path, pid: int | str, ns: dict[str, int], **files: str) -> Path:
    base = proc / str(pid)
    (base / "ns").mkdir(parents=True)
    for kind in ex.NAMESPACES:
        inode = ns.get(kind, HOST_NS[kind])
        os.symlink(f"{kind}:[{inode}]", base / "ns" / kind)
    for name, text in files.items():
        (base / name).write_text(text)
    return base


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    """A fake /proc: pid 1 (the host) and the container's init."""
    root = tmp_path / "proc"
    everything = list(caps.CAPABILITIES)[:-1]  # a host without CAP_CHECKPOINT_RESTORE
    make_process(root, 1, {}, status=status_text(everything, seccomp=0, nnp=0))
    base = make_process(
        root,
        PID,
        CONTAINER_NS,
        status=status_text(DOCKER_MINUS_NET_RAW, seccomp=2, nnp=1, uid="1000"),
        stat=f"{PID} (sleep) S " + " ".join(["0"] * 18) + " 777 0 0",
        mountinfo=MOUNTINFO,
        uid_map="         0     100000      65536\n",
        gid_map="         0     100000      65536\n",
        cgroup="4:memory:/capsa-c1\n3:pids:/capsa-c1\n0::/elsewhere\n",
    )
    (base / "root" / "etc").mkdir(parents=True)
    (base / "root" / "etc" / "passwd").write_text(
        "root:x:0:0::/root:/bin/sh\nuser:x:1000:1000::/:\n"
    )
    (root / "sys" / "kernel").mkdir(parents=True)
    (root / "sys" / "kernel" / "cap_last_cap").write_text("40\n")
    return root


ASKED_NAMESPACES = [oci.Namespace(type=t) for t in ("mount", "pid", "ipc", "uts", "network")]


def config(**linux: Any) -> oci.Spec:
    return oci.Spec(
        root=oci.Root(path="/r/rootfs", readonly=True),
        process=oci.Process(
            args=["sleep", "1000"],
            user=oci.User(uid=1000, gid=1000),
            no_new_privileges=True,
            capabilities=oci.Capabilities(
                bounding=DOCKER_MINUS_NET_RAW,
                effective=DOCKER_MINUS_NET_RAW,
                permitted=DOCKER_MINUS_NET_RAW,
            ),
        ),
        mounts=[
            oci.Mount(destination="/proc", type="proc", source="proc"),
            oci.Mount(destination="/data", type="bind", source="/srv/vol/_data", options=["rw"]),
            oci.Mount(destination="/my src", type="bind", source="/home/me/src", options=["ro"]),
            oci.Mount(destination="/etc/hostname", type="bind", source="/r/c1/hostname"),
        ],
        linux=oci.Linux(
            namespaces=[*ASKED_NAMESPACES, oci.Namespace(type="cgroup")],
            cgroups_path="/capsa-c1",
            masked_paths=["/proc/acpi", "/proc/kcore", "/proc/asound"],
            readonly_paths=["/proc/sys", "/proc/sysrq-trigger"],
            seccomp=default_profile(set(DOCKER_MINUS_NET_RAW)),
            **linux,
        ),
    )


USER_MOUNTS = [
    MountSpec(type="volume", target="/data", source="myvol"),
    MountSpec(type="bind", target="/my src", source="/home/me/src", readonly=True),
]


# -- namespaces ---------------------------------------------------------------------------


def test_namespaces_own_and_shared(proc: Path) -> None:
    host, label = ex.host_view(str(proc))
    assert label == "pid 1"
    rows = {
        n.kind: n for n in ex.namespace_report(ex.ProcView(str(proc), PID), host, ASKED_NAMESPACES)
    }
    assert [r for r in rows] == list(ex.NAMESPACES)
    assert rows["pid"].status == "own" and rows["pid"].container == 11 and rows["pid"].host == 1
    assert rows["net"].status == rows["mnt"].status == rows["cgroup"].status == "own"
    assert rows["user"].status == rows["time"].status == "shared with host"
    assert rows["net"].asked == "new" and rows["user"].asked == "host"


def test_host_view_falls_back_to_self(tmp_path: Path) -> None:
    root = tmp_path / "proc"
    (root / "1").mkdir(parents=True)  # pid 1's ns links unreadable / missing
    make_process(root, "self", {})
    view, label = ex.host_view(str(root))
    assert view.pid == "self" and label.startswith("this process")


def test_namespaces_of_a_stopped_container(proc: Path) -> None:
    host, _ = ex.host_view(str(proc))
    joined = [oci.Namespace(type="network", path="/proc/9/ns/net")]
    rows = {n.kind: n for n in ex.namespace_report(None, host, joined)}
    assert rows["net"].status == "not running" and rows["net"].container is None
    assert rows["net"].asked == "join /proc/9/ns/net" and rows["pid"].asked == "host"


# -- capabilities and seccomp ------------------------------------------------------------


def test_capabilities_against_docker_and_the_host(proc: Path) -> None:
    container = caps.parse_status((proc / str(PID) / "status").read_text())
    host = caps.parse_status((proc / "1" / "status").read_text())
    report = ex.capability_report(container, host, ex.last_cap(str(proc)))
    assert report.dropped == ["CAP_NET_RAW"] and report.added == []
    assert "CAP_SYS_ADMIN" in report.not_granted and "CAP_CHOWN" not in report.not_granted
    assert report.kernel_total == 41
    sets = {s.name: s for s in report.sets}
    assert sets["effective"].container == caps.names(caps.parse(DOCKER_MINUS_NET_RAW))
    assert "CAP_CHECKPOINT_RESTORE" not in sets["bounding"].host
    assert sets["ambient"].container == []


def test_capabilities_added_to_docker_default() -> None:
    sets = caps.CapSets(bounding=caps.parse([*caps.DOCKER_DEFAULT_CAPS, "CAP_SYS_ADMIN"]))
    report = ex.capability_report(sets, caps.CapSets(), 40)
    assert report.added == ["CAP_SYS_ADMIN"] and report.dropped == []


def test_seccomp_default_profile_in_filter_mode(proc: Path) -> None:
    status = ex.ProcView(str(proc), PID).status()
    host = ex.ProcView(str(proc), 1).status()
    s = ex.seccomp_report(status, host, config())
    assert (s.mode, s.mode_name, s.filters) == (2, "filter", 1)
    assert (s.host_mode, s.host_mode_name) == (0, "disabled")
    assert s.profile == "default" and s.default_action == "SCMP_ACT_ERRNO"
    assert s.rules > 0 and s.syscalls > s.rules
    assert s.no_new_privs is True and s.host_no_new_privs is False and s.no_new_privs_asked


def test_seccomp_unconfined_and_custom() -> None:
    spec = config()
    assert spec.linux is not None
    spec.linux.seccomp = None
    s = ex.seccomp_report(None, {}, spec)
    assert s.profile == "unconfined" and s.mode is None and s.mode_name == "not running"
    spec.linux.seccomp = oci.Seccomp(
        default_action="SCMP_ACT_ALLOW",
        syscalls=[oci.SeccompSyscall(names=["mount", "umount2"], action="SCMP_ACT_ERRNO")],
    )
    s = ex.seccomp_report(None, {}, spec)
    assert (s.profile, s.default_action, s.rules, s.syscalls) == ("custom", "SCMP_ACT_ALLOW", 1, 2)


# -- mounts -------------------------------------------------------------------------------


def test_parse_mountinfo_unescapes_and_reads_overlay() -> None:
    entries = ex.parse_mountinfo(MOUNTINFO)
    assert entries[0].target == "/" and entries[0].fstype == "overlay"
    lowers, upper = ex.overlay_dirs(entries[0].super_options)
    assert lowers == ["/r/snapshots/2/fs", "/r/snapshots/1/fs"]
    assert upper == "/r/overlay-rw/c1/upper"
    assert any(e.target == "/my src" for e in entries)
    assert ex.overlay_dirs("rw,lowerdir=a:b:c,upperdir=u")[0] == ["a", "b", "c"]


def test_mount_report_classifies_the_table() -> None:
    report = ex.mount_report(MOUNTINFO, config(), USER_MOUNTS, layers=2)
    rows = {r.target: r for r in report.rows}
    assert report.mounted
    root = rows["/"]
    assert (root.kind, root.mode) == ("root", "ro")
    assert "2 layers" in root.detail and "/r/overlay-rw/c1/upper" in root.detail
    assert (rows["/proc"].kind, rows["/proc"].mode) == ("proc", "rw")
    assert (rows["/sys"].kind, rows["/sys"].mode) == ("sys", "ro")
    assert rows["/sys/fs/cgroup/memory"].kind == "cgroup"
    assert rows["/dev"].kind == "dev"
    assert (rows["/proc/acpi"].kind, rows["/proc/acpi"].detail) == ("masked", "ro tmpfs")
    assert (rows["/proc/kcore"].kind, rows["/proc/kcore"].detail) == ("masked", "/dev/null")
    assert (rows["/proc/sys"].kind, rows["/proc/sys"].mode) == ("readonly", "ro")
    data = rows["/data"]
    assert (data.kind, data.source, data.detail, data.mode) == (
        "volume",
        "/srv/vol/_data",
        "volume myvol",
        "rw",
    )
    assert (rows["/my src"].kind, rows["/my src"].mode) == ("bind", "ro")
    assert rows["/my src"].source == "/home/me/src"
    assert rows["/etc/hostname"].kind == "etc"
    assert report.masked_absent == ["/proc/asound"]
    assert report.readonly_absent == ["/proc/sysrq-trigger"]


def test_mount_report_of_a_stopped_container() -> None:
    report = ex.mount_report(None, config(), USER_MOUNTS, layers=3)
    rows = {r.target: r for r in report.rows}
    assert not report.mounted
    assert (rows["/"].mode, rows["/"].detail) == ("ro", "3 layers")
    assert rows["/data"].kind == "volume" and rows["/my src"].mode == "ro"
    assert rows["/proc/acpi"].kind == "masked" and rows["/proc/sys"].kind == "readonly"


# -- cgroup --------------------------------------------------------------------------------


def fake_cgroupfs(root: Path, path: str) -> CgroupManager:
    """memory (without memsw: no swap accounting) and pids, as v1 hierarchies."""
    lines = [f"31 23 0:28 / {root} rw - tmpfs tmpfs rw"]
    for i, c in enumerate(("memory", "pids")):
        (root / c).mkdir(parents=True)
        lines.append(f"{40 + i} 31 0:{40 + i} / {root / c} rw - cgroup cgroup rw,{c}")
    layout = parse_mountinfo("\n".join(lines), str(root))
    mgr = open_manager(path, layout=layout)
    mgr.create()
    memory, pids = root / "memory" / path.strip("/"), root / "pids" / path.strip("/")
    for name, value in {
        "memory.limit_in_bytes": "67108864",
        "memory.soft_limit_in_bytes": "9223372036854771712",
        "memory.usage_in_bytes": "155648",
        "memory.max_usage_in_bytes": "524288",
        "memory.failcnt": "0",
        "memory.stat": "cache 0\n",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    }.items():
        (memory / name).write_text(value)
    (pids / "pids.max").write_text("40")  # someone changed it behind our back
    (pids / "pids.current").write_text("3")
    return mgr


RESOURCES = oci.Resources(
    memory=oci.MemoryResources(limit=64 << 20, swap=128 << 20),
    pids=oci.PidsResources(limit=50),
)


def test_cgroup_limits_asked_and_in_force(tmp_path: Path, proc: Path) -> None:
    mgr = fake_cgroupfs(tmp_path / "cg", "/capsa-c1")
    report = ex.cgroup_report(mgr, RESOURCES, ex.ProcView(str(proc), PID))
    assert (report.version, report.path) == (1, "/capsa-c1")
    limits = {x.name: x for x in report.limits}
    assert limits["memory.limit"].ok and limits["memory.limit"].in_force == "67108864"
    assert limits["memory.limit"].file == "memory.limit_in_bytes"
    assert not limits["pids.limit"].ok and limits["pids.limit"].in_force == "40"
    assert any("swap limit not enforced" in w for w in report.warnings)
    assert {d.hierarchy: d.member for d in report.dirs} == {"memory": True, "pids": True}
    usage = report.usage
    assert usage is not None
    assert (usage.memory, usage.memory_max, usage.memory_limit) == (155648, 524288, 64 << 20)
    assert (usage.pids, usage.pids_limit, usage.oom_kills) == (3, 40, 2)


def test_cgroup_of_a_stopped_container_lists_what_was_asked(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    layout = parse_mountinfo(f"40 31 0:40 / {root}/memory rw - cgroup cgroup rw,memory", str(root))
    report = ex.cgroup_report(open_manager("/capsa-gone", layout=layout), RESOURCES, None)
    assert report.usage is None and report.warnings == []
    assert [(x.name, x.asked, x.in_force) for x in report.limits] == [
        ("memory.limit", str(64 << 20), None),
        ("memory.swap", str(128 << 20), None),
        ("pids.limit", "50", None),
    ]
    assert report.dirs[0].member is None


def test_asked_limits_flattens_lists() -> None:
    res = oci.Resources(
        block_io=oci.BlockIOResources(
            throttle_read_bps_device=[oci.ThrottleDevice(major=8, minor=0, rate=1 << 20)]
        ),
        memory=oci.MemoryResources(disable_oom_killer=True),
        devices=[oci.DeviceCgroup(allow=False, access="rwm")],
    )
    assert sorted(ex.asked_limits(res)) == [
        ("blockIO.throttleReadBpsDevice", "major=8 minor=0 rate=1048576"),
        ("memory.disableOOMKiller", "true"),
    ]


# -- user and liveness ------------------------------------------------------------------


def test_user_inside_and_on_the_host(proc: Path) -> None:
    u = ex.user_report(ex.ProcView(str(proc), PID), config(), "user")
    assert (u.uid, u.gid, u.name, u.groups) == (1000, 0, "user", [10, 20])
    assert (u.host_uid, u.host_gid) == (101000, 100000)
    assert u.uid_map == ["0 100000 65536"] and u.asked == "user"
    stopped = ex.user_report(None, config(), "")
    assert (stopped.uid, stopped.gid, stopped.asked, stopped.host_uid) == (
        1000,
        1000,
        "1000:1000",
        None,
    )


def test_passwd_is_read_inside_the_container_root(tmp_path: Path, proc: Path) -> None:
    host_file = tmp_path / "host-passwd"
    host_file.write_text("evil:x:1000:0::/:\n")
    passwd = proc / str(PID) / "root" / "etc" / "passwd"
    passwd.unlink()
    passwd.symlink_to(host_file)  # absolute: must resolve inside the container's root
    assert ex.passwd_name(ex.ProcView(str(proc), PID), 1000) == ""


def test_passwd_fifo_does_not_hang(proc: Path) -> None:
    passwd = proc / str(PID) / "root" / "etc" / "passwd"
    passwd.unlink()
    os.mkfifo(passwd)
    assert ex.passwd_name(ex.ProcView(str(proc), PID), 0) == ""


def test_map_id() -> None:
    assert ex.map_id("0 100000 65536\n", 5) == 100005
    assert ex.map_id("0 100000 10\n", 10) is None
    assert ex.map_id(None, 0) is None


def record(state: State = State.RUNNING, pid: int = PID, pid_start: int = 777) -> ContainerRecord:
    return ContainerRecord(
        id=CID,
        name="web",
        image_id="sha256:" + "ab" * 32,
        image_name="busybox:local",
        created="2024-01-01T00:00:00Z",
        spec=ContainerSpec(
            image="busybox:local", command=["sleep", "1000"], mounts=list(USER_MOUNTS), user="user"
        ),
        state=state,
        pid=pid,
        pid_start=pid_start,
        chain_ids=["sha256:" + "11" * 32, "sha256:" + "22" * 32],
    )


def test_live_view(proc: Path) -> None:
    assert ex.live_view(record(), str(proc)) is not None
    assert ex.live_view(record(pid_start=778), str(proc)) is None  # pid reused
    assert ex.live_view(record(state=State.EXITED), str(proc)) is None
    assert ex.live_view(record(pid=999), str(proc)) is None
    stat = proc / str(PID) / "stat"
    stat.write_text(stat.read_text().replace(" S ", " Z "))
    assert ex.live_view(record(), str(proc)) is None


# -- the whole report, JSON and text --------------------------------------------------


class FakeSnapshots:
    def __init__(self, root: Path) -> None:
        self.root = root

    def usage(self) -> list[Any]:
        from capsa.store.snapshots import SnapshotUsage

        return [SnapshotUsage("sha256:" + "11" * 32, 4096, "layer")]

    def layer_dirs(self, chains: list[str]) -> list[str]:
        return [str(self.root / "snapshots" / c[-4:] / "fs") for c in chains]

    def rw_dir_of(self, key: str) -> str:
        return str(self.root / "overlay-rw" / key)


class FakeContent:
    def read(self, digest: str) -> bytes:
        history = [{"created_by": "ADD rootfs"}, {"created_by": "RUN x", "empty_layer": False}]
        return json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {
                    "type": "layers",
                    "diff_ids": ["sha256:" + "11" * 32, "sha256:" + "33" * 32],
                },
                "history": history,
            }
        ).encode()


class FakeContext:
    def __init__(self, root: Path) -> None:
        from capsa.engine.containers.paths import ContainerPaths

        self.snapshots = FakeSnapshots(root)
        self.content = FakeContent()
        self._paths = lambda cid: ContainerPaths(str(root), str(root / "run"), cid)

    def paths(self, cid: str) -> Any:
        return self._paths(cid)


@pytest.fixture
def full_report(tmp_path: Path, proc: Path) -> ex.Explanation:
    ctx: Any = FakeContext(tmp_path)
    bundle = Path(ctx.paths(CID).bundle)
    bundle.mkdir(parents=True)
    (bundle / "config.json").write_text(json.dumps(to_dict(config(resources=RESOURCES))))
    upper = Path(ctx.snapshots.rw_dir_of(CID)) / "upper"
    upper.mkdir(parents=True)
    (upper / "changed").write_text("x" * 5000)
    mgr = fake_cgroupfs(tmp_path / "cg", "/capsa-c1")
    return ex.explain(ctx, record(), proc=str(proc), open_cgroup=lambda path: mgr)


def test_explain_puts_it_together(full_report: ex.Explanation) -> None:
    r = full_report
    assert r.running and r.pid == PID and r.config_source == "bundle" and r.host == "pid 1"
    assert r.notes == []
    assert r.cgroup is not None and r.cgroup.usage is not None
    assert r.capabilities is not None and r.capabilities.dropped == ["CAP_NET_RAW"]
    assert r.seccomp is not None and r.seccomp.mode == 2
    assert r.mounts is not None and r.mounts.rows[0].kind == "root"
    assert r.rootfs is not None and r.rootfs.readonly
    layers = r.rootfs.layers
    assert [(x.index, x.size, x.created_by) for x in layers] == [
        (1, 4096, "ADD rootfs"),
        (2, None, "RUN x"),
    ]
    assert layers[1].diff_id == "sha256:" + "33" * 32
    assert r.rootfs.upper_size is not None and r.rootfs.upper_size >= 4096
    assert r.user is not None and r.user.name == "user"
    data = json.loads(json.dumps(to_dict(r)))
    assert data["namespaces"][0] == {
        "kind": "pid",
        "container": 11,
        "host": 1,
        "status": "own",
        "asked": "new",
    }
    assert data["cgroup"]["limits"][0]["inForce"] is not None


def test_explain_a_never_started_container(tmp_path: Path, proc: Path) -> None:
    from capsa.engine.containers.types import Resources

    ctx: Any = FakeContext(tmp_path)
    rec = record(state=State.CREATED, pid=0)
    rec.spec.resources = Resources(memory=64 << 20)
    root = tmp_path / "cg"
    layout = parse_mountinfo(f"40 31 0:40 / {root}/memory rw - cgroup cgroup rw,memory", str(root))
    r = ex.explain(ctx, rec, proc=str(proc), open_cgroup=lambda p: open_manager(p, layout=layout))
    assert not r.running and r.pid == 0 and r.config_source == "generated"
    assert any("not running (created)" in n for n in r.notes)
    assert {n.status for n in r.namespaces} == {"not running"}
    assert r.cgroup is not None and r.cgroup.path == f"/capsa-{CID}"
    assert ("memory.limit", str(64 << 20)) in [(x.name, x.asked) for x in r.cgroup.limits]
    assert r.seccomp is not None and r.seccomp.profile == "default" and r.seccomp.mode is None
    assert r.capabilities is not None and r.capabilities.dropped == []
    assert r.mounts is not None and not r.mounts.mounted
    assert r.user is not None and r.user.asked == "user"


def test_text_output(full_report: ex.Explanation) -> None:
    @click.command()
    def show() -> None:
        explain_cli.print_text(full_report)

    out = CliRunner().invoke(show).output
    for section in (
        "NAMESPACES",
        "CGROUP v1",
        "CAPABILITIES",
        "SECCOMP",
        "MOUNTS",
        "ROOT FILESYSTEM",
        "USER",
    ):
        assert f"\n{section}" in out
    assert "64MiB" in out and "MISMATCH" in out and "swap limit not enforced" in out
    assert "dropped NET_RAW" in out and "filter (2)" in out
    assert "<- /srv/vol/_data" in out and "volume myvol" in out
    lines = out.splitlines()
    pid_line = next(line for line in lines if line.startswith("  pid "))
    assert pid_line.split()[1:4] == ["11", "1", "own"]


def test_bytes_rendering() -> None:
    assert explain_cli._bytes(64 << 20) == "64MiB"
    assert explain_cli._bytes(155648) == "152KiB"
    assert explain_cli._bytes(512) == "512B"
    assert explain_cli._bytes(None) == "-"
