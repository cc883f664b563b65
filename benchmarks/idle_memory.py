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


def used_kib() -> int:
    info = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            info[key] = int(value.split()[0])
    return info["MemTotal"] - info["MemAvailable"]


def settle() -> int:
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")
    time.sleep(5)
    return used_kib()


def measure(start: object, count: int) -> float:
    before = settle()
    for i in range(count):
        start(i)  # type: ignore[operator]
    after = settle()
    return (after - before) / count / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--json")
    args = ap.parse_args()
    peers = Peers()
    try:
        capsa = measure(lambda i: peers.capsa(["run", "-d", "--name", f"idle{i}", IMAGE,
                                               "sleep", "100000"]), args.count)
        peers.capsa(["rm", "-f", *peers.capsa(["ps", "-aq"]).stdout.split()])
        podman = measure(lambda i: peers.pod(["run", "-d", "--network", "none", "--name",
                                              f"idle{i}", f"localhost/{IMAGE}", "sleep",
                                              "100000"]), args.count)
        result = {"count": args.count, "capsa_mib_per_container": round(capsa, 2),
                  "podman_mib_per_container": round(podman, 2),
                  "ratio": round(capsa / podman, 3) if podman > 0 else None}
    finally:
        peers.close()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
