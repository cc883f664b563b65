"""System memory per idle container: N `sleep` containers, whole-machine delta.

Usage (root): .venv/bin/python benchmarks/idle_memory.py [--count 100] [--json FILE]
Memory in use = MemTotal - MemAvailable - free pages in the per-cpu lists (/proc/meminfo,
/proc/zoneinfo), measured before starting the containers and after they have settled; the
same for podman (--network none), alternating the engines --rounds times.
Target: capsa's per-container figure <= podman's.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import IMAGE, Peers, report


BREAKDOWN = ("UsedRaw", "PcpFree", "MemFree", "Cached", "AnonPages", "Shmem", "SUnreclaim", "SReclaimable",
             "KernelStack", "PageTables", "VmallocUsed", "Unevictable")


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


def settle() -> dict[str, int]:
    """Drop caches, wait for the machine to settle."""
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")
    time.sleep(5)
    return meminfo()


def pss_kib(match: tuple[str, ...]) -> int:
    """Total PSS of the processes whose command line starts with one of ``match``."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if not cmd.startswith(match):
                continue
            for line in (entry / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def measure(start: object, count: int, processes: tuple[str, ...]) -> dict[str, float]:
    """MiB per container: the whole-machine figure ("Used"), where it went, and the PSS
    of the engine's per-container processes plus the containers' own."""
    before = settle()
    for i in range(count):
        start(i)  # type: ignore[operator]
    after = settle()
    out = {key: round((after[key] - before[key]) / count / 1024, 3)
           for key in ("Used", *BREAKDOWN)}
    out["PSS engine"] = round(pss_kib(processes) / count / 1024, 3)
    out["PSS containers"] = round(pss_kib(("sleep 100000",)) / count / 1024, 3)
    return out


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternate the engines this many times; medians are reported")
    ap.add_argument("--json")
    args = ap.parse_args()
    peers = Peers()
    runs: dict[str, list[dict[str, float]]] = {"capsa": [], "podman": []}
    try:
        for _ in range(args.rounds):
            runs["capsa"].append(measure(
                lambda i: peers.capsa(["run", "-d", "--network", "none", "--name", f"idle{i}",
                                       IMAGE, "sleep", "100000"]),
                args.count, ("capsa-monitor",)))
            peers.capsa(["rm", "-f", *peers.capsa(["ps", "-aq"]).stdout.split()])
            runs["podman"].append(measure(
                lambda i: peers.pod(["run", "-d", "--network", "none", "--name", f"idle{i}",
                                     f"localhost/{IMAGE}", "sleep", "100000"]),
                args.count, ("/usr/bin/conmon", "conmon")))
            peers.pod(["rm", "-f", "-t", "0", "-a"])
        summary = {engine: {key: median([r[key] for r in rounds]) for key in rounds[0]}
                   for engine, rounds in runs.items()}
        capsa, podman = summary["capsa"], summary["podman"]
        result = {"count": args.count, "rounds": args.rounds,
                  "capsa_mib_per_container": capsa["Used"],
                  "podman_mib_per_container": podman["Used"],
                  "ratio": round(capsa["Used"] / podman["Used"], 3) if podman["Used"] > 0 else None,
                  "ratio_pss_engine": round(capsa["PSS engine"] / podman["PSS engine"], 3),
                  "capsa_median_mib": capsa, "podman_median_mib": podman,
                  "each_round": runs}
    finally:
        peers.close()
    report(result, args.json)


if __name__ == "__main__":
    main()
