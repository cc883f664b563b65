"""`capsa ps -a` against `podman ps -a` with 20 and 200 containers.

Usage (root): .venv/bin/python benchmarks/ps_scale.py [--json FILE]
Both sides have one running container and the rest created (not run). With a container
running, capsa's monitor host is up and commands start warm (forked from it); the cold
figure (``CAPSA_WARM=0``: the command imports everything itself, as with no container
running) is reported too. Target: ratio <= 0.5 at 200; also how each grows from 20 to 200.
"""

from __future__ import annotations

import argparse

from common import IMAGE, Peers, median_ms, report, timed


def sample(peers: Peers, runs: int = 10) -> tuple[float, float, float]:
    capsa, cold, podman = [], [], []
    for _ in range(runs):
        capsa.append(timed(lambda: peers.capsa(["ps", "-a"])))
        cold.append(timed(lambda: peers.capsa(["ps", "-a"], env={"CAPSA_WARM": "0"})))
        podman.append(timed(lambda: peers.pod(["ps", "-a"])))
    return median_ms(capsa), median_ms(cold), median_ms(podman)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    args = ap.parse_args()
    peers = Peers()
    result: dict[str, float] = {}
    try:
        peers.capsa(["run", "-d", "--network", "none", "--name", "c0", IMAGE, "sleep", "3600"])
        peers.pod(
            [
                "run",
                "-d",
                "--network",
                "none",
                "--name",
                "c0",
                f"localhost/{IMAGE}",
                "sleep",
                "3600",
            ]
        )
        made = 1
        for target in (20, 200):
            for i in range(made, target):
                peers.capsa(["create", "--name", f"c{i}", IMAGE, "true"])
                peers.pod(
                    ["create", "--network", "none", "--name", f"c{i}", f"localhost/{IMAGE}", "true"]
                )
            made = target
            c, k, p = sample(peers)
            result[f"capsa_ms_{target}"] = round(c, 1)
            result[f"capsa_cold_ms_{target}"] = round(k, 1)
            result[f"podman_ms_{target}"] = round(p, 1)
            result[f"ratio_{target}"] = round(c / p, 3)
            result[f"ratio_cold_{target}"] = round(k / p, 3)
        result["capsa_growth_20_to_200"] = round(result["capsa_ms_200"] / result["capsa_ms_20"], 2)
        result["podman_growth_20_to_200"] = round(
            result["podman_ms_200"] / result["podman_ms_20"], 2
        )
    finally:
        peers.close()
    report(result, args.json)


if __name__ == "__main__":
    main()
