"""docker-py's `containers.run(IMG, "true", remove=True)` in a loop, capsa's API against
podman's.

Usage (root): .venv/bin/python benchmarks/api_dockerpy_run.py [--runs 20] [--network none|default]

One docker-py client per service (`DockerClient(base_url=unix://SOCK, version="auto")`,
made once, as a program using docker-py would); each run is one
`client.containers.run(IMG, "true", remove=True, network_mode=...)` (create, start,
wait, logs, remove: what docker-py sends), interleaved, two warm-ups each: medians (p90)
and the ratio (target, issue 13: <= 0.5). Private sockets and roots; all removed.
"""

from __future__ import annotations

import argparse

from api_common import IMAGE, RATIO_HEADER, ApiPeers, interleaved, ratio_rows, report


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--network", choices=["none", "default"], default="none")
    args = ap.parse_args()
    kwargs = {} if args.network == "default" else {"network_mode": args.network}
    peers = ApiPeers()
    try:
        peers.start()
        clients = {side.name: side.client() for side in peers.sides}

        def run(name: str) -> None:
            out = clients[name].containers.run(IMAGE, "true", remove=True, **kwargs)
            assert out == b"", out

        times = interleaved({name: (lambda n=name: run(n)) for name in clients}, args.runs)
        for c in clients.values():
            c.close()
    finally:
        peers.close()
    mode = f", network_mode={args.network!r}" if kwargs else ""
    label = f'`containers.run(IMG, "true", remove=True{mode})`'
    report(
        f"docker-py containers.run loop, {args.runs} interleaved runs",
        RATIO_HEADER,
        [ratio_rows(label, times)],
    )


if __name__ == "__main__":
    main()
