"""Security settings enforced by the runtime: seccomp, device cgroup, capabilities, and
the read-only and masked parts of the filesystem."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.helpers.bundle import BundleFactory, SpecEdit, sh
from tests.helpers.probe import caps_mask, parse_probe
from tests.helpers.runtime import Runtime

from capsa.linux.capabilities import DOCKER_DEFAULT_CAPS
from capsa.oci.codec import from_dict, to_dict
from capsa.oci.runtime_spec import (
    Capabilities,
    Device,
    DeviceCgroup,
    Root,
    Seccomp,
    SeccompSyscall,
    Spec,
    User,
)
from capsa.oci.seccomp_default import default_profile

pytestmark = pytest.mark.root

EPERM_TEXT = "Operation not permitted"


def run_out(runtime: Runtime, bundle: Path) -> str:
    """Run the bundle to completion; its stdout (stderr is folded in by the scripts)."""
    proc = runtime.run("run", "--bundle", str(bundle), runtime.new_id(), check=False)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr}"
    return proc.stdout


def _caps(names: list[str]) -> SpecEdit:
    def edit(spec: Spec) -> None:
        assert spec.process is not None
        spec.process.capabilities = Capabilities(
            bounding=list(names), effective=list(names), permitted=list(names)
        )

    return edit


def _both(*edits: SpecEdit) -> SpecEdit:
    def edit(spec: Spec) -> None:
        for e in edits:
            e(spec)

    return edit


# -- seccomp -----------------------------------------------------------------------------


def _deny_mkdir(spec: Spec) -> None:
    assert spec.linux is not None
    spec.linux.seccomp = Seccomp(
        default_action="SCMP_ACT_ALLOW",
        syscalls=[SeccompSyscall(names=["mkdir", "mkdirat"], action="SCMP_ACT_ERRNO", errno_ret=1)],
    )


MKDIR_SCRIPT = (
    "mkdir /tmp/x 2>&1; echo mkdir=$?; [ -d /tmp/x ] && echo made;"
    " echo data > /tmp/f && cat /tmp/f; ls / > /dev/null && echo ls-ok; /probe status"
)


def test_seccomp_errno_rule(runtime: Runtime, bundle: BundleFactory) -> None:
    out = run_out(runtime, bundle(sh(MKDIR_SCRIPT), edit=_deny_mkdir))
    assert EPERM_TEXT in out
    assert "mkdir=1" in out
    assert "made" not in out
    assert "data" in out and "ls-ok" in out
    assert parse_probe(out).get("seccomp") == "2"


def test_seccomp_loads_for_unprivileged_user_without_no_new_privs(
    runtime: Runtime, bundle: BundleFactory
) -> None:
    """Loading a filter without no_new_privs needs CAP_SYS_ADMIN: before the drop."""

    def edit(spec: Spec) -> None:
        assert spec.process is not None
        spec.process.no_new_privileges = False
        spec.process.user = User(uid=1000, gid=1000)
        spec.process.capabilities = Capabilities(bounding=[], effective=[], permitted=[])

    out = run_out(runtime, bundle(sh(MKDIR_SCRIPT), edit=_both(_deny_mkdir, edit)))
    probe = parse_probe(out)
    assert (probe.uid, probe.get("nonewprivs"), probe.get("seccomp")) == (1000, "0", "2")
    assert probe.cap("eff") == probe.cap("prm") == probe.cap("bnd") == 0
    assert "mkdir=1" in out and EPERM_TEXT in out  # /tmp is 1777: only seccomp refuses
    assert "data" in out


def _profile(capabilities: list[str]) -> SpecEdit:
    def edit(spec: Spec) -> None:
        assert spec.linux is not None
        # through the JSON form, as a config.json written by an engine would carry it
        spec.linux.seccomp = from_dict(Seccomp, to_dict(default_profile(capabilities)), "seccomp")

    return edit


UNSHARE_SCRIPT = (
    "unshare -m true 2>&1; echo unshare=$?;"
    " ls /bin > /dev/null && echo ls-ok; cat /etc/hostname; sh -c 'echo sh-ok'"
)


def test_default_profile_blocks_unshare(runtime: Runtime, bundle: BundleFactory) -> None:
    # the process holds CAP_SYS_ADMIN: only the filter (made for Docker's caps) says no
    caps = [*DOCKER_DEFAULT_CAPS, "CAP_SYS_ADMIN"]
    b = bundle(sh(UNSHARE_SCRIPT), edit=_both(_caps(caps), _profile(list(DOCKER_DEFAULT_CAPS))))
    out = run_out(runtime, b)
    assert "unshare=1" in out and EPERM_TEXT in out
    assert "ls-ok" in out and "busybox" in out and "sh-ok" in out


def test_default_profile_with_sys_admin_allows_unshare(
    runtime: Runtime, bundle: BundleFactory
) -> None:
    caps = [*DOCKER_DEFAULT_CAPS, "CAP_SYS_ADMIN"]
    out = run_out(runtime, bundle(sh(UNSHARE_SCRIPT), edit=_both(_caps(caps), _profile(caps))))
    assert "unshare=0" in out, out
    assert "ls-ok" in out and "sh-ok" in out


# -- devices cgroup ----------------------------------------------------------------------

OPEN_SCRIPT = (
    "for d in {paths}; do"
    " if (exec 3< $d) 2>/tmp/err; then echo $d=ok; else echo $d=$(cat /tmp/err); fi; done"
)


def _open_results(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_device_node_made_by_the_image_is_denied(runtime: Runtime, bundle: BundleFactory) -> None:
    """The default rules allow the standard nodes only, whatever the rootfs holds."""

    def prepare(rootfs: Path) -> None:
        os.mknod(rootfs / "tmp/fuse", 0o20666, os.makedev(10, 229))

    script = OPEN_SCRIPT.format(paths="/tmp/fuse /dev/null /dev/zero")
    results = _open_results(run_out(runtime, bundle(sh(script), prepare=prepare)))
    assert EPERM_TEXT in results["/tmp/fuse"]
    assert results["/dev/null"] == results["/dev/zero"] == "ok"


def test_configured_device_with_deny_rule(runtime: Runtime, bundle: BundleFactory) -> None:
    """A node in linux.devices whose cgroup rule is an explicit deny cannot be opened."""

    def edit(spec: Spec) -> None:
        assert spec.linux is not None and spec.linux.resources is not None
        spec.linux.devices = [
            Device(path="/dev/fuse", type="c", major=10, minor=229, file_mode=0o666)
        ]
        spec.linux.resources.devices = [
            *(spec.linux.resources.devices or []),
            DeviceCgroup(allow=False, type="c", major=10, minor=229, access="rwm"),
        ]

    script = "stat -c '%t:%T' /dev/fuse; " + OPEN_SCRIPT.format(paths="/dev/fuse /dev/null")
    out = run_out(runtime, bundle(sh(script), edit=edit))
    assert out.splitlines()[0] == "a:e5"  # the node exists, 10:229 (hex)
    results = _open_results(out)
    assert EPERM_TEXT in results["/dev/fuse"], out
    assert results["/dev/null"] == "ok"


# -- capabilities ------------------------------------------------------------------------

CHOWN_SCRIPT = "echo x > /tmp/f; chown 1000 /tmp/f 2>&1; echo chown=$?; stat -c owner=%u /tmp/f"


def test_without_cap_chown_chown_fails(runtime: Runtime, bundle: BundleFactory) -> None:
    without = [c for c in DOCKER_DEFAULT_CAPS if c != "CAP_CHOWN"]
    out = run_out(runtime, bundle(sh(CHOWN_SCRIPT), edit=_caps(without)))
    assert "chown=1" in out and EPERM_TEXT in out
    assert "owner=0" in out


def test_with_cap_chown_chown_works(runtime: Runtime, bundle: BundleFactory) -> None:
    out = run_out(runtime, bundle(sh(CHOWN_SCRIPT), edit=_caps(list(DOCKER_DEFAULT_CAPS))))
    assert "chown=0" in out and "owner=1000" in out


def test_dropped_net_raw_is_in_no_set(runtime: Runtime, bundle: BundleFactory) -> None:
    without = [c for c in DOCKER_DEFAULT_CAPS if c != "CAP_NET_RAW"]
    probe = parse_probe(run_out(runtime, bundle(["/probe", "status"], edit=_caps(without))))
    net_raw = caps_mask(["CAP_NET_RAW"])
    for kind in ("eff", "prm", "bnd", "inh", "amb"):
        assert probe.cap(kind) & net_raw == 0, kind
    assert probe.cap("eff") == caps_mask(without)


# -- read-only and masked paths ----------------------------------------------------------


def test_readonly_rootfs_refuses_writes(runtime: Runtime, bundle: BundleFactory) -> None:
    script = "touch /newfile 2>&1; echo touch=$?; mkdir /etc/d 2>&1; echo mkdir=$?"
    b = bundle(sh(script), root=Root("rootfs", True))
    out = run_out(runtime, b)
    assert "touch=1" in out and "mkdir=1" in out
    assert out.count("Read-only file system") == 2, out
    assert not (b / "rootfs/newfile").exists()
    assert not (b / "rootfs/etc/d").exists()


@pytest.mark.parametrize("name", ["kcore", "keys", "timer_list"])
def test_masked_proc_file_reads_nothing(runtime: Runtime, bundle: BundleFactory, name: str) -> None:
    path = f"/proc/{name}"
    if not Path(path).exists():
        pytest.skip(f"this kernel has no {path}")
    script = f"{{ wc -c < {path}; cat {path}; echo rc=$?; }} 2>&1"
    assert run_out(runtime, bundle(sh(script))).split() == ["0", "rc=0"]


def test_proc_sys_is_read_only(runtime: Runtime, bundle: BundleFactory) -> None:
    script = (
        "{ echo 1 > /proc/sys/vm/drop_caches; } 2>&1; echo write=$?;"
        " grep ' /proc/sys ' /proc/self/mounts | cut -d' ' -f4 | tr , '\\n' | grep -x ro"
    )
    out = run_out(runtime, bundle(sh(script)))
    assert "Read-only file system" in out
    assert "write=1" in out
    assert out.splitlines()[-1] == "ro"
