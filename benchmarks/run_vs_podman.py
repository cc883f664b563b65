"""`capsa run --rm IMG true` against `podman run --rm --network none IMG true`.

Usage (root): .venv/bin/python benchmarks/run_vs_podman.py [--runs 20] [--json FILE]
Same busybox image in both, private stores, runs interleaved; target ratio <= 0.5.
capsa is measured as it runs: commands start warm (forked from the monitor host, which
lingers between the runs), and also cold (``CAPSA_WARM=0``: the command imports
everything itself) for comparison.
"""

from __future__ import annotations

import argparse

from common import IMAGE, Peers, median_ms, report, timed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--json")
    args = ap.parse_args()
    peers = Peers()
    try:
        capsa, capsa_none, capsa_cold, podman = [], [], [], []
        none = ["run", "--rm", "--network", "none", IMAGE, "true"]
        for i in range(args.runs + 2):
            c = timed(lambda: peers.capsa(["run", "--rm", IMAGE, "true"]))
            n = timed(lambda: peers.capsa(none))
            k = timed(lambda: peers.capsa(none, env={"CAPSA_WARM": "0"}))
            p = timed(
                lambda: peers.pod(
                    ["run", "--rm", "--network", "none", f"localhost/{IMAGE}", "true"]
                )
            )
            if i >= 2:
                capsa.append(c)
                capsa_none.append(n)
                capsa_cold.append(k)
                podman.append(p)
        result = {
            "runs": args.runs,
            "capsa_default_bridge_median_ms": round(median_ms(capsa), 1),
            "capsa_network_none_median_ms": round(median_ms(capsa_none), 1),
            "capsa_cold_network_none_median_ms": round(median_ms(capsa_cold), 1),
            "podman_network_none_median_ms": round(median_ms(podman), 1),
        }
        pod = result["podman_network_none_median_ms"]
        result["ratio_default"] = round(result["capsa_default_bridge_median_ms"] / pod, 3)
        result["ratio_none"] = round(result["capsa_network_none_median_ms"] / pod, 3)
        result["ratio_cold_none"] = round(result["capsa_cold_network_none_median_ms"] / pod, 3)
    finally:
        peers.close()
    report(result, args.json)


if __name__ == "__main__":
    main()
