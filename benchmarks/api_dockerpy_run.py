"""docker-py's `containers.run(IMG, "true", remove=True)` in a loop, capsa's API against
podman's.

Usage (root): .venv/bin/python benchmarks/api_dockerpy_run.py [--runs 20] [--network none|default]

One docker-py client per service (`DockerClient(base_url=unix://SOCK, version="auto")`,
made once, as a program using docker-py would); each run is one
`client.containers.run(IMG, "true", remove=True, network_mode=...)` (create, start,
wait, logs, remove: what docker-py sends), interleaved, two warm-ups each: medians (p90)
and the ratio (target, issue 13: <= 0.5). Private sockets and roots; all removed.
A run that fails (podman 4.3's `logs` of a finished container sometimes never answers:
``--timeout`` per request) is left out of the times and counted in the output.
"""

from __future__ import annotations

import argparse
import time

from api_common import IMAGE, RATIO_HEADER, ApiPeers, ratio_rows, report


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--network", choices=["none", "default"], default="none")
    ap.add_argument("--timeout", type=float, default=20, help="seconds a request may take")
    args = ap.parse_args()
    kwargs = {} if args.network == "default" else {"network_mode": args.network}
    peers = ApiPeers()
    try:
        peers.start()
        clients = {side.name: side.client() for side in peers.sides}
        for c in clients.values():
            c.api.timeout = args.timeout

        failures: dict[str, list[str]] = {name: [] for name in clients}

        def run(name: str) -> float | None:
            """Seconds of one run; None when it failed (counted, reported, not timed)."""
            t0 = time.perf_counter()
            try:
                out = clients[name].containers.run(IMAGE, "true", remove=True, **kwargs)
            except Exception as e:
                failures[name].append(f"{type(e).__name__}: {e}")
                if len(failures[name]) > 3:
                    msg = f"{name}: containers.run failed 4 times: {failures[name]}"
                    raise SystemExit(msg) from None
                return None
            assert out == b"", out
            return time.perf_counter() - t0

        times: dict[str, list[float]] = {name: [] for name in clients}
        names = list(clients)
        for i in range(args.runs + 2):  # two warm-ups; sides alternate who goes first
            for name in names if i % 2 == 0 else names[::-1]:
                took = run(name)
                if i >= 2 and took is not None:
                    times[name].append(took)
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
        "\n".join(
            f"{name}: {len(errs)} of {args.runs + 2} runs failed (left out of the times), "
            f"first: {errs[0]}"
            for name, errs in failures.items()
            if errs
        ),
    )


if __name__ == "__main__":
    main()
