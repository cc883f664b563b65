"""Find (and remove) kernel objects a test left behind.

A snapshot records mounts, cgroups, network links, nftables tables and processes that
look like the test's; the leaks are what a later snapshot has in addition. Cleanup
removes exactly those, so one leaking test does not make the following ones fail.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from capsa.linux.syscalls import MNT_DETACH, umount2

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_MARK = "capsa-test"


@dataclass(frozen=True)
class Snapshot:
    mounts: frozenset[str]
    cgroups: frozenset[str]
    links: frozenset[str]
    nft_tables: frozenset[str]
    processes: frozenset[str]

    def minus(self, other: Snapshot) -> Snapshot:
        return Snapshot(
            self.mounts - other.mounts,
            self.cgroups - other.cgroups,
            self.links - other.links,
            self.nft_tables - other.nft_tables,
            self.processes - other.processes,
        )

    def describe(self) -> list[str]:
        return [
            *(f"mount {m}" for m in sorted(self.mounts)),
            *(f"cgroup {c}" for c in sorted(self.cgroups)),
            *(f"link {n}" for n in sorted(self.links)),
            *(f"nft table {t}" for t in sorted(self.nft_tables)),
            *(f"process {p}" for p in sorted(self.processes)),
        ]


def take_snapshot(paths: tuple[str, ...]) -> Snapshot:
    """What exists now that mentions one of ``paths`` (or capsa, for mounts/tables)."""
    return Snapshot(
        frozenset(_mounts((*paths, "capsa"))),
        frozenset(_cgroups()),
        frozenset(_links()),
        frozenset(_nft_tables()),
        frozenset(_processes(paths)),
    )


def _mounts(markers: tuple[str, ...]) -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(m in point for m in markers):
            points.append(point)
    return points


def _cgroups() -> list[str]:
    """Directories named *capsa-test* up to three levels below each hierarchy."""
    found: list[str] = []
    for hierarchy in _subdirs(str(CGROUP_ROOT)):
        level = [hierarchy]
        for _ in range(3):
            level = [d for parent in level for d in _subdirs(parent)]
            found += [d for d in level if CGROUP_MARK in os.path.basename(d)]
    return found


def _subdirs(path: str) -> list[str]:
    # other tests create and remove cgroups concurrently: a vanished directory is empty
    try:
        with os.scandir(path) as entries:
            return [e.path for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def _links() -> list[str]:
    return os.listdir("/sys/class/net")


def _nft_tables() -> list[str]:
    try:
        out = subprocess.run(
            ["nft", "list", "tables"], capture_output=True, text=True, timeout=10
        ).stdout
    except FileNotFoundError:
        return []
    return [line.strip() for line in out.splitlines() if "capsa" in line]


def _processes(paths: tuple[str, ...]) -> list[str]:
    """Processes whose command line, root or cwd lies under one of ``paths``."""
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        with contextlib.suppress(OSError):
            # any bytes: another program's arguments need not be UTF-8
            raw = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            cmdline = raw.decode(errors="backslashreplace")
            where = [cmdline]
            for link in ("root", "cwd"):
                with contextlib.suppress(OSError):
                    where.append(os.readlink(entry / link))
            if any(p in w for p in paths for w in where):
                found.append(f"{entry.name} {cmdline.strip()}")
    return found


def remove(leaked: Snapshot) -> list[str]:
    """Kill, unmount, delete what leaked; return what could not be removed."""
    errors: list[str] = []
    for proc in leaked.processes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(proc.split()[0]), signal.SIGKILL)
    for cgroup in sorted(leaked.cgroups, key=len, reverse=True):
        errors += _remove_cgroup(Path(cgroup))
    for point in sorted(leaked.mounts, key=len, reverse=True):
        try:
            umount2(point, MNT_DETACH)
        except OSError as e:
            errors.append(f"umount {point}: {e.strerror}")
    for link in leaked.links:
        errors += _run(["ip", "link", "delete", link])
    for table in leaked.nft_tables:
        errors += _run(["nft", "delete", *table.split()])
    return errors


def _remove_cgroup(path: Path) -> list[str]:
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        _remove_cgroup(child)
    freezer = path / "freezer.state"
    if freezer.exists():
        with contextlib.suppress(OSError):
            freezer.write_text("THAWED")
    deadline = time.monotonic() + 5
    while True:
        with contextlib.suppress(OSError):
            for pid in (path / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
        try:
            path.rmdir()
            return []
        except FileNotFoundError:
            return []
        except OSError as e:
            if time.monotonic() > deadline:
                return [f"rmdir {path}: {e.strerror}"]
            time.sleep(0.05)


def _run(argv: list[str]) -> list[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    return [f"{' '.join(argv)}: {proc.stderr.strip()}"] if proc.returncode else []
