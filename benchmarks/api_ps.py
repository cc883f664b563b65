"""`docker ps -a` through capsa's API socket against through podman's, 200 containers.

Usage (root): .venv/bin/python benchmarks/api_ps.py [--containers 200] [--runs 20]

Each service gets the same N stopped containers (created through its API with
`POST /containers/create`, `--network none`, never started); then `docker ps -a` runs
against each socket, interleaved, two warm-ups each: medians (p90) and the ratio
capsa/podman (target, issue 13: <= 0.5). The containers are removed at the end, with
both services and their private state.
"""

from __future__ import annotations

import argparse

from api_common import IMAGE, RATIO_HEADER, ApiPeers, interleaved, ratio_rows, report, timed


def make(peers: ApiPeers, count: int) -> dict[str, float]:
    """``count`` stopped containers on each side; seconds each side took."""
    took = {}
    body = {"Image": IMAGE, "Cmd": ["true"], "HostConfig": {"NetworkMode": "none"}}
    for side in peers.sides:

        def create(side=side) -> None:
            for i in range(count):
                reply = side.request("POST", f"/containers/create?name=ps{i}", body)
                if reply.status != 201:
                    raise SystemExit(f"{side.name}: create -> {reply}")

        took[side.name] = timed(create)
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=200)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    peers = ApiPeers()
    try:
        peers.start()
        took = make(peers, args.containers)
        for side in peers.sides:  # both list what was made, and nothing else
            lines = side.docker("ps", "-a", "-q").stdout.split()
            if len(lines) != args.containers:
                raise SystemExit(f"{side.name}: ps -a lists {len(lines)} containers")
        times = interleaved(
            {side.name: (lambda s=side: s.docker("ps", "-a")) for side in peers.sides},
            args.runs,
        )
    finally:
        peers.close()
    report(
        f"docker ps -a with {args.containers} stopped containers, {args.runs} interleaved runs",
        RATIO_HEADER,
        [ratio_rows(f"`docker ps -a` ({args.containers} containers)", times)],
        f"creating them through the API: capsa {took['capsa']:.1f} s, "
        f"podman {took['podman']:.1f} s",
    )


if __name__ == "__main__":
    main()
