"""The monitor host at rest: dropping the engine's modules, sleeping, waking up.

Why: a host that supervises idle containers does nothing most of the time, yet as a
Python process with the engine imported (for warm starts) it costs about 25 MiB, and
even a bare interpreter about 5. So it rests in two steps, both by ``execve`` (same pid,
same children, every fd it marks inheritable kept) after writing its state to
``<runroot>/monitor-host.state``:

- *shed*: a few seconds after the last command or monitor (``WARM_LINGER``), a host
  whose containers still talk execs a lean interpreter of itself, which imports only
  the supervision loop (the next command imports the rest again);
- *sleep*: once nothing has happened for ``SLEEP_AFTER`` seconds, it execs
  ``capsa.linux.sleeper``, a few hundred bytes of machine code that ``ppoll`` the same
  fds (the listening socket, every container's output, attach socket and shim pipe) and
  exec the lean interpreter on the first event, or when a healthcheck is due.

Either way the state holds what the interpreter knew: the loops' arguments (with their
fd numbers, valid again after the exec), the open-files limit monitors get, the
networks to tear down at the end, the exit statuses reaped and not yet claimed. Only a
calm host rests: no request, command or monitor in flight, no client attached, no probe
running, no exit being drained (``calm``); a json-file partial line is written out as it
is at a hand-over. Where the machine code cannot run the host never sleeps.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.engine.monitor.host import Host

STATE_NAME = "monitor-host.state"
_VERSION = 1


WARM_LINGER = 5.0  # seconds the engine's modules stay imported after the last command
SLEEP_AFTER = 2.0  # seconds without anything to do before the host goes to sleep


def calm(host: Host, now: float) -> bool:
    """Nothing in flight that only the host's interpreter holds: no request, monitor,
    command, client, probe or exit being drained, and no command for a while."""
    if host.requests or host.workers or host.channels or host.commands:
        return False
    return now >= host.warm_until and all(loop.portable() for loop in host.loops.values())


def rest_in(host: Host) -> float | None:
    """Seconds until the host may rest (None: no rest to wait for)."""
    if not host.loops:
        return None
    due = max(host.warm_until, host.last_activity + SLEEP_AFTER)
    wait = due - time.monotonic()
    return wait if wait > 0 else None


def rest(host: Host) -> None:
    """Sleep, or at least drop the engine's modules, when calm: execs, so this returns
    only when the host did neither. A host with no container lingers, then exits."""
    now = time.monotonic()
    if not host.loops or not calm(host, now):
        return
    quiet = now - host.last_activity >= SLEEP_AFTER
    if quiet and all(loop.sleepable() for loop in host.loops.values()):
        sleep(host)
    elif host.fat:
        shed(host)


def wake_in(host: Host) -> float | None:
    """Seconds until a loop needs the host without any fd saying so (a healthcheck)."""
    dues = [loop.health.next_due() for loop in host.loops.values() if loop.health]
    return max(0.0, min(dues) - time.time()) if dues else None


def boot_argv(executable: str, state_path: str) -> list[str]:
    """The command line of a lean host that reads its state from ``state_path``."""
    import capsa

    package = os.path.dirname(os.path.dirname(os.path.abspath(capsa.__file__)))
    code = (
        f"import sys; sys.path.insert(0, {package!r}); "
        "from capsa.engine.monitor.sleep import wake; wake(sys.argv[1])"
    )
    return [executable, "-I", "-S", "-c", code, state_path]


def freeze(host: Host) -> tuple[dict[str, Any], list[int], list[int]]:
    """The host's state, the fds it names (made inheritable) and those that should wake
    a sleeping host."""
    from capsa.engine.monitor.args import to_wire

    now = time.monotonic()
    loops = [to_wire(loop.snapshot()) for loop in host.loops.values()]
    kept = [host.listener.fileno(), host.alive]
    wake = [host.listener.fileno()]
    for loop in host.loops.values():
        kept += loop.handoff_fds()
        wake += loop.sleep_fds()
    for fd in kept:
        os.set_inheritable(fd, True)
    state = {
        "version": _VERSION,
        "runroot": host.runroot,
        "linger": host.linger,
        "listener": host.listener.fileno(),
        "alive": host.alive,
        "nofile": list(host.nofile) if host.nofile else None,
        "executable": host.executable,
        "sys_path": host.sys_path,
        "networked": [to_wire(roots) for roots in host.networked],
        "orphans": {str(pid): [status, now - when] for pid, (status, when) in host.orphans.items()},
        "shims": sorted(host.shims),
        "idle_for": now - host.last_activity,
        "loops": loops,
    }
    return state, kept, [fd for fd in wake if fd >= 0]


def _unfreeze(kept: list[int]) -> None:
    for fd in kept:
        os.set_inheritable(fd, False)


def _write(host: Host, state: dict[str, Any]) -> str:
    from capsa.linux.atomicfile import write_atomic

    path = os.path.join(host.runroot, STATE_NAME)
    write_atomic(path, json.dumps(state).encode(), 0o600, durable=False)
    return path


def _before_exec(host: Host) -> None:
    """What must not outlive this interpreter (the waker's pipe and the rest of its fds
    are close-on-exec: they go by themselves)."""
    if host.pins is not None:  # the database keeper ends with the warm modules
        host.pins.close()
        host.pins = None
    sys.stdout.flush()
    sys.stderr.flush()


def sleep(host: Host) -> None:
    """Exec the sleeper; returns (still awake) if it cannot."""
    from capsa.linux import shim, sleeper

    if not sleeper.supported():
        if host.fat:
            shed(host)
        return
    state, kept, wake = freeze(host)
    path = _write(host, state)
    argv = [a.encode() for a in boot_argv(host.executable, path)]
    env = [os.fsencode(k) + b"=" + os.fsencode(v) for k, v in os.environ.items()]
    program = sleeper.program(wake, wake_in(host), os.fsencode(host.executable), argv, env)
    _before_exec(host)
    import signal

    handler = signal.signal(signal.SIGTERM, signal.SIG_IGN)  # asleep too (kept by exec)
    rename_socket(host.runroot, asleep=True)
    try:
        shim.exec_program(program, [f"capsa-monitor host {host.runroot}"])
    except OSError as e:
        print(f"monitor host: cannot sleep: {e!r}", file=sys.stderr, flush=True)
    rename_socket(host.runroot, asleep=False)
    signal.signal(signal.SIGTERM, handler)
    _unfreeze(kept)
    host.last_activity = time.monotonic()  # not again at once


def rename_socket(runroot: str, asleep: bool) -> None:
    """A sleeping host's socket goes by another name (``warm_wire.ASLEEP``): commands
    start cold at once instead of waiting for it to wake up, and wake it for the next
    ones; monitors and ``run`` find it under either name. Under the start lock, so that
    no client takes the host for gone and starts another meanwhile."""
    from capsa.engine.monitor.client import start_lock
    from capsa.engine.monitor.warm_wire import ASLEEP, SOCKET_NAME

    awake = os.path.join(runroot, SOCKET_NAME)
    names = (awake, awake + ASLEEP) if asleep else (awake + ASLEEP, awake)
    with start_lock(runroot):
        try:
            os.rename(*names)
        except FileNotFoundError:
            pass


def shed(host: Host) -> None:
    """Exec a lean interpreter of this host (the engine's modules dropped); returns if it
    cannot (still fat)."""
    state, kept, _ = freeze(host)
    path = _write(host, state)
    argv = boot_argv(host.executable, path)
    _before_exec(host)
    try:
        os.execv(argv[0], argv)
    except OSError as e:
        print(f"monitor host: cannot re-execute: {e!r}", file=sys.stderr, flush=True)
    _unfreeze(kept)
    host.warm_until = time.monotonic() + 60.0  # not again at once


def wake(state_path: str) -> None:
    """The lean interpreter's entry point: be the host described in ``state_path``."""
    code = 1
    try:
        with open(state_path, "rb") as f:
            state = json.loads(f.read())
        sys.path[:] = [*state["sys_path"], *(p for p in sys.path if p not in state["sys_path"])]
        _with_site_packages()
        thaw(state).serve()
        code = 0
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _with_site_packages() -> None:
    """The environment's packages on the path (setproctitle, and what monitors and
    commands import), whether or not the process that made the host had them: the host
    runs without ``site`` (``-S``), and so may the ``capsa`` command (its launcher adds
    them only for commands that need them). Without ``sitecustomize``: a host needs
    none of it."""
    import site

    known = site.venv(site.removeduppaths())  # a virtual environment's, if it is one
    site.addsitepackages(known or set())


def thaw(state: dict[str, Any]) -> Host:
    """The host a state describes (its fds are ours again: not inherited further)."""
    from capsa.engine.monitor.args import LoopArgs, Roots, from_wire
    from capsa.engine.monitor.host import Host
    from capsa.engine.monitor.loop import Loop

    if state.get("version") != _VERSION:
        raise ValueError(f"unknown monitor host state version {state.get('version')}")
    listener = socket.socket(fileno=int(state["listener"]))
    host = Host(listener, state["runroot"], float(state["linger"]))
    host.resumed, host.fat = not state.get("fresh"), False
    host.alive = int(state["alive"])
    nofile = state.get("nofile")
    host.nofile = (int(nofile[0]), int(nofile[1])) if nofile else None
    host.executable = state["executable"]
    host.sys_path = list(state["sys_path"])
    now = time.monotonic()
    host.last_activity = now - float(state.get("idle_for") or 0.0)
    for roots in state.get("networked") or []:
        host.networked.add(from_wire(Roots, roots, f"{STATE_NAME}: networked"))
    for pid, (status, age) in (state.get("orphans") or {}).items():
        host.orphans[int(pid)] = (int(status), now - float(age))
    host.shims = {int(pid) for pid in state.get("shims") or []}
    kept = [listener.fileno(), host.alive]
    for args in state["loops"]:
        loop = Loop(from_wire(LoopArgs, args, f"{STATE_NAME}: loops"))
        host.loops[loop.pid] = loop
        kept += loop.handoff_fds()
    _unfreeze(kept)
    return host


def forget_state(runroot: str) -> None:
    """The host is done: no state to wake up with."""
    try:
        os.unlink(os.path.join(runroot, STATE_NAME))
    except FileNotFoundError:
        pass


def fresh_state(
    runroot: str, linger: float, listener: int, executable: str, sys_path: list[str]
) -> dict[str, Any]:
    """The state of a host started from scratch as a lean interpreter (it adopts the run
    root's shims as it starts)."""
    return {
        "version": _VERSION,
        "runroot": runroot,
        "linger": linger,
        "listener": listener,
        "alive": -1,
        "nofile": None,
        "executable": executable,
        "sys_path": sys_path,
        "fresh": True,
        "loops": [],
    }
