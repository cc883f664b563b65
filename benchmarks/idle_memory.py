"""Memory per idle container, capsa against podman, at several container counts.

Usage (root)::

    .venv/bin/python benchmarks/idle_memory.py [--counts 1,10,100] [--rounds 3] [--json FILE]

For each count N and round, each engine (alternating which goes first) starts N idle
``sleep`` containers (``--network none``), the machine settles (``--settle`` seconds:
capsa's host sheds its warm-start modules and goes to sleep, podman has nothing to
settle), and then this is read:

- **engine**: the PSS of the engine's own processes for those containers (capsa: every
  ``capsa-monitor`` process of the benchmark's roots, i.e. the monitor host, or its
  sleeping form, and the shims; podman: its ``conmon`` processes), plus their kernel
  memory that can be told per process: page tables (``VmPTE``) and kernel stacks
  (16 KiB a thread). Divided by N: the figure the targets are about.
- the containers' own PSS (the same ``sleep`` on both sides), and the whole machine's
  memory in use (MemTotal - MemAvailable - free pages in the per-cpu lists) with where
  it went (slab, page tables...), before and after: too noisy below ~100 containers,
  reported for reference.

The fixed cost is the intercept of a least-squares line through each engine's totals
(engine memory against N); the per-container cost its slope. Medians over the rounds.
Targets (issue 12): capsa's engine memory per container <= 5x podman's at 1 container,
<= 1.0x at 10, <= 0.7x at 100.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from common import IMAGE, Peers, report

BREAKDOWN = (
    "UsedRaw",
    "PcpFree",
    "MemFree",
    "Cached",
    "AnonPages",
    "Shmem",
    "SUnreclaim",
    "SReclaimable",
    "KernelStack",
    "PageTables",
    "VmallocUsed",
)
TARGETS = {1: 5.0, 10: 1.0, 100: 0.7}
KERNEL_STACK_KIB = 16  # THREAD_SIZE on x86-64


def meminfo() -> dict[str, int]:
    info = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            info[key] = int(value.split()[0])
    # Free pages parked in the per-cpu lists are not in MemFree; the lists fill and drain
    # by tens of MiB as processes come and go, so count them as the free memory they are.
    info["PcpFree"] = pcp_kib()
    info["Used"] = info["MemTotal"] - info["MemAvailable"] - info["PcpFree"]
    info["UsedRaw"] = info["MemTotal"] - info["MemAvailable"]
    return info


def pcp_kib() -> int:
    pages = 0
    with open("/proc/zoneinfo") as f:
        for line in f:
            words = line.split()
            if words[:1] == ["count:"]:
                pages += int(words[1])
    return pages * 4


def drop_caches() -> None:
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")


def _cmdline(pid: str) -> str:
    return (
        Path("/proc", pid, "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    )


def _touches(pid: str, base: str) -> bool:
    """The process's command line or one of its open files names ``base``."""
    if base in _cmdline(pid):
        return True
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if base in os.readlink(f"/proc/{pid}/fd/{fd}"):
                return True
        except OSError:
            continue
    return False


