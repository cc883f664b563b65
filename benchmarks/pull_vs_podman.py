"""`capsa pull` against `podman pull` of a Debian minbase image from a loopback registry.

Usage (root): .venv/bin/python benchmarks/pull_vs_podman.py [--runs 5] [--json FILE]

The image is made offline: `debootstrap --variant=minbase bookworm` (cached as a tarball
in /var/tmp/capsa-bench-debian.tar), one gzip layer with umoci, pushed with skopeo to
Debian's docker-registry on 127.0.0.1. Each run pulls into a fresh, empty store (capsa:
private CAPSA_ROOT; podman: private --root/--runroot), so both really download, verify
and unpack. Runs are interleaved (the order alternates) after one warm-up of each;
`sync` before every timed command. Reports medians of wall time (the target: ratio
capsa/podman <= 1.0) and of CPU time (user + sys of the command's process tree, steadier
when the machine is shared), and the 1-minute load average before and after.
"""

from __future__ import annotations

import argparse
import json
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

from common import report  # noqa: E402
from tests.helpers.registry import LocalRegistry, push_layout  # noqa: E402

CAPSA = str(ROOT / ".venv" / "bin" / "capsa")
CACHE = Path("/var/tmp/capsa-bench-debian.tar")
MIRROR = "http://deb.debian.org/debian"
REPO = "bench/debian:latest"


def sh(*args: str, env: dict[str, str] | None = None) -> str:
    """Run a command; its stdout (raise with its stderr on failure)."""
    proc = subprocess.run(args, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def debian_tarball(work: Path) -> Path:
    """The minbase rootfs as a tar file, built with debootstrap once and cached."""
    if CACHE.is_file():
        return CACHE
    rootfs = work / "debootstrap"
    print(f"debootstrap --variant=minbase bookworm (cached afterwards in {CACHE})", flush=True)
    sh("debootstrap", "--variant=minbase", "bookworm", str(rootfs), MIRROR)
    sh("chroot", str(rootfs), "apt-get", "clean")
    shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True)
    partial = CACHE.with_suffix(".tar.part")
    sh("tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(partial), ".")
    partial.rename(CACHE)
    shutil.rmtree(rootfs, ignore_errors=True)
    return CACHE


def oci_layout(tarball: Path, work: Path) -> Path:
    """One gzip layer holding the rootfs, cmd /bin/bash, via umoci."""
    layout, bundle = work / "layout", work / "bundle"
    image = f"{layout}:latest"
    sh("umoci", "init", "--layout", str(layout))
    sh("umoci", "new", "--image", image)
    sh("umoci", "unpack", "--image", image, str(bundle))
    sh("tar", "--numeric-owner", "--xattrs", "-C", str(bundle / "rootfs"), "-xpf", str(tarball))
    sh("umoci", "repack", "--image", image, str(bundle))
    sh(
        "umoci",
        "config",
        "--image",
        image,
        "--config.cmd",
        "/bin/bash",
        "--os",
        "linux",
        "--architecture",
        "amd64",
    )
    shutil.rmtree(bundle)
    return layout


def layer_size(layout: Path) -> int:
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"].removeprefix("sha256:")
    manifest = json.loads((layout / "blobs/sha256" / digest).read_text())
    return sum(int(layer["size"]) for layer in manifest["layers"])


def unmount_under(base: Path) -> None:
    with open("/proc/self/mountinfo") as f:
        points = [ln.split()[4] for ln in f if ln.split()[4].startswith(str(base))]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


class Sample:
    """One timed command: wall time and the CPU time (user + sys) of its process tree."""

    def __init__(self, wall: float, cpu: float) -> None:
        self.wall = wall
        self.cpu = cpu


class Puller:
    """One fresh store per run for each peer; timing covers only the pull command."""

    def __init__(self, base: Path, ref: str) -> None:
        self.base = base
        self.ref = ref
        self.count = 0
        self.image_size = 0

    def _fresh(self, name: str) -> Path:
        self.count += 1
        path = self.base / f"{name}-{self.count}"
        path.mkdir()
        return path

    def capsa(self) -> Sample:
        d = self._fresh("capsa")
        env = dict(os.environ, CAPSA_ROOT=str(d / "root"), CAPSA_RUNROOT=str(d / "run"))
        env.pop("CAPSA_CONFIG", None)
        sample = self._timed([CAPSA, "pull", self.ref], env)
        out = sh(CAPSA, "image", "inspect", "-f", "{{.Size}}", self.ref, env=env)
        self.image_size = int(out.strip())
        shutil.rmtree(d)
        return sample

    def podman(self) -> Sample:
        d = self._fresh("podman")
        cmd = ["podman", "--root", str(d / "root"), "--runroot", str(d / "run")]
        sample = self._timed([*cmd, "pull", "-q", "--tls-verify=false", self.ref], None)
        subprocess.run([*cmd, "system", "reset", "-f"], capture_output=True, check=False)
        unmount_under(d)
        shutil.rmtree(d, ignore_errors=True)
        return sample

    @staticmethod
    def _timed(cmd: list[str], env: dict[str, str] | None) -> Sample:
        os.sync()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {err.strip()[-2000:]}")
        return Sample(wall, usage.ru_utime + usage.ru_stime)


def measure(puller: Puller, runs: int) -> dict[str, list[Sample]]:
    samples: dict[str, list[Sample]] = {"capsa": [], "podman": []}
    for i in range(runs + 1):  # run 0 warms the registry's page cache for both
        order = ("capsa", "podman") if i % 2 == 0 else ("podman", "capsa")
        for peer in order:
            sample = getattr(puller, peer)()
            if i > 0:
                samples[peer].append(sample)
            print(
                f"run {i} {peer}: {sample.wall * 1000:.0f} ms wall, {sample.cpu * 1000:.0f} ms cpu",
                file=sys.stderr,
                flush=True,
            )
    return samples


def summary(samples: dict[str, list[Sample]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for kind in ("wall", "cpu"):
        medians = {}
        for peer, items in samples.items():
            values = [getattr(s, kind) * 1000 for s in items]
            medians[peer] = statistics.median(values)
            out[f"{peer}_{kind}_ms"] = [round(v, 1) for v in values]
        suffix = "" if kind == "wall" else "_cpu"
        out[f"capsa{suffix}_median_ms"] = round(medians["capsa"], 1)
        out[f"podman{suffix}_median_ms"] = round(medians["podman"], 1)
        out[f"ratio{suffix}"] = round(medians["capsa"] / medians["podman"], 3)
    return out


def podman_version() -> str:
    return sh("podman", "--version").strip().rsplit(" ", 1)[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", help="also write the result to this file")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="capsa-bench-pull-", dir="/var/tmp"))
    registry = None
    try:
        tarball = debian_tarball(base)
        layout = oci_layout(tarball, base)
        registry = LocalRegistry()
        push_layout(registry, layout, REPO)
        puller = Puller(base, f"{registry.host}/{REPO}")
        load_before = os.getloadavg()[0]
        samples = measure(puller, args.runs)
        result = {
            "runs": args.runs,
            "image": REPO,
            "compressed_bytes": layer_size(layout),
            "unpacked_bytes": puller.image_size,
            **summary(samples),
            "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "podman_version": podman_version(),
        }
    finally:
        if registry is not None:
            registry.stop()
        unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)
    report(result, args.json)


if __name__ == "__main__":
    main()
