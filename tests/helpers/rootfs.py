"""Build a minimal busybox root filesystem (the smallest real test image).

Reusable by image tests: the result is a plain directory that can be copied into a
bundle or packed into an image layer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
PROBE = Path(__file__).with_name("probe.sh")

DIRS = ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "mnt", "run", "var", "home/user")

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "user:x:1000:1000:user:/home/user:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n"


def busybox_applets(busybox: Path = BUSYBOX) -> list[str]:
    """The applet names ``busybox --list`` reports."""
    out = subprocess.run(
        [str(busybox), "--list"], check=True, capture_output=True, text=True
    ).stdout
    return [name for name in out.split() if name and name != "busybox"]


def build_busybox_rootfs(dest: Path, *, busybox: Path = BUSYBOX, probe: bool = True) -> Path:
    """Create ``dest`` as a busybox rootfs: applet links, users, groups and /probe."""
    if not busybox.is_file():
        raise FileNotFoundError(f"no static busybox at {busybox}")
    dest.mkdir(parents=True)
    for name in DIRS:
        (dest / name).mkdir(parents=True, exist_ok=True)
    (dest / "tmp").chmod(0o1777)
    shutil.copy2(busybox, dest / "bin" / "busybox")
    for applet in busybox_applets(busybox):
        link = dest / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    (dest / "etc" / "passwd").write_text(PASSWD)
    (dest / "etc" / "group").write_text(GROUP)
    (dest / "etc" / "hostname").write_text("busybox\n")
    os.chown(dest / "home" / "user", 1000, 1000)
    if probe:
        shutil.copy2(PROBE, dest / "probe")
        (dest / "probe").chmod(0o755)
    return dest


def copy_rootfs(src: Path, dest: Path) -> Path:
    """Copy a rootfs keeping symlinks, modes and owners (``cp -a``)."""
    shutil.copytree(src, dest, symlinks=True)
    for top, dirs, files in os.walk(src):
        for name in (".", *dirs, *files):
            path = Path(top, name)
            st = path.lstat()
            os.lchown(dest / path.relative_to(src), st.st_uid, st.st_gid)
    return dest
