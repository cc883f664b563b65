"""Boot a cgroup-v2-only Linux guest under qemu and run a shell script in it.

Python port of shared/vm/cg2vm-run.sh: Debian's own kernel (uncompressed, PVH entry)
boots with ``cgroup_no_v1=all``; a busybox initramfs mounts this machine's root
read-only over virtio-9p with a RAM overlay on top, mounts cgroup2 with cpu, memory,
pids and io enabled, runs the script as root and powers off. The checkout and its
venv are visible in the guest at the same path, even below the guest's own tmpfs
``/tmp`` and ``/run`` (bound back over them). KVM here is a paravirtual backend that
cannot boot a stock kernel, so TCG is used unless a real KVM is present.
"""

from __future__ import annotations

import glob
import gzip
import io
import lzma
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

MODULES = [
    "virtio_ring",
    "virtio",
    "virtio_mmio",
    "virtio_pci_legacy_dev",
    "virtio_pci_modern_dev",
    "virtio_pci",
    "netfs",
    "fscache",
    "9pnet",
    "9pnet_virtio",
    "9p",
    "overlay",
]
BUSYBOX_APPLETS = ("sh", "mount", "mkdir", "insmod", "cat", "grep", "switch_root", "poweroff")

INIT = """#!/bin/sh
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
echo "CAPSA-INITRAMFS $(cat /proc/uptime)"
for m in @MODS@; do insmod /mods/$m.ko; done
O=trans=virtio,version=9p2000.L,msize=524288
mount -t 9p -o $O,ro,cache=loose hostroot /lower || { echo CAPSA-ROOTMOUNT-FAILED; poweroff -f; }
mount -t 9p -o $O capsaout /out
mount -t tmpfs -o size=75% tmpfs /upper; mkdir -p /upper/u /upper/w
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w /newroot \
  || { echo CAPSA-OVERLAY-FAILED; poweroff -f; }
mkdir -p /newroot/capsa-out; mount --move /out /newroot/capsa-out
mount --move /proc /newroot/proc; mount --move /sys /newroot/sys; mount --move /dev /newroot/dev
exec switch_root /newroot /bin/sh /capsa-out/guest-init.sh
"""

GUEST_INIT = """export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8
echo "CAPSA-USERSPACE $(cat /proc/uptime)"
@SAVE@
mount -t tmpfs tmpfs /run; mount -t tmpfs tmpfs /tmp
@KEEP@
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
echo "+cpu +memory +pids +io" > /sys/fs/cgroup/cgroup.subtree_control
/bin/sh /capsa-out/test.sh > /capsa-out/test.log 2>&1 < /dev/null
rc=$?; echo $rc > /capsa-out/rc; sync
echo "CAPSA-RC=$rc"
echo o > /proc/sysrq-trigger; sleep 10
"""


# the guest mounts fresh tmpfs here: a checkout or venv below them must be bound back
_GUEST_TMPFS = ("/run", "/tmp")


def kept_paths() -> list[str]:
    """Host paths the guest must see where they are: the checkout and the venv."""
    checkout = str(Path(__file__).resolve().parents[2])
    return sorted({checkout, os.path.realpath(sys.prefix)})


def _guest_init(paths: list[str]) -> str:
    """GUEST_INIT binding ``paths`` that its tmpfs mounts would hide back at the same
    place, from ``/capsa-host`` (the root as it was before those mounts)."""
    hidden = [p for p in paths if any(p == d or p.startswith(d + "/") for d in _GUEST_TMPFS)]
    save = "mkdir -p /capsa-host; mount --bind / /capsa-host" if hidden else ""
    keep = [f"mkdir -p {q}; mount --bind /capsa-host{q} {q}" for q in map(shlex.quote, hidden)]
    return GUEST_INIT.replace("@SAVE@", save).replace("@KEEP@", "\n".join(keep))


@dataclass(frozen=True)
class GuestResult:
    rc: int  # the script's exit status; 99 when the guest never reported one
    output: str  # the script's output, then the guest's boot markers (or its console)


def _kernel_image() -> Path:
    images = sorted(glob.glob("/boot/vmlinuz-*-amd64"), key=_version_key)
    if not images:
        pytest.skip("no /boot/vmlinuz-*-amd64 (apt-get install linux-image-amd64)")
    return Path(images[-1])


def _version_key(path: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", path)]


def _require_tools() -> None:
    for tool in ("qemu-system-x86_64",):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} missing (apt-get install qemu-system-x86)")
    if not os.path.exists("/bin/busybox"):
        pytest.skip("/bin/busybox missing (apt-get install busybox-static)")


def _vmlinux(image: Path, dest: Path) -> None:
    data = image.read_bytes()
    start = data.find(b"\xfd7zXZ\x00")
    if start < 0:
        pytest.skip(f"{image} is not an xz-compressed kernel")
    dest.write_bytes(lzma.LZMADecompressor().decompress(data[start:]))


