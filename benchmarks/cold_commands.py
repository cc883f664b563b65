"""Cold `capsa ps -a`, `images` and `volume ls` against podman's, with 20 and 200 objects.

Usage (root): .venv/bin/python benchmarks/cold_commands.py [--runs 20] [--counts 20,200]
    [--json FILE]

Both sides get the same objects: N containers (created, none running), N volumes and N
images (the busybox tarball imported N times, each with its own label, so N image ids
sharing one layer). Nothing runs, so capsa has no monitor host and every command starts
cold, as a user's first command does; the commands run as users run them
(`.venv/bin/capsa`, `podman`), interleaved (capsa, podman, capsa, podman...), and the
medians are compared. The interpreter alone is timed in the same rounds, as the floor a
Python command cannot go below: `python -S -c pass` (how the `capsa` launcher starts,
`capsa.launcher`) and `python -c pass` (with `site`, as pip's script starts). Target
(issue 12): capsa <= 1.0x podman for the three commands at both counts.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from common import CAPSA, IMAGE, ROOT, Peers, report

COMMANDS = {"ps -a": ["ps", "-a"], "images": ["images"], "volume ls": ["volume", "ls"]}
FLOORS = ("python -S -c pass", "python -c pass")


def run_timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} -> {proc.returncode}: {proc.stderr.decode()}")
    return elapsed


def populate(peers: Peers, start: int, count: int) -> None:
    """Objects ``start`` to ``count - 1`` on both sides (image 0 is the base image)."""
    for i in range(start, count):
        peers.capsa(["create", "--network", "none", "--name", f"c{i}", IMAGE, "true"])
        peers.pod(["create", "--network", "none", "--name", f"c{i}", f"localhost/{IMAGE}", "true"])
        peers.capsa(["volume", "create", f"v{i}"])
        peers.pod(["volume", "create", f"v{i}"])
        if i:
            peers.capsa(["import", "-c", f"LABEL n={i}", str(peers.tarball), f"bench/i{i}"])
            peers.pod(
                ["import", "--change", f"LABEL n={i}", str(peers.tarball), f"localhost/bench/i{i}"]
            )


def wait_cold(peers: Peers) -> None:
    """No monitor host serves capsa's run root (a command would start warm)."""
    socket = peers.base / "capsa-run" / "monitor-host.sock"
    deadline = time.monotonic() + 30
    while socket.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"a monitor host still serves {socket}")
        time.sleep(0.1)


def sample(peers: Peers, runs: int) -> dict[str, dict[str, list[float]]]:
    times: dict[str, dict[str, list[float]]] = {c: {"capsa": [], "podman": []} for c in COMMANDS}
    python = str(ROOT / ".venv" / "bin" / "python")
    for floor in FLOORS:
        times[floor] = {"capsa": []}
    for _ in range(runs):
        for floor in FLOORS:
            times[floor]["capsa"].append(run_timed([python, *floor.split()[1:]]))
        for name, args in COMMANDS.items():
            times[name]["capsa"].append(run_timed([CAPSA, *args], env=peers.env))
            times[name]["podman"].append(run_timed([*peers.podman, *args]))
    return times


def summary(values: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values, n=4)
    return {
        "median_ms": round(statistics.median(values) * 1000, 1),
        "p25_ms": round(q[0] * 1000, 1),
        "p75_ms": round(q[2] * 1000, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--counts", default="20,200")
    ap.add_argument("--json")
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    peers = Peers()
    result: dict[str, object] = {"runs": args.runs}
    try:
        made = 0
        for count in counts:
            print(f"making {count} containers, volumes and images on each side...", file=sys.stderr)
            populate(peers, made, count)
            made = count
            wait_cold(peers)
            for name, sides in sample(peers, args.runs).items():
                capsa = summary(sides["capsa"])
                entry: dict[str, object] = {"capsa": capsa}
                if name not in FLOORS:
                    podman = summary(sides["podman"])
                    entry["podman"] = podman
                    entry["ratio"] = round(capsa["median_ms"] / podman["median_ms"], 2)
                result[f"{name} @{count}"] = entry
    finally:
        peers.close()
    report(result, args.json)


if __name__ == "__main__":
    main()
