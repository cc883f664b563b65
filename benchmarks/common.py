"""Shared set-up for the engine benchmarks: private capsa roots, a private podman store,
the same busybox image imported into both, and timing helpers."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.rootfs import build_busybox_rootfs  # noqa: E402

CAPSA = str(ROOT / ".venv" / "bin" / "capsa")
IMAGE = "capsa-bench/busybox:latest"


class Peers:
    """capsa and podman side by side, each with private state under one temp dir."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="capsa-bench-"))
        rootfs = build_busybox_rootfs(self.base / "rootfs", probe=False)
        self.tarball = self.base / "busybox.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(self.tarball), "."], check=True)
        self.env = dict(
            os.environ,
            CAPSA_ROOT=str(self.base / "capsa-root"),
            CAPSA_RUNROOT=str(self.base / "capsa-run"),
        )
        self.podman = [
            "podman",
            "--root",
            str(self.base / "podman-root"),
            "--runroot",
            str(self.base / "podman-run"),
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ]
        self.capsa(["import", "-c", 'CMD ["/bin/sh"]', str(self.tarball), IMAGE])
        subprocess.run(
            [
                *self.podman,
                "import",
                "--change",
                'CMD ["/bin/sh"]',
                str(self.tarball),
                f"localhost/{IMAGE}",
            ],
            check=True,
            capture_output=True,
        )

    def capsa(
        self, args: list[str], check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``capsa ARGS`` on the private roots; ``env`` adds variables (``CAPSA_WARM=0``
        for a cold start)."""
        proc = subprocess.run(
            [CAPSA, *args], env={**self.env, **(env or {})}, capture_output=True, text=True
        )
        if check and proc.returncode != 0:
            raise SystemExit(f"capsa {' '.join(args)} -> {proc.returncode}: {proc.stderr}")
        return proc

    def pod(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*self.podman, *args], capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise SystemExit(f"podman {' '.join(args)} -> {proc.returncode}: {proc.stderr}")
        return proc

    def close(self) -> None:
        self.capsa(["rm", "-f", *self.capsa(["ps", "-aq"]).stdout.split()], check=False)
        # idle networks down now, and the lingering monitor host gone, before the roots go
        self.capsa(["network", "prune", "-f"], check=False)
        run = self.base / "capsa-run"  # the host's socket, awake or asleep (.asleep)
        deadline = time.monotonic() + 30
        while list(run.glob("monitor-host.sock*")) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.pod(["rm", "-a", "-f", "-t", "0"], check=False)
        self.pod(["system", "reset", "-f"], check=False)
        with open("/proc/self/mountinfo") as f:
            points = [ln.split()[4] for ln in f if str(self.base) in ln.split()[4]]
        for p in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", p], check=False)
        shutil.rmtree(self.base, ignore_errors=True)
        for parent in Path("/sys/fs/cgroup").glob("*/libpod_parent"):
            for sub in sorted(parent.glob("**/"), key=lambda p: len(str(p)), reverse=True):
                try:
                    sub.rmdir()
                except OSError:
                    pass


def timed(fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t0


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def report(result: dict[str, object], path: str | None) -> None:
    """Print the result as JSON, and write it to ``path`` when one is given."""
    import json

    text = json.dumps(result, indent=2)
    print(text)
    if path:
        Path(path).write_text(text + "\n")
