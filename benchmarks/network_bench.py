"""Networking against podman (netavark): container start on the default bridge, and
throughput through a published port.

Usage (root): .venv/bin/python benchmarks/network_bench.py [--runs 10] [--transfers 3]
              [--megabytes 200] [--json FILE]

1. `capsa run --rm IMG true` on capsa's default bridge against `podman run --rm IMG true`
   on podman's default bridge, interleaved, after two warm-ups each: medians and ratio
   (target <= 0.5).
2. A busybox server in a container with a published port on each engine (`-p H:5001`,
   `-p H:5002`): a Python client on the host, over 127.0.0.1, pushes MEGABYTES into
   `nc -l -p 5001 > /dev/null` and pulls a MEGABYTES file that `httpd` serves from a
   tmpfs. Transfers alternate between the engines; medians in MB/s and the ratio
   capsa/podman (target >= 0.9).

The same busybox image is imported into a private capsa root and a private podman store
(benchmarks/common.py). Podman gets a private containers.conf (the machine's, plus a
private network config dir and a default subnet picked away from every host route), so
its default bridge never collides with capsa's 10.88.0.0/16 and nothing of the host's
podman configuration changes.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import IMAGE, Peers, median_ms, report, timed

MB = 1_000_000
CHUNK = 1 << 20
PUSH_PORT, PULL_PORT = 5001, 5002
SERVER = (
    "dd if=/dev/zero of=/data/blob bs=1M count={mb} 2>/dev/null"
    " && httpd -p {pull} -h /data"
    " && while :; do nc -l -p {push} > /dev/null; done"
)


# -- podman's private configuration ---------------------------------------------------------


def host_routes() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(
        ["ip", "-j", "-4", "route", "show", "table", "all"], capture_output=True, text=True
    ).stdout
    dsts = [r.get("dst", "") for r in json.loads(out or "[]")]
    return [ipaddress.IPv4Network(d, strict=False) for d in dsts if d and d != "default"]


def free_subnet() -> str:
    busy = [*host_routes(), ipaddress.IPv4Network("10.88.0.0/16")]
    for third in range(256):
        for second in range(200, 251):
            net = ipaddress.IPv4Network(f"10.{second}.{third}.0/24")
            if not any(net.overlaps(b) for b in busy):
                return str(net)
    raise SystemExit("no free subnet for podman's default network")


def private_podman_conf(base: Path) -> Path:
    """The machine's containers.conf with a private network dir and default subnet."""
    netdir = base / "podman-networks"
    netdir.mkdir()
    lines = [
        f'network_config_dir = "{netdir}"',
        f'default_subnet = "{free_subnet()}"',
        'network_backend = "netavark"',
    ]
    text = Path("/etc/containers/containers.conf").read_text()
    kept = [ln for ln in text.splitlines() if not ln.strip().startswith("network_backend")]
    if "[network]" in kept:
        at = kept.index("[network]") + 1
        kept[at:at] = lines
    else:
        kept += ["[network]", *lines]
    conf = base / "containers.conf"
    conf.write_text("\n".join(kept) + "\n")
    return conf


# -- 1. run --rm true -----------------------------------------------------------------------


def bench_run(peers: Peers, runs: int) -> dict[str, float]:
    capsa, podman = [], []
    for i in range(runs + 2):
        c = timed(lambda: peers.capsa(["run", "--rm", IMAGE, "true"]))
        p = timed(lambda: peers.pod(["run", "--rm", f"localhost/{IMAGE}", "true"]))
        if i >= 2:
            capsa.append(c)
            podman.append(p)
    out = {"capsa_median_ms": round(median_ms(capsa), 1)}
    out["podman_median_ms"] = round(median_ms(podman), 1)
    out["ratio"] = round(out["capsa_median_ms"] / out["podman_median_ms"], 3)
    return out


# -- 2. throughput through a published port -------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        port: int = s.getsockname()[1]
        return port


