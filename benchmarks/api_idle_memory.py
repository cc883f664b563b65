"""Memory of the idle API service: capsa's against podman's.

Usage (root): .venv/bin/python benchmarks/api_idle_memory.py [--rounds 3] [--settle 5]

Each round starts both services afresh on their private sockets and roots (which starts
first alternates), and reads the memory of each service's process tree (the service
process and its descendants) at three moments:

1. **startup**: ``--settle`` seconds after the service first answered ``/_ping``;
2. **after one request**: ``GET /v1.41/containers/json?all=1`` (the engine's container
   service loaded), then ``--settle`` seconds;
3. **after one run**: what ``docker run --rm --network none IMG true`` asks (create,
   start, wait, remove; no attach), then ``--settle`` seconds. capsa's monitor host
   (started for the container, lingering by default) and podman's conmon are not
   descendants of the service: they are reported apart, as the engine's helpers
   (processes whose command line or open files name the benchmark's private directory).

The measure is **PSS** (``Pss`` of ``/proc/PID/smaps_rollup``: shared pages divided among
the processes sharing them, so a tree's figure does not count the interpreter's or Go
runtime's shared libraries in full); RSS (``VmRSS``) is reported beside it. Medians over
the rounds. Target (issue 13): capsa's idle service <= 1.0x podman's (the startup PSS).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from api_common import IMAGE, ApiPeers, Side, report

STAGES = ("startup", "after one request", "after one run")


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path("/proc", entry, "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree(pid: int) -> list[int]:
    kids = _children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def kib(pid: int) -> tuple[int, int]:
    """(PSS, RSS) in KiB."""
    pss = rss = 0
    for line in Path("/proc", str(pid), "smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            pss = int(line.split()[1])
    for line in Path("/proc", str(pid), "status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return pss, rss


def total(pids: list[int]) -> tuple[float, float, int]:
    pss = rss = n = 0
    for pid in pids:
        try:
            p, r = kib(pid)
        except OSError:
            continue
        pss, rss, n = pss + p, rss + r, n + 1
    return pss / 1024, rss / 1024, n


def helpers(base: str, exclude: set[int], name: str) -> list[int]:
    """The engine's processes outside the service's tree that belong to this benchmark."""
    prefixes = ("capsa-monitor", "capsa") if name == "capsa" else ("/usr/bin/conmon", "conmon")
    marker = f"{base}/pm" if name == "podman" else f"{base}/c"
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in exclude or int(entry) == os.getpid():
            continue
        try:
            cmd = Path("/proc", entry, "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if not cmd.startswith(prefixes):
                continue
            links = []
            for fd in os.listdir(f"/proc/{entry}/fd"):
                try:
                    links.append(os.readlink(f"/proc/{entry}/fd/{fd}"))
                except OSError:
                    pass
        except (OSError, UnicodeDecodeError):
            continue
        if marker in cmd or any(marker in link for link in links):
            out.append(int(entry))
    return out


def measure(peers: ApiPeers, side: Side, stage: str) -> dict[str, float]:
    pids = tree(side.pid)
    pss, rss, n = total(pids)
    hp, hr, hn = total(helpers(str(peers.base), set(pids), side.name))
    return {"pss": pss, "rss": rss, "procs": n, "helper_pss": hp, "helper_rss": hr, "helpers": hn}


def run_once(side: Side) -> None:
    """What ``docker run --rm --network none IMG true`` asks, without the attach: create,
    start, wait, remove."""
    body = {"Image": IMAGE, "Cmd": ["true"], "HostConfig": {"NetworkMode": "none"}}
    made = side.request("POST", "/v1.41/containers/create", body)
    assert made.status == 201, (side.name, made)
    cid = made.json()["Id"]
    for method, path, status in (
        ("POST", f"/containers/{cid}/start", 204),
        ("POST", f"/containers/{cid}/wait", 200),
        ("DELETE", f"/containers/{cid}", 204),
    ):
        reply = side.request(method, "/v1.41" + path)
        assert reply.status == status, (side.name, method, path, reply)


def one_round(peers: ApiPeers, order: list[Side], settle: float) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {s.name: {} for s in order}
    for side in order:
        peers.start_capsa() if side.name == "capsa" else peers.start_podman()
    time.sleep(settle)
    for side in order:
        out[side.name][STAGES[0]] = measure(peers, side, STAGES[0])
    for side in order:
        reply = side.request("GET", "/v1.41/containers/json?all=1")
        assert reply.status == 200, (side.name, reply)
    time.sleep(settle)
    for side in order:
        out[side.name][STAGES[1]] = measure(peers, side, STAGES[1])
    for side in order:
        run_once(side)
    time.sleep(settle)
    for side in order:
        out[side.name][STAGES[2]] = measure(peers, side, STAGES[2])
    peers.stop_capsa()
    peers.pm.stop_service()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--settle", type=float, default=5.0)
    args = ap.parse_args()
    peers = ApiPeers()
    rounds = []
    try:
        for r in range(args.rounds):
            order = list(peers.sides) if r % 2 == 0 else list(peers.sides)[::-1]
            rounds.append(one_round(peers, order, args.settle))
    finally:
        peers.close()

    def med(name: str, stage: str, key: str) -> float:
        return statistics.median(r[name][stage][key] for r in rounds)

    rows = []
    for stage in STAGES:
        c, p = med("capsa", stage, "pss"), med("podman", stage, "pss")
        rows.append(
            [
                stage,
                f"{c:.1f} MiB (RSS {med('capsa', stage, 'rss'):.1f}, "
                f"{med('capsa', stage, 'procs'):.0f} proc)",
                f"{p:.1f} MiB (RSS {med('podman', stage, 'rss'):.1f}, "
                f"{med('podman', stage, 'procs'):.0f} proc)",
                f"**{c / p:.2f}**",
                f"{med('capsa', stage, 'helper_pss'):.1f} / "
                f"{med('podman', stage, 'helper_pss'):.1f} MiB "
                f"({med('capsa', stage, 'helpers'):.0f} / "
                f"{med('podman', stage, 'helpers'):.0f} proc)",
            ]
        )
    each = "; ".join(
        f"round {i}: "
        + ", ".join(f"{s} {r['capsa'][s]['pss']:.1f}/{r['podman'][s]['pss']:.1f}" for s in STAGES)
        for i, r in enumerate(rounds)
    )
    report(
        f"idle API service memory, PSS of the service's process tree, medians of {args.rounds}"
        " rounds",
        [
            "moment",
            "capsa service PSS",
            "podman service PSS",
            "ratio (PSS)",
            "engine helpers outside the tree, PSS capsa / podman",
        ],
        rows,
        f"each round, PSS MiB capsa/podman: {each}",
    )


if __name__ == "__main__":
    main()