def engine_processes(prefixes: tuple[str, ...], base: str) -> list[str]:
    """Pids of the engine's processes (command line starting with one of ``prefixes``)
    that belong to this benchmark (other capsa and podman users may share the machine)."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if _cmdline(pid).startswith(prefixes) and _touches(pid, base):
                out.append(pid)
        except OSError:
            continue
    return out


def process_kib(pid: str) -> tuple[int, int]:
    """(PSS, kernel memory: page tables and kernel stacks) of one process, in KiB."""
    pss = 0
    for line in Path("/proc", pid, "smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            pss = int(line.split()[1])
    status = dict(
        line.split(":", 1) for line in Path("/proc", pid, "status").read_text().splitlines()
    )
    kernel = int(status["VmPTE"].split()[0]) + KERNEL_STACK_KIB * int(status["Threads"])
    return pss, kernel


def engine_kib(prefixes: tuple[str, ...], base: str) -> dict[str, int]:
    pss = kernel = count = 0
    for pid in engine_processes(prefixes, base):
        try:
            p, k = process_kib(pid)
        except (OSError, KeyError):
            continue
        pss, kernel, count = pss + p, kernel + k, count + 1
    return {"pss": pss, "kernel": kernel, "processes": count}


def containers_pss_kib() -> int:
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if _cmdline(pid).startswith("sleep 100000"):
                total += process_kib(pid)[0]
        except (OSError, KeyError):
            continue
    return total


class Engine:
    """One engine as the benchmark drives it."""

    def __init__(self, name: str, peers: Peers) -> None:
        self.name = name
        self.peers = peers
        self.base = str(peers.base)

    def start(self, i: int) -> None:
        if self.name == "capsa":
            self.peers.capsa(
                ["run", "-d", "--network", "none", "--name", f"idle{i}", IMAGE, "sleep", "100000"]
            )
        else:
            self.peers.pod(
                [
                    "run",
                    "-d",
                    "--network",
                    "none",
                    "--name",
                    f"idle{i}",
                    f"localhost/{IMAGE}",
                    "sleep",
                    "100000",
                ]
            )

    def remove_all(self) -> None:
        if self.name == "capsa":
            ids = self.peers.capsa(["ps", "-aq"]).stdout.split()
            if ids:
                self.peers.capsa(["rm", "-f", *ids])
        else:
            self.peers.pod(["rm", "-f", "-t", "0", "-a"])

    def engine(self) -> dict[str, int]:
        if self.name == "capsa":
            return engine_kib(("capsa-monitor",), self.base)
        return engine_kib(("/usr/bin/conmon", "conmon"), self.base)


def measure(engine: Engine, count: int, settle: float) -> dict[str, float]:
    """MiB: the engine's total and per container, and the machine-wide figures."""
    drop_caches()
    time.sleep(2)
    before = meminfo()
    for i in range(count):
        engine.start(i)
    time.sleep(settle)
    drop_caches()
    time.sleep(2)
    after = meminfo()
    used = engine.engine()
    mib = 1024.0
    out: dict[str, float] = {
        "engine_total": round((used["pss"] + used["kernel"]) / mib, 3),
        "engine_pss": round(used["pss"] / mib, 3),
        "engine_kernel": round(used["kernel"] / mib, 3),
        "engine_processes": used["processes"],
        "per_container": round((used["pss"] + used["kernel"]) / mib / count, 3),
        "containers_pss_per_container": round(containers_pss_kib() / mib / count, 3),
    }
    for key in ("Used", *BREAKDOWN):
        out[f"machine_{key}_per_container"] = round((after[key] - before[key]) / mib / count, 3)
    engine.remove_all()
    return out


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def fit(points: dict[int, float]) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line through ``points`` (N -> MiB)."""
    xs, ys = list(points), list(points.values())
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    return my - slope * mx, slope


def summarize(runs: dict[str, dict[int, list[dict[str, float]]]]) -> dict[str, object]:
    summary: dict[str, object] = {}
    medians = {
        engine: {
            n: {key: median([r[key] for r in rounds]) for key in rounds[0]}
            for n, rounds in by_count.items()
        }
        for engine, by_count in runs.items()
    }
    for n in medians["capsa"]:
        capsa, podman = medians["capsa"][n], medians["podman"][n]
        ratio = (
            capsa["per_container"] / podman["per_container"] if podman["per_container"] else None
        )
        summary[f"n{n}"] = {
            "capsa_mib_per_container": capsa["per_container"],
            "podman_mib_per_container": podman["per_container"],
            "ratio": None if ratio is None else round(ratio, 3),
            "target": TARGETS.get(n),
            "met": None if ratio is None or n not in TARGETS else ratio <= TARGETS[n],
            "ratio_each_round": [
                round(c["per_container"] / p["per_container"], 3)
                for c, p in zip(runs["capsa"][n], runs["podman"][n], strict=True)
                if p["per_container"]
            ],
        }
    if len(medians["capsa"]) >= 2:
        for engine in medians:
            fixed, slope = fit({n: m["engine_total"] for n, m in medians[engine].items()})
            summary[f"{engine}_fixed_mib"] = round(fixed, 3)
            summary[f"{engine}_mib_per_added_container"] = round(slope, 4)
    summary["medians"] = medians
    return summary


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", default="1,10,100")
    ap.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="each count this many times, engines alternating; medians reported",
    )
    ap.add_argument(
        "--settle", type=float, default=15.0, help="seconds between the last start and the reading"
    )
    ap.add_argument("--engines", default="capsa,podman")
    ap.add_argument("--json")
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    peers = Peers()
    engines = [Engine(name, peers) for name in args.engines.split(",")]
    runs: dict[str, dict[int, list[dict[str, float]]]] = {e.name: {} for e in engines}
    try:
        for r in range(args.rounds):
            for n in counts:
                order = engines if r % 2 == 0 else engines[::-1]
                for engine in order:
                    runs[engine.name].setdefault(n, []).append(measure(engine, n, args.settle))
        result: dict[str, object] = {
            "counts": counts,
            "rounds": args.rounds,
            "settle_s": args.settle,
        }
        if len(engines) == 2:
            result.update(summarize(runs))
        result["each_round"] = runs
    finally:
        peers.close()
    report(result, args.json)


if __name__ == "__main__":
    main()
