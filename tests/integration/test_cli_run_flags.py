"""`capsa run` flags: each flag's effect seen from inside the container or from the host."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers import capsa_cli
from tests.helpers.capsa_cli import IMAGE, CapsaCli
from tests.helpers.probe import CAPABILITY_NUMBERS, caps_mask

busybox_tarball = capsa_cli.busybox_tarball  # fixtures
capsa_module = capsa_cli.capsa_module
capsa = capsa_cli.capsa

pytestmark = pytest.mark.root

DOCKER_DEFAULT_CAPS = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]
MIB = 1024 * 1024


def _host_status(key: str) -> str:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return line.split()[1]
    raise KeyError(key)


def _block_device() -> tuple[str, str]:
    """A host block device path and its major:minor (vda, sda, ... whatever exists)."""
    for name in sorted(os.listdir("/sys/block")):
        if name.startswith(("loop", "zram", "ram")):
            continue
        dev = Path("/dev", name)
        if dev.exists():
            return str(dev), Path("/sys/block", name, "dev").read_text().strip()
    pytest.skip("no block device on this host")


# -- process: env, workdir, user, hostname, entrypoint, labels ---------------------------


def test_env_env_file_workdir_hostname(capsa: CapsaCli, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# a comment\nFROM_FILE=yes\nSPACED=two words\n\nFOO=from-file\n")
    p = capsa.probe(
        "-e",
        "FOO=bar",
        "--env-file",
        str(env_file),
        "-e",
        "EMPTY=",
        "-w",
        "/tmp",
        "-h",
        "myhost",
        sections=("ids", "environment"),
    )
    env = p.env
    assert env["FOO"] == "bar"  # -e wins over --env-file, like Docker
    assert env["FROM_FILE"] == "yes" and env["SPACED"] == "two words"
    assert env["EMPTY"] == ""
    assert env["HOSTNAME"] == "myhost"
    assert "PATH" in env
    assert p.get("cwd") == "/tmp"
    assert p.get("hostname") == "myhost"


def test_workdir_is_created(capsa: CapsaCli) -> None:
    proc = capsa.sh("pwd", "-w", "/does/not/exist/yet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "/does/not/exist/yet"


@pytest.mark.parametrize(
    ("user", "uid", "gid"),
    [
        ("user", 1000, 1000),
        ("nobody", 65534, 65534),
        ("1234:5678", 1234, 5678),
        ("1000", 1000, 1000),
    ],
)
def test_user(capsa: CapsaCli, user: str, uid: int, gid: int) -> None:
    p = capsa.probe("-u", user, sections=("status",))
    assert (p.uid, p.gid) == (uid, gid)


def test_user_home_from_image_passwd(capsa: CapsaCli) -> None:
    proc = capsa.sh('echo "$HOME $(id -un)"', "-u", "user")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["/home/user", "user"]


def test_unknown_user_fails_125(capsa: CapsaCli) -> None:
    proc = capsa.run("run", "--rm", "-u", "nosuchuser", IMAGE, "true", check=False)
    assert proc.returncode in (125, 126), proc.stderr
    assert "nosuchuser" in proc.stderr


def test_entrypoint_replaces_and_resets_cmd(capsa: CapsaCli) -> None:
    proc = capsa.run("run", "--rm", "--entrypoint", "/bin/echo", IMAGE, "hello", "world")
    assert proc.stdout == "hello world\n"
    # --entrypoint resets the image's CMD (/bin/sh): echo prints an empty line
    proc = capsa.run("run", "--rm", "--entrypoint", "echo", IMAGE)
    assert proc.stdout == "\n"
    name = capsa.name()
    capsa.run("create", "--name", name, "--entrypoint", "echo", IMAGE)
    doc = capsa.inspect(name)
    assert doc["Config"]["Entrypoint"] == ["echo"]
    assert not doc["Config"]["Cmd"]
    assert doc["Path"] == "echo"


def test_labels_and_label_file(capsa: CapsaCli, tmp_path: Path) -> None:
    label_file = tmp_path / "labels"
    label_file.write_text("# labels\nfrom.file=1\nshared=file\n")
    name = capsa.name()
    capsa.run(
        "create",
        "--name",
        name,
        "-l",
        "a=1",
        "--label",
        "flag",
        "--label-file",
        str(label_file),
        "-l",
        "shared=flag",
        IMAGE,
    )
    labels = capsa.inspect(name)["Config"]["Labels"]
    assert labels == {"a": "1", "flag": "", "from.file": "1", "shared": "flag"}
    assert json.loads(capsa.fmt(name, "{{json .Config.Labels}}")) == labels


# -- init, stop signal and timeout -------------------------------------------------------


def test_init_is_pid1_and_stop_is_quick(capsa: CapsaCli) -> None:
    proc = capsa.run("run", "--rm", "--init", IMAGE, "cat", "/proc/1/cmdline")
    assert proc.stdout.split("\0")[0] == "/sbin/docker-init"
    name = capsa.name()
    capsa.detached("--name", name, "--init")
    assert capsa.inspect(name)["HostConfig"]["Init"] is True
    began = time.monotonic()
    capsa.run("stop", "-t", "20", name)
    assert time.monotonic() - began < 15, "stop waited for the timeout despite --init"
    assert capsa.status(name) == "exited"
    assert capsa.fmt(name, "{{.State.ExitCode}}") == "143"


def test_stop_signal(capsa: CapsaCli) -> None:
    name = capsa.name()
    script = 'trap "echo got-usr1; exit 7" USR1; echo ready; while :; do sleep 0.1; done'
    capsa.detached("--name", name, "--stop-signal", "USR1", cmd=("sh", "-c", script))
    capsa.wait_for(lambda: "ready" in capsa.run("logs", name).stdout, what="ready")
    assert capsa.inspect(name)["Config"]["StopSignal"] in ("USR1", "SIGUSR1")
    capsa.run("stop", "-t", "20", name)
    assert capsa.fmt(name, "{{.State.ExitCode}}") == "7"
    assert "got-usr1" in capsa.run("logs", name).stdout


def test_stop_timeout(capsa: CapsaCli) -> None:
    name = capsa.name()
    # busybox sleep as PID 1 ignores SIGTERM: only the SIGKILL after the timeout stops it
    capsa.detached("--name", name, "--stop-timeout", "1")
    assert capsa.inspect(name)["Config"]["StopTimeout"] == 1
    began = time.monotonic()
    capsa.run("stop", name)
    assert time.monotonic() - began < 8, "stop did not use --stop-timeout 1"
    assert capsa.fmt(name, "{{.State.ExitCode}}") == "137"


# -- filesystem: read-only, tmpfs ----------------------------------------------------------


def test_read_only_and_tmpfs(capsa: CapsaCli) -> None:
    script = (
        "touch /rootfile && echo root-writable; "
        "echo x > /scratch/f && echo tmpfs-writable; "
        "df -k /scratch | tail -1; grep ' /scratch ' /proc/mounts"
    )
    proc = capsa.sh(script, "--read-only", "--tmpfs", "/scratch:rw,size=1m,mode=1777")
    assert "root-writable" not in proc.stdout
    assert "Read-only file system" in proc.stderr
    assert "tmpfs-writable" in proc.stdout
    df_line, mount_line = proc.stdout.strip().splitlines()[-2:]
    assert df_line.split()[1] == "1024"
    assert mount_line.split()[2] == "tmpfs" and "size=1024k" in mount_line


def test_tmpfs_without_read_only(capsa: CapsaCli) -> None:
    p = capsa.probe("--tmpfs", "/run/t", sections=("mounts",))
    mount = p.mount("/run/t")
    assert mount is not None and mount.fstype == "tmpfs"
    assert "noexec" in mount.options and "nosuid" in mount.options


# -- security: capabilities, privileged, no-new-privileges, seccomp ------------------------


def test_default_capabilities_are_dockers(capsa: CapsaCli) -> None:
    p = capsa.probe(sections=("status",))
    assert p.cap("eff") == caps_mask(DOCKER_DEFAULT_CAPS)
    assert p.cap("bnd") == caps_mask(DOCKER_DEFAULT_CAPS)


def test_cap_add_and_drop(capsa: CapsaCli) -> None:
    p = capsa.probe("--cap-add", "NET_ADMIN", "--cap-drop", "chown", sections=("status",))
    eff = p.cap("eff")
    assert eff & (1 << CAPABILITY_NUMBERS["CAP_NET_ADMIN"])
    assert not eff & (1 << CAPABILITY_NUMBERS["CAP_CHOWN"])
    assert eff & (1 << CAPABILITY_NUMBERS["CAP_KILL"])
    p = capsa.probe("--cap-drop", "ALL", "--cap-add", "CAP_KILL", sections=("status",))
    assert p.cap("eff") == caps_mask(["CAP_KILL"])
    proc = capsa.sh("chown 1000 /tmp", "--cap-drop", "CHOWN")
    assert proc.returncode != 0 and "Operation not permitted" in proc.stderr


def test_cap_add_unknown_fails_125(capsa: CapsaCli) -> None:
    proc = capsa.run("run", "--rm", "--cap-add", "CAP_NOPE", IMAGE, "true", check=False)
    assert proc.returncode == 125
    assert "CAP_NOPE" in proc.stderr.upper()
    assert capsa.run("ps", "-aq").stdout == ""


def test_privileged(capsa: CapsaCli) -> None:
    host_dev = next(
        (d for d in ("loop-control", "kmsg", "mem", "fuse") if Path("/dev", d).exists()), None
    )
    p = capsa.probe("--privileged", sections=("status", "mounts"))
    assert p.cap("eff") == int(_host_status("CapEff"), 16)
    assert p.get("seccomp") == "0"
    sys_mount = p.mount("/sys")
    assert sys_mount is not None and "rw" in sys_mount.options
    if host_dev:
        proc = capsa.sh(f"test -e /dev/{host_dev} && echo present", "--privileged")
        assert proc.stdout.strip() == "present", f"/dev/{host_dev} missing: {proc.stderr}"
    proc = capsa.sh(f"test -e /dev/{host_dev or 'mem'} && echo present")
    assert proc.stdout.strip() != "present"


def test_no_new_privileges(capsa: CapsaCli) -> None:
    assert capsa.probe(sections=("status",)).get("nonewprivs") == "0"
    p = capsa.probe("--security-opt", "no-new-privileges", sections=("status",))
    assert p.get("nonewprivs") == "1"
    p = capsa.probe("--security-opt", "no-new-privileges:true", sections=("status",))
    assert p.get("nonewprivs") == "1"


def test_seccomp_default_and_unconfined(capsa: CapsaCli) -> None:
    assert capsa.probe(sections=("status",)).get("seccomp") == "2"
    assert capsa.sh("unshare -m true").returncode != 0
    blocked = capsa.sh("unshare -U true && echo made-userns")
    assert "made-userns" not in blocked.stdout  # the default profile blocks unshare
    p = capsa.probe("--security-opt", "seccomp=unconfined", sections=("status",))
    assert p.get("seccomp") == "0"
    allowed = capsa.sh(
        "unshare -U true && echo made-userns", "--security-opt", "seccomp=unconfined"
    )
    assert "made-userns" in allowed.stdout, allowed.stderr


def test_seccomp_profile_file(capsa: CapsaCli, tmp_path: Path) -> None:
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
                ],
            }
        )
    )
    proc = capsa.sh(
        "touch /tmp/file && echo touched; mkdir /tmp/dir && echo made",
        "--security-opt",
        f"seccomp={profile}",
    )
    assert "touched" in proc.stdout
    assert "made" not in proc.stdout
    assert "Operation not permitted" in proc.stderr
    bad = capsa.run(
        "run",
        "--rm",
        "--security-opt",
        f"seccomp={tmp_path}/missing.json",
        IMAGE,
        "true",
        check=False,
    )
    assert bad.returncode == 125 and "missing.json" in bad.stderr


# -- devices, ulimits, sysctls, shm ---------------------------------------------------------


def test_device(capsa: CapsaCli) -> None:
    if not Path("/dev/fuse").exists():
        pytest.skip("no /dev/fuse")
    proc = capsa.sh("ls -l /dev/fuse", "--device", "/dev/fuse")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("c") and "10," in proc.stdout and "229" in proc.stdout
    proc = capsa.sh(
        "ls -l /dev/mynull && echo hi > /dev/mynull && echo wrote",
        "--device",
        "/dev/null:/dev/mynull",
    )
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and "1," in proc.stdout
    assert capsa.sh("test -e /dev/fuse").returncode != 0


def test_device_missing_fails_125(capsa: CapsaCli) -> None:
    proc = capsa.run("run", "--rm", "--device", "/dev/capsa-test-nope", IMAGE, "true", check=False)
    assert proc.returncode == 125 and "/dev/capsa-test-nope" in proc.stderr
    assert capsa.run("ps", "-aq").stdout == ""


def test_ulimit(capsa: CapsaCli) -> None:
    p = capsa.probe("--ulimit", "nofile=1024:2048", sections=("rlimits",))
    assert p.rlimit("nofile") == ("1024", "2048")
    p = capsa.probe("--ulimit", "nproc=512", sections=("rlimits",))
    assert p.rlimit("nproc") == ("512", "512")


@contextlib.contextmanager
def _host_sysctls_kept(*names: str) -> Iterator[dict[str, str]]:
    """Remember host sysctls and put them back whatever capsa did (the machine is shared)."""
    paths = {n: Path("/proc/sys", n.replace(".", "/")) for n in names}
    saved = {n: p.read_text() for n, p in paths.items()}
    try:
        yield saved
    finally:
        for name, path in paths.items():
            if path.read_text() != saved[name]:
                path.write_text(saved[name])


def test_sysctl(capsa: CapsaCli) -> None:
    with _host_sysctls_kept("net.ipv4.ip_forward") as host:
        proc = capsa.sh(
            "cat /proc/sys/net/ipv4/ip_forward",
            "--sysctl",
            "net.ipv4.ip_forward=1",
            "--network",
            "none",
        )
        assert proc.stdout.strip() == "1", proc.stderr
        assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host["net.ipv4.ip_forward"]
    proc = capsa.sh("cat /proc/sys/kernel/msgmax", "--sysctl", "kernel.msgmax=12345")
    assert proc.stdout.strip() == "12345", proc.stderr


def test_sysctl_outside_namespaces_refused(capsa: CapsaCli) -> None:
    with _host_sysctls_kept("vm.swappiness") as host:
        wanted = "7" if host["vm.swappiness"].strip() != "7" else "8"
        bad = capsa.run(
            "run", "--rm", "--sysctl", f"vm.swappiness={wanted}", IMAGE, "true", check=False
        )
        changed = Path("/proc/sys/vm/swappiness").read_text() != host["vm.swappiness"]
    assert not changed, "--sysctl vm.swappiness changed the HOST's value"
    assert bad.returncode == 125, "a sysctl outside the container's namespaces must be refused"
    assert "vm.swappiness" in bad.stderr
    assert capsa.run("ps", "-aq").stdout == ""


def test_shm_size(capsa: CapsaCli) -> None:
    default = capsa.sh("df -k /dev/shm | tail -1")
    assert default.stdout.split()[1] == "65536", default.stdout
    proc = capsa.sh("df -k /dev/shm | tail -1", "--shm-size", "16m")
    assert proc.stdout.split()[1] == "16384", proc.stdout


# -- namespaces -------------------------------------------------------------------------------


def test_pid_host(capsa: CapsaCli) -> None:
    me = os.getpid()
    p = capsa.probe("--pid", "host", sections=("namespaces",))
    assert p.namespace("pid") == os.readlink("/proc/self/ns/pid")
    proc = capsa.sh(f"test -d /proc/{me} && echo sees-host", "--pid", "host")
    assert "sees-host" in proc.stdout
    own = capsa.probe(sections=("namespaces", "ids"))
    assert own.namespace("pid") != os.readlink("/proc/self/ns/pid")
    assert own.get("pid") == "1"


def test_ipc_and_uts_host(capsa: CapsaCli) -> None:
    p = capsa.probe("--ipc", "host", "--uts", "host", sections=("namespaces", "ids"))
    assert p.namespace("ipc") == os.readlink("/proc/self/ns/ipc")
    assert p.namespace("uts") == os.readlink("/proc/self/ns/uts")
    assert p.get("hostname") == socket.gethostname()
    own = capsa.probe(sections=("namespaces",))
    assert own.namespace("ipc") != os.readlink("/proc/self/ns/ipc")
    assert own.namespace("uts") != os.readlink("/proc/self/ns/uts")


def test_ipc_shareable_with_container(capsa: CapsaCli) -> None:
    name = capsa.name()
    cid = capsa.detached("--name", name, "--init", "--ipc", "shareable")
    inside = f"/proc/{capsa.pid(name)}/ns/ipc"
    p = capsa.probe("--ipc", f"container:{name}", sections=("namespaces",))
    assert p.namespace("ipc") == os.readlink(inside), cid


def test_network_none_and_host(capsa: CapsaCli) -> None:
    proc = capsa.sh("ls /sys/class/net", "--network", "none")
    assert proc.stdout.split() == ["lo"], proc.stderr
    before = set(os.listdir("/sys/class/net"))
    proc = capsa.sh("ls /sys/class/net", "--network", "host")
    stable = before & set(os.listdir("/sys/class/net"))  # other tests add and remove links
    assert stable <= set(proc.stdout.split()), proc.stdout
    p = capsa.probe("--network", "host", sections=("namespaces",))
    assert p.namespace("net") == os.readlink("/proc/self/ns/net")


# -- volumes and mounts ------------------------------------------------------------------------


def test_bind_mounts(capsa: CapsaCli, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello").write_text("from-host\n")
    proc = capsa.sh("cat /data/hello; echo new > /data/new", "-v", f"{data}:/data")
    assert proc.stdout == "from-host\n", proc.stderr
    assert (data / "new").read_text() == "new\n"
    proc = capsa.sh("cat /data/hello; echo x > /data/ro && echo wrote", "-v", f"{data}:/data:ro")
    assert "from-host" in proc.stdout and "wrote" not in proc.stdout
    assert "Read-only file system" in proc.stderr
    for opt in ("rslave", "rprivate", "ro,rshared", "z"):
        proc = capsa.sh("cat /data/hello", "-v", f"{data}:/data:{opt}")
        assert proc.stdout == "from-host\n", f"{opt}: {proc.stderr}"


def test_bind_mount_missing_source_fails_125(capsa: CapsaCli, tmp_path: Path) -> None:
    proc = capsa.run(
        "run",
        "--rm",
        "--mount",
        f"type=bind,src={tmp_path}/nope,dst=/x",
        IMAGE,
        "true",
        check=False,
    )
    assert proc.returncode == 125 and "nope" in proc.stderr
    assert capsa.run("ps", "-aq").stdout == ""


def test_named_volume_populated_from_image(capsa: CapsaCli) -> None:
    vol = capsa.name()
    try:
        proc = capsa.sh("cat /etc/passwd; echo kept > /etc/added", "-v", f"{vol}:/etc")
        assert proc.returncode == 0, proc.stderr
        assert "user:x:1000:1000" in proc.stdout  # copied from the image on first use
        proc = capsa.sh("cat /etc/added", "-v", f"{vol}:/etc")
        assert proc.stdout == "kept\n"
        assert vol in capsa.run("volume", "ls", "-q").stdout
    finally:
        capsa.run("volume", "rm", "-f", vol, check=False)


def test_mount_flag_kinds(capsa: CapsaCli, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("bound\n")
    vol = capsa.name()
    try:
        proc = capsa.sh(
            "cat /b/f; echo v > /v/file; cat /v/file; df -k /t | tail -1; "
            "echo x > /b/g && echo wrote-ro",
            "--mount",
            f"type=bind,source={tmp_path},target=/b,readonly",
            "--mount",
            f"type=volume,src={vol},dst=/v",
            "--mount",
            "type=tmpfs,dst=/t,tmpfs-size=2m",
        )
        lines = proc.stdout.splitlines()
        assert lines[:2] == ["bound", "v"], proc.stderr
        assert lines[2].split()[1] == "2048"
        assert "wrote-ro" not in proc.stdout
    finally:
        capsa.run("volume", "rm", "-f", vol, check=False)


def test_volumes_from(capsa: CapsaCli, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("shared\n")
    source = capsa.name()
    capsa.run("create", "--name", source, "-v", f"{tmp_path}:/shared:ro", "-v", "/anon", IMAGE)
    proc = capsa.sh("cat /shared/f; echo a > /anon/x && echo anon-ok", "--volumes-from", source)
    assert proc.stdout.splitlines() == ["shared", "anon-ok"], proc.stderr
    proc = capsa.sh("echo x > /shared/y && echo wrote", "--volumes-from", source)
    assert "wrote" not in proc.stdout  # :ro carried over
    capsa.run("rm", "-v", source)


def test_anonymous_volume_removed_with_rm_v(capsa: CapsaCli) -> None:
    name = capsa.name()
    capsa.run("create", "--name", name, "-v", "/data", IMAGE)
    mounts = capsa.inspect(name)["Mounts"]
    assert len(mounts) == 1 and mounts[0]["Type"] == "volume"
    vol = mounts[0]["Name"]
    assert vol in capsa.run("volume", "ls", "-q").stdout
    capsa.run("rm", "-v", name)
    assert vol not in capsa.run("volume", "ls", "-q").stdout


def test_add_host(capsa: CapsaCli) -> None:
    proc = capsa.sh("cat /etc/hosts", "--add-host", "capsa-test-db:10.1.2.3")
    entries = {tuple(line.split()[:2]) for line in proc.stdout.splitlines() if line.strip()}
    assert ("10.1.2.3", "capsa-test-db") in entries, proc.stdout + proc.stderr
    assert ("127.0.0.1", "localhost") in entries


def test_add_host_equals_separator(capsa: CapsaCli) -> None:
    # Docker 25+ accepts NAME=IP too (needed for IPv6: --add-host v6=::1)
    proc = capsa.sh("cat /etc/hosts", "--add-host", "other=10.9.9.9", "--add-host", "v6=::1")
    entries = {tuple(line.split()[:2]) for line in proc.stdout.splitlines() if line.strip()}
    assert ("10.9.9.9", "other") in entries, proc.stdout + proc.stderr
    assert ("::1", "v6") in entries


def test_cidfile(capsa: CapsaCli, tmp_path: Path) -> None:
    cidfile = tmp_path / "cid"
    cid = capsa.detached("--init", "--cidfile", str(cidfile))
    assert cidfile.read_text().strip() == cid
    again = capsa.run("run", "-d", "--cidfile", str(cidfile), IMAGE, "true", check=False)
    assert again.returncode == 125 and str(cidfile) in again.stderr
    assert capsa.run("ps", "-aq", "--no-trunc").stdout.split() == [cid]


# -- resources (v1 cgroup files read from the host) --------------------------------------------


def test_memory_limit_visible_and_enforced(capsa: CapsaCli) -> None:
    cid = capsa.detached("--init", "-m", "32m", "--memory-reservation", "16m")
    assert capsa.cgroup_value(cid, "memory", "memory.limit_in_bytes") == str(32 * MIB)
    assert capsa.cgroup_value(cid, "memory", "memory.soft_limit_in_bytes") == str(16 * MIB)
    proc = capsa.run("exec", cid, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert proc.stdout.strip() == str(32 * MIB)
    host = capsa.inspect(cid)["HostConfig"]
    assert host["Memory"] == 32 * MIB and host["MemoryReservation"] == 16 * MIB


def test_oom_kill_exit_137(capsa: CapsaCli) -> None:
    name = capsa.name()
    proc = capsa.run(
        "run",
        "--name",
        name,
        "-m",
        "16m",
        "--memory-swap",
        "16m",
        IMAGE,
        "tail",
        "/dev/zero",
        check=False,
    )
    assert proc.returncode == 137, proc.stderr
    state = capsa.inspect(name)["State"]
    assert state["OOMKilled"] is True
    assert state["ExitCode"] == 137 and state["Status"] == "exited"


def test_memory_swap(capsa: CapsaCli) -> None:
    cid = capsa.detached("--init", "-m", "32m", "--memory-swap", "64m")
    memsw = capsa.cgroup(cid, "memory") / "memory.memsw.limit_in_bytes"
    if memsw.exists():
        assert memsw.read_text().strip() == str(64 * MIB)
    assert capsa.inspect(cid)["HostConfig"]["MemorySwap"] == 64 * MIB
    bad = capsa.run("run", "--rm", "-m", "64m", "--memory-swap", "32m", IMAGE, "true", check=False)
    assert bad.returncode == 125 and "swap" in bad.stderr.lower()


def test_oom_kill_disable(capsa: CapsaCli) -> None:
    cid = capsa.detached("--init", "-m", "32m", "--oom-kill-disable")
    control = capsa.cgroup_value(cid, "memory", "memory.oom_control")
    assert "oom_kill_disable 1" in control
    assert capsa.inspect(cid)["HostConfig"]["OomKillDisable"] is True


def test_cpu_flags(capsa: CapsaCli) -> None:
    cid = capsa.detached("--init", "--cpus", "0.5", "--cpu-shares", "512", "--cpuset-cpus", "0")
    assert capsa.cgroup_value(cid, "cpu", "cpu.cfs_quota_us") == "50000"
    assert capsa.cgroup_value(cid, "cpu", "cpu.cfs_period_us") == "100000"
    assert capsa.cgroup_value(cid, "cpu", "cpu.shares") == "512"
    assert capsa.cgroup_value(cid, "cpuset", "cpuset.cpus") == "0"
    host = capsa.inspect(cid)["HostConfig"]
    assert host["NanoCpus"] == 500_000_000 and host["CpuShares"] == 512
    assert host["CpusetCpus"] == "0"
    p = capsa.probe("--cpu-quota", "20000", "--cpu-period", "50000", sections=("cgroups",))
    assert (p.get("cpu_quota"), p.get("cpu_period")) == ("20000", "50000")


def test_cpus_and_quota_conflict_125(capsa: CapsaCli) -> None:
    proc = capsa.run(
        "run", "--rm", "--cpus", "1", "--cpu-quota", "20000", IMAGE, "true", check=False
    )
    assert proc.returncode == 125
    assert capsa.run("ps", "-aq").stdout == ""


def test_pids_limit(capsa: CapsaCli) -> None:
    cid = capsa.detached("--init", "--pids-limit", "20")
    assert capsa.cgroup_value(cid, "pids", "pids.max") == "20"
    proc = capsa.sh(
        "i=0; while [ $i -lt 40 ]; do sleep 2 & i=$((i+1)); done; echo looped",
        "--pids-limit",
        "10",
    )
    assert "fork" in proc.stderr.lower(), proc.stderr


def test_blkio(capsa: CapsaCli) -> None:
    dev, majmin = _block_device()
    cid = capsa.detached(
        "--init",
        "--blkio-weight",
        "300",
        "--device-read-bps",
        f"{dev}:1mb",
        "--device-write-bps",
        f"{dev}:2mb",
        "--device-read-iops",
        f"{dev}:100",
        "--device-write-iops",
        f"{dev}:200",
    )
    blkio = capsa.cgroup(cid, "blkio")
    assert (blkio / "blkio.throttle.read_bps_device").read_text().split() == [majmin, str(MIB)]
    assert (blkio / "blkio.throttle.write_bps_device").read_text().split() == [majmin, str(2 * MIB)]
    assert (blkio / "blkio.throttle.read_iops_device").read_text().split() == [majmin, "100"]
    assert (blkio / "blkio.throttle.write_iops_device").read_text().split() == [majmin, "200"]
    weight = next(
        (blkio / f for f in ("blkio.weight", "blkio.bfq.weight") if (blkio / f).exists()), None
    )
    if weight is not None:
        assert weight.read_text().split()[-1] == "300"
    host = capsa.inspect(cid)["HostConfig"]
    assert host["BlkioWeight"] == 300
    assert host["BlkioDeviceReadBps"] == [{"Path": dev, "Rate": MIB}]


def test_blkio_weight_unenforceable_warns(capsa: CapsaCli) -> None:
    # the weight files exist in child cgroups only (not in the root): look in one
    probe = Path("/sys/fs/cgroup/blkio") / f"capsa-test-probe-{os.getpid()}"
    probe.mkdir()
    try:
        weighted = (probe / "blkio.weight").exists() or (probe / "blkio.bfq.weight").exists()
    finally:
        probe.rmdir()
    if weighted:
        pytest.skip("this host enforces blkio weights")
    proc = capsa.run("run", "--rm", "--blkio-weight", "300", IMAGE, "true", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "weight" in proc.stderr.lower(), "no warning that blkio weight is not enforced"