def _module_paths(kver: str) -> dict[str, Path]:
    base = Path("/lib/modules") / kver
    dep = base / "modules.dep"
    if not dep.exists():
        pytest.skip(f"no {dep}")
    found: dict[str, Path] = {}
    for line in dep.read_text().splitlines():
        rel = line.split(":", 1)[0]
        name = os.path.basename(rel).split(".ko")[0].replace("-", "_")
        found[name] = base / rel
    missing = [m for m in MODULES if m not in found]
    if missing:
        pytest.skip(f"kernel modules missing for {kver}: {', '.join(missing)}")
    return found


def _module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return lzma.decompress(data) if path.suffix == ".xz" else data


class _Cpio:
    """A tiny newc cpio writer (what the kernel's initramfs unpacker reads)."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"") -> None:
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
        self.ino += 1
        self.buf.write(b"070701" + b"".join(b"%08X" % f for f in fields))
        self.buf.write(name.encode() + b"\0")
        self.buf.write(b"\0" * (-(110 + len(name) + 1) % 4))
        self.buf.write(data + b"\0" * (-len(data) % 4))

    def dir(self, name: str) -> None:
        self._entry(name, 0o040755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, 0o100000 | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, 0o120777, target.encode())

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return gzip.compress(self.buf.getvalue(), compresslevel=1)


def _initramfs(kver: str) -> bytes:
    mods = _module_paths(kver)
    cpio = _Cpio()
    for d in ("bin", "dev", "proc", "sys", "mods", "lower", "upper", "newroot", "out"):
        cpio.dir(d)
    cpio.file("bin/busybox", Path("/bin/busybox").read_bytes(), 0o755)
    for applet in BUSYBOX_APPLETS:
        cpio.symlink(f"bin/{applet}", "busybox")
    for m in MODULES:
        cpio.file(f"mods/{m}.ko", _module_bytes(mods[m]))
    cpio.file("init", INIT.replace("@MODS@", " ".join(MODULES)).encode(), 0o755)
    return cpio.finish()


def _tsc_khz() -> int:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("cpu MHz"):
            return int(float(line.split(":")[1]) * 1000)
    return 2_000_000


def _accel() -> list[str]:
    real_kvm = os.access("/dev/kvm", os.R_OK | os.W_OK) and not os.path.exists(
        "/sys/module/kvm_pvm"
    )
    return ["-accel", "kvm", "-cpu", "host"] if real_kvm else ["-accel", "tcg", "-cpu", "max"]


def _qemu_argv(work: Path, memory_mb: int) -> list[str]:
    cmdline = f"console=ttyS0 quiet panic=-1 tsc_early_khz={_tsc_khz()} cgroup_no_v1=all"
    return [
        "qemu-system-x86_64", "-M", "microvm,rtc=on", *_accel(), "-m", str(memory_mb),
        "-smp", "1", "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio",
        "-no-reboot", "-kernel", str(work / "vmlinux"), "-initrd", str(work / "initrd.gz"),
        "-append", cmdline,
        "-fsdev", "local,id=root,path=/,security_model=passthrough,readonly=on,multidevs=remap",
        "-device", "virtio-9p-device,fsdev=root,mount_tag=hostroot",
        "-fsdev", f"local,id=out,path={work / 'out'},security_model=passthrough",
        "-device", "virtio-9p-device,fsdev=out,mount_tag=capsaout",
    ]  # fmt: skip


def run_in_guest(script: str, timeout: int = 600, memory_mb: int = 1024) -> GuestResult:
    """Boot one guest, run ``script`` (sh) as root in it, return its status and output."""
    _require_tools()
    image = _kernel_image()
    kver = image.name.removeprefix("vmlinuz-")
    with tempfile.TemporaryDirectory(prefix="capsa-test-vm-") as tmp:
        work = Path(tmp)
        (work / "out").mkdir()
        _vmlinux(image, work / "vmlinux")
        (work / "initrd.gz").write_bytes(_initramfs(kver))
        (work / "out" / "guest-init.sh").write_text(_guest_init(kept_paths()))
        (work / "out" / "test.sh").write_text(script)
        serial = _boot(_qemu_argv(work, memory_mb), timeout)
        log = work / "out" / "test.log"
        rc_file = work / "out" / "rc"
        rc = int(rc_file.read_text().strip() or 99) if rc_file.exists() else 99
        markers = "\n".join(line for line in serial.splitlines() if "CAPSA-" in line)
        if log.exists():
            return GuestResult(rc, log.read_text(errors="replace") + "\n" + markers)
        return GuestResult(rc, "no test.log; serial console:\n" + serial)


def _boot(argv: list[str], timeout: int) -> str:
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        out += f"\nCAPSA-TIMEOUT after {timeout} s".encode()
    return out.decode(errors="replace")
