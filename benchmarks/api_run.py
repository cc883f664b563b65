"""`docker run --rm IMG true` through capsa's API socket against through podman's.

Usage (root): .venv/bin/python benchmarks/api_run.py [--runs 20] [--network none|default|both]

The docker CLI (the same binary, a private DOCKER_CONFIG) runs `docker run --rm
[--network none] capsa-test/busybox:latest true` against each service's socket, runs
interleaved (which side goes first alternates), two warm-ups each; medians (p90) and
the ratio capsa/podman. Target (issue 13): <= 0.5. `--network none` (the default here)
gives both containers an empty network namespace, as issue 4's `run` benchmark; `default`
uses each engine's default bridge (podman's on a private subnet and config dir).
Both services run on private sockets and roots (benchmarks/api_common.py) and everything
is removed at the end.
"""

from __future__ import annotations

import argparse

from api_common import IMAGE, RATIO_HEADER, ApiPeers, interleaved, ratio_rows, report


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--network", choices=["none", "default", "both"], default="none")
    args = ap.parse_args()
    nets = ["none", "default"] if args.network == "both" else [args.network]
    peers = ApiPeers()
    rows = []
    try:
        peers.start()
        for net in nets:
            flags = [] if net == "default" else ["--network", net]
            times = interleaved(
                {
                    side.name: (lambda s=side, f=flags: s.docker("run", "--rm", *f, IMAGE, "true"))
                    for side in peers.sides
                },
                args.runs,
            )
            cmd = " ".join(["docker run --rm", *flags, "IMG true"])
            rows.append(ratio_rows(f"`{cmd}`" + (" (default bridges)" if not flags else ""), times))
    finally:
        peers.close()
    report(
        f"docker run --rm through each service's socket, {args.runs} interleaved runs",
        RATIO_HEADER,
        rows,
    )


if __name__ == "__main__":
    main()
