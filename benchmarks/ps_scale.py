"""`capsa ps -a` against `podman ps -a` with 20 and 200 containers (created, not run).

Usage (root): .venv/bin/python benchmarks/ps_scale.py [--json FILE]
Target: ratio <= 0.5 at 200 containers; also reports how each grows from 20 to 200.
"""

from __future__ import annotations

import argparse

from common import IMAGE, Peers, median_ms, report, timed


def sample(peers: Peers, runs: int = 10) -> tuple[float, float]:
    capsa, podman = [], []
    for _ in range(runs):
        capsa.append(timed(lambda: peers.capsa(["ps", "-a"])))
        podman.append(timed(lambda: peers.pod(["ps", "-a"])))
    return median_ms(capsa), median_ms(podman)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    args = ap.parse_args()
    peers = Peers()
    result: dict[str, float] = {}
    try:
        made = 0
        for target in (20, 200):
            for i in range(made, target):
                peers.capsa(["create", "--name", f"c{i}", IMAGE, "true"])
                peers.pod(["create", "--network", "none", "--name", f"c{i}",
                           f"localhost/{IMAGE}", "true"])
            made = target
            c, p = sample(peers)
            result[f"capsa_ms_{target}"] = round(c, 1)
            result[f"podman_ms_{target}"] = round(p, 1)
            result[f"ratio_{target}"] = round(c / p, 3)
        result["capsa_growth_20_to_200"] = round(result["capsa_ms_200"] / result["capsa_ms_20"], 2)
        result["podman_growth_20_to_200"] = round(result["podman_ms_200"] /
                                                  result["podman_ms_20"], 2)
    finally:
        peers.close()
    report(result, args.json)


if __name__ == "__main__":
    main()