def connect(port: int, timeout: float = 30) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=30)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def push(port: int, size: int) -> float:
    """Send ``size`` bytes; done when the server closed (it read everything). MB/s."""
    buf = b"\0" * CHUNK
    with connect(port) as s:
        began = time.perf_counter()
        left = size
        while left:
            left -= s.send(memoryview(buf)[: min(left, CHUNK)])
        s.shutdown(socket.SHUT_WR)
        while s.recv(CHUNK):
            pass
        return size / MB / (time.perf_counter() - began)


def pull(port: int, size: int) -> float:
    """GET the blob over HTTP/1.0 and read it to the end. MB/s."""
    with connect(port) as s:
        began = time.perf_counter()
        s.sendall(b"GET /blob HTTP/1.0\r\nHost: bench\r\n\r\n")
        got = 0
        buf = bytearray(CHUNK)
        while n := s.recv_into(buf):
            got += n
        elapsed = time.perf_counter() - began
    if got < size:
        raise RuntimeError(f"short read: {got} of {size} bytes")
    return got / MB / elapsed


def start_servers(peers: Peers, mb: int) -> tuple[dict[str, int], dict[str, int]]:
    """One server container per engine; their host ports for push and pull."""
    cmd = ["sh", "-c", SERVER.format(mb=mb, push=PUSH_PORT, pull=PULL_PORT)]
    ports = {}
    for engine in ("capsa", "podman"):
        hp, hl = free_port(), free_port()
        flags = ["-d", "--name", f"netbench-{engine}", "--tmpfs", "/data"]
        flags += ["-p", f"{hp}:{PUSH_PORT}", "-p", f"{hl}:{PULL_PORT}"]
        if engine == "capsa":
            peers.capsa(["run", *flags, IMAGE, *cmd])
        else:
            peers.pod(["run", *flags, f"localhost/{IMAGE}", *cmd])
        ports[engine] = (hp, hl)
    pushes = {e: p[0] for e, p in ports.items()}
    pulls = {e: p[1] for e, p in ports.items()}
    return pushes, pulls


def bench_throughput(peers: Peers, transfers: int, mb: int) -> dict[str, object]:
    pushes, pulls = start_servers(peers, mb)
    size = mb * CHUNK  # busybox dd's bs=1M is a MiB
    rates: dict[str, dict[str, list[float]]] = {
        d: {"capsa": [], "podman": []} for d in ("push", "pull")
    }
    measure: dict[str, Callable[[int, int], float]] = {"push": push, "pull": pull}
    ports = {"push": pushes, "pull": pulls}
    for i in range(transfers + 1):  # the first round warms up
        order = ("capsa", "podman") if i % 2 == 0 else ("podman", "capsa")
        for direction in ("push", "pull"):
            for engine in order:
                rate = measure[direction](ports[direction][engine], size)
                if i:
                    rates[direction][engine].append(rate)
    out: dict[str, object] = {}
    for direction, per in rates.items():
        c, p = statistics.median(per["capsa"]), statistics.median(per["podman"])
        out[direction] = {
            "capsa_MBps": round(c, 1),
            "podman_MBps": round(p, 1),
            "ratio": round(c / p, 3),
            "capsa_all": [round(x, 1) for x in per["capsa"]],
            "podman_all": [round(x, 1) for x in per["podman"]],
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--transfers", type=int, default=3)
    ap.add_argument("--megabytes", type=int, default=200)
    ap.add_argument("--json")
    args = ap.parse_args()
    conf_dir = Path(tempfile.mkdtemp(prefix="capsa-netbench-"))
    os.environ["CONTAINERS_CONF"] = str(private_podman_conf(conf_dir))
    peers = Peers()
    try:
        result: dict[str, object] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        result["run_rm_true"] = {"runs": args.runs, **bench_run(peers, args.runs)}
        result["published_port"] = {
            "megabytes": args.megabytes,
            "transfers": args.transfers,
            **bench_throughput(peers, args.transfers, args.megabytes),
        }
    finally:
        peers.close()
        shutil.rmtree(conf_dir, ignore_errors=True)
    report(result, args.json)


if __name__ == "__main__":
    main()
