"""Runs a container's healthcheck from its monitor loop, without threads.

A probe is ``<runtime> exec`` of the test command as a child process whose output
goes to a pipe; the loop tells this runner when the pipe is readable, when a child
was reaped, and when time passes. Results go to ``health.json`` in the container's
run directory (``ps`` and ``inspect`` read it) and drive ``--health-on-failure``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from capsa.engine.containers import health

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.engine.monitor.args import LoopArgs


def runtime_command(runtime: str, runtime_root: str) -> list[str]:
    """The command line of ``runtime`` ("": capsa's own) with its state under
    ``runtime_root``."""
    if runtime and runtime not in ("capsa", "capsa-runtime"):
        return [runtime, "--root", os.path.join(runtime_root, runtime)]
    exe = os.path.join(os.path.dirname(sys.executable), "capsa-runtime")
    base = [exe] if os.access(exe, os.X_OK) else [sys.executable, "-m", "capsa.runtime.cli"]
    return [*base, "--root", runtime_root]


class HealthRunner:
    def __init__(self, args: LoopArgs, init_pid: int) -> None:
        spec = args.health
        assert spec is not None, "a loop without a healthcheck has no runner"
        self.cfg = health.HealthConfig(
            test=list(spec.test),
            interval=spec.interval,
            timeout=spec.timeout,
            start_period=spec.start_period,
            start_interval=spec.start_interval,
            retries=spec.retries,
        )
        self.on_failure = spec.on_failure
        self.state = health.HealthState(self.cfg, args.started or time.time())
        container = args.monitor.id
        runtime = runtime_command(args.runtime_name, args.runtime_root)
        self.argv = [*runtime, "exec", container, *(health.command(self.cfg) or [])]
        runroot = args.monitor.roots.runroot
        self.path = os.path.join(runroot, "containers", container, "health.json")
        self.init_pid = init_pid
        self._resume()
        due = args.health_due  # a host waking up, or taking over: the same time
        self.due = due if due is not None else self.state.next_due(time.time())
        self.probe: dict[str, Any] | None = None
        self.restart = False  # --health-on-failure restart (or stop) took effect
        self.stop = False
        self._save()

    def _resume(self) -> None:
        """A monitor handing over to a fresh process keeps the health it had."""
        try:
            with open(self.path) as f:
                saved = json.load(f)
        except (OSError, ValueError):
            return
        self.state = health.HealthState.from_json(saved, self.cfg, self.state.started_at)

    def _save(self) -> None:
        from capsa.linux.atomicfile import write_atomic

        write_atomic(self.path, json.dumps(self.state.to_json()).encode(), 0o644, durable=False)

    def next_due(self) -> float:
        if self.probe is not None:
            return min(self.probe["deadline"], time.time() + 0.5)
        return self.due

    def fds(self) -> list[int]:
        return [self.probe["fd"]] if self.probe is not None and self.probe["fd"] >= 0 else []

    def readable(self, fd: int) -> None:
        if self.probe is None or fd != self.probe["fd"]:
            return
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if data:
            if len(self.probe["out"]) < 8192:
                self.probe["out"] += data
        else:
            os.close(fd)
            self.probe["fd"] = -1

    def tick(self, now: float) -> None:
        if self.probe is None and now >= self.due:
            self._start(now)
        elif self.probe is not None and now >= self.probe["deadline"]:
            try:
                os.kill(self.probe["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.probe["timed_out"] = True

    def _start(self, now: float) -> None:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.dup2(w, 1)
                os.dup2(w, 2)
                devnull = os.open(os.devnull, os.O_RDONLY)
                os.dup2(devnull, 0)
                os.execv(self.argv[0], self.argv)
            finally:
                os._exit(127)
        os.close(w)
        os.set_blocking(r, False)
        self.probe = {
            "pid": pid,
            "fd": r,
            "out": b"",
            "start": now,
            "deadline": now + self.cfg.timeout,
            "timed_out": False,
        }

    def reaped(self, pid: int, status: int) -> None:
        probe = self.probe
        if probe is None or pid != probe["pid"]:
            return
        if probe["fd"] >= 0:
            self.readable(probe["fd"])
            if probe["fd"] >= 0:
                os.close(probe["fd"])
        end = time.time()
        if probe["timed_out"]:
            result = health.timeout_result(probe["start"], end, self.cfg.timeout)
        else:
            code = os.waitstatus_to_exitcode(status)
            result = health.probe_result(
                probe["start"], end, code if code >= 0 else 1, probe["out"]
            )
        self.probe = None
        changed = self.state.record(result, probe["start"])
        self.due = self.state.next_due(end)
        self._save()
        if changed == health.UNHEALTHY and self.on_failure != "none":
            self._act()

    def _act(self) -> None:
        if self.on_failure == "restart":
            self.restart = True
        elif self.on_failure == "stop":
            self.stop = True
        try:
            os.kill(self.init_pid, signal.SIGKILL if self.on_failure != "stop" else signal.SIGTERM)
        except ProcessLookupError:
            pass
