"""System memory per idle container: N `sleep` containers, whole-machine delta.

Usage (root): .venv/bin/python benchmarks/idle_memory.py [--count 100] [--json FILE]
Memory in use = MemTotal - MemAvailable (/proc/meminfo), measured before starting the
containers and after they have settled; the same for podman (--network none).
Target: capsa's per-container figure <= podman's.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import IMAGE, Peers


BREAKDOWN = ("AnonPages", "Shmem", "SUnreclaim", "SReclaimable", "KernelStack", "PageTables",
             "Percpu")


def meminfo() -> dict[str, int]:
    info = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            info[key] = int(value.split()[0])
    info["Used"] = info["MemTotal"] - info["MemAvailable"]
    return info


def settle() -> dict[str, int]:
    """Drop caches and drain the per-cpu free page lists (pages freed by exited processes
    sit there uncounted by MemFree until compaction drains them)."""
    for knob, value in (("drop_caches", "3"), ("compact_memory", "1")):
        with open(f"/proc/sys/vm/{knob}", "w") as f:
            f.write(value)
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--json")
    args = ap.parse_args()
    peers = Peers()
    try:
        capsa = measure(lambda i: peers.capsa(["run", "-d", "--network", "none", "--name", f"idle{i}", IMAGE,
                                               "sleep", "100000"]), args.count,
                        ("capsa-monitor",))
        peers.capsa(["rm", "-f", *peers.capsa(["ps", "-aq"]).stdout.split()])
        podman = measure(lambda i: peers.pod(["run", "-d", "--network", "none", "--name",
                                              f"idle{i}", f"localhost/{IMAGE}", "sleep",
                                              "100000"]), args.count, ("/usr/bin/conmon", "conmon"))
        result = {"count": args.count,
                  "capsa_mib_per_container": capsa["Used"],
                  "podman_mib_per_container": podman["Used"],
                  "ratio": round(capsa["Used"] / podman["Used"], 3) if podman["Used"] > 0 else None,
                  "capsa_breakdown_mib": capsa, "podman_breakdown_mib": podman}
    finally:
        peers.close()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
