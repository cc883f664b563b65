"""`docker run -i IMG cat` piping data through attach: capsa's API against podman's.

Usage (root): .venv/bin/python benchmarks/api_attach.py [--megabytes 200] [--runs 5]

For each service, `docker run -i --rm --network none IMG cat` with MEGABYTES (10^6
bytes; a pseudo-random block repeated) written to its stdin by this script and its
stdout read back and counted (every byte must come back), timed from the start of the
command to its exit: the docker CLI's hijacked attach both ways (stdin to the container,
its output multiplexed back) and the half-close that ends `cat`. Runs interleaved after
one warm-up each; the throughput is MEGABYTES / median wall time, so the container's
start is in it (about 0.1-0.5 s of several seconds; `benchmarks/api_run.py` measures it
alone). Target (issue 13): capsa's throughput >= 1.0x podman's.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import threading

from api_common import DOCKER, IMAGE, ApiPeers, Side, interleaved, median_ms, p90_ms, report

CHUNK = 1 << 16


def pipe_through(side: Side, total: int, timeout: float) -> None:
    proc = subprocess.Popen(
        [DOCKER, "run", "-i", "--rm", "--network", "none", IMAGE, "cat"],
        env=side.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    block = os.urandom(CHUNK)

    def feed() -> None:
        left = total
        try:
            while left > 0:
                n = min(left, CHUNK)
                proc.stdin.write(block[:n])  # type: ignore[union-attr]
                left -= n
        except BrokenPipeError:
            pass  # the command ended (killed): reported by the reader
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()  # type: ignore[union-attr]

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    got = 0
    while data := proc.stdout.read1(1 << 20):
        got += len(data)
    code = proc.wait()
    watchdog.cancel()
    writer.join(5)
    err = proc.stderr.read().decode(errors="replace")  # type: ignore[union-attr]
    if code == -9:
        raise SystemExit(f"{side.name}: run -i cat still ran after {timeout} s ({got} bytes back)")
    if code != 0 or got != total:
        raise SystemExit(f"{side.name}: run -i cat exited {code}, {got} of {total} bytes: {err}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--megabytes", type=int, default=200)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=300, help="seconds a run may take")
    args = ap.parse_args()
    total = args.megabytes * 1_000_000
    peers = ApiPeers()
    failed: dict[str, str] = {}

    def attempt(side: Side) -> None:
        if side.name in failed:
            return
        try:
            pipe_through(side, total, args.timeout)
        except SystemExit as e:  # reported in the table; the other side still runs
            failed[side.name] = str(e)

    try:
        peers.start()
        times = interleaved(
            {side.name: (lambda s=side: attempt(s)) for side in peers.sides},
            args.runs,
            warmup=1,
        )
    finally:
        peers.close()
    cells, rate = [], {}
    for name in ("capsa", "podman"):
        if name in failed:
            cells.append(f"failed: {failed[name]}")
            continue
        rate[name] = args.megabytes / (median_ms(times[name]) / 1000)
        cells.append(
            f"{median_ms(times[name]) / 1000:.2f} s (p90 {p90_ms(times[name]) / 1000:.2f})"
            f" = {rate[name]:.1f} MB/s"
        )
    ratio = f"**{rate['capsa'] / rate['podman']:.2f}**" if len(rate) == 2 else "n/a"
    report(
        f"attach throughput, {args.runs} interleaved runs",
        [
            "measure",
            "capsa median wall = MB/s",
            "podman median wall = MB/s",
            "throughput ratio capsa/podman",
        ],
        [[f"`docker run -i IMG cat`, {args.megabytes} MB in and out", *cells, ratio]],
    )


if __name__ == "__main__":
    main()
