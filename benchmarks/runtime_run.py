"""Benchmark: `capsa-runtime run` of /bin/true against `runc run`, same bundle, interleaved.

Usage (root): .venv/bin/python benchmarks/runtime_run.py [--runs 40] [--json FILE]

Both runtimes run the same busybox bundle (default spec: pid, ipc, uts, mount and
network namespaces, a cgroup, masked paths, default devices) with /bin/true. Runs
alternate capsa / runc so drift on the machine hits both alike. The ratio is
median(capsa) / median(runc). The time split shows where capsa's time goes: the
interpreter's start, imports, and each phase of the run as traced by CAPSA_TRACE.
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
from tests.helpers.rootfs import build_busybox_rootfs  # noqa: E402

CAPSA = ROOT / ".venv" / "bin" / "capsa-runtime"
PYTHON = ROOT / ".venv" / "bin" / "python"


def make_bundle(base: Path) -> Path:
    bundle = base / "bundle"
    build_busybox_rootfs(bundle / "rootfs", probe=False)
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["/bin/true"]
    (bundle / "config.json").write_text(json.dumps(cfg))
    return bundle


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {proc.stderr.decode().strip()}")
    return elapsed


def split(bundle: Path, state: Path, runs: int) -> dict[str, float]:
    """Median milliseconds of start-up, imports, and of the traced run phases."""
    bare = [timed([str(PYTHON), "-c", "pass"]) for _ in range(runs)]
    imports = [
        timed([str(PYTHON), "-c", "import capsa.runtime.cli, capsa.runtime.commands"])
        for _ in range(runs)
    ]
    out = {
        "python_startup_ms": statistics.median(bare) * 1000,
        "imports_ms": (statistics.median(imports) - statistics.median(bare)) * 1000,
    }
    phases: dict[str, list[float]] = {}
    for i in range(runs):
        trace = state / f"trace-{i}.json"
        env = dict(os.environ, CAPSA_TRACE=str(trace))
        timed(
            [
                str(CAPSA),
                "--root",
                str(state / "capsa"),
                "run",
                "--bundle",
                str(bundle),
                f"capsa-bench-split-{os.getpid()}-{i}",
            ],
            env,
        )
        if trace.exists():
            for name, ms in json.loads(trace.read_text()).items():
                phases.setdefault(name, []).append(ms)
    out.update({f"phase_{k}_ms": statistics.median(v) for k, v in phases.items()})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="capsa-bench-"))
    try:
        bundle = make_bundle(base)
        capsa, runc = [], []
        for i in range(args.runs + 3):
            name = f"capsa-bench-{os.getpid()}-{i}"
            c = timed(
                [str(CAPSA), "--root", str(base / "capsa"), "run", "--bundle", str(bundle), name]
            )
            r = timed(["runc", "--root", str(base / "runc"), "run", "--bundle", str(bundle), name])
            if i >= 3:  # warm-up
                capsa.append(c)
                runc.append(r)
        result = {
            "runs": args.runs,
            "capsa_median_ms": statistics.median(capsa) * 1000,
            "runc_median_ms": statistics.median(runc) * 1000,
            "capsa_p90_ms": sorted(capsa)[int(len(capsa) * 0.9) - 1] * 1000,
            "runc_p90_ms": sorted(runc)[int(len(runc) * 0.9) - 1] * 1000,
        }
        result["ratio"] = result["capsa_median_ms"] / result["runc_median_ms"]
        result.update(split(bundle, base, max(10, args.runs // 4)))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    report({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}, args.json)


if __name__ == "__main__":
    main()
