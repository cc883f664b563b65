"""The container shim and the sleeping host (``capsa.linux.shim``, ``capsa.linux.sleeper``),
run on the host as the plain programs they are, and the engine's side of a shim
(``capsa.engine.monitor.shim``): its record, adoption by a new host, its release."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from capsa.engine.monitor.args import LoopArgs, MonitorArgs, Roots
from capsa.linux import asm, shim, sleeper

pytestmark = pytest.mark.skipif(
    os.uname().machine != "x86_64", reason="the shim and the sleeper are x86-64 machine code"
)


def _wait_exit(pid: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError(f"{pid} still runs after {timeout}s")


def _read(fd: int, timeout: float = 10.0) -> bytes:
    import select

    ready, _, _ = select.select([fd], [], [], timeout)
    assert ready, "nothing to read in time"
    return os.read(fd, 4096)


class Shimmed:
    """A child that forks an "init" (which waits for ``go``, then exits with ``code``)
    and another short-lived child, then becomes a shim; the status file and the
    notification pipe's read end here."""

    def __init__(self, tmp: Path, code: int, python: bool = False, init_is_child: bool = True):
        self.status_path = tmp / "status"
        self.status = os.open(self.status_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self.notify_r, notify_w = os.pipe()
        go_r, self.go = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            self._child(code, go_r, notify_w, python, init_is_child)
        for fd in (notify_w, go_r):
            os.close(fd)

    def _child(self, code: int, go: int, notify_w: int, python: bool, init_is_child: bool) -> None:
        try:
            init = os.fork()
            if init == 0:
                os.read(go, 1)
                os._exit(code)
            if os.fork() == 0:
                os._exit(9)  # another child: reaped and ignored
            if not init_is_child:
                init = 1
            for fd in (self.status, notify_w):
                os.set_inheritable(fd, True)
            if python:
                argv = shim.python_shim_argv("capsa-monitor shim t", init, self.status, notify_w)
                os.execv(argv[0], argv)
            shim.exec_program(shim.program(init, self.status, notify_w), ["capsa-monitor shim t"])
        finally:
            os._exit(127)

    def release(self) -> int:
        os.write(self.go, b"x")
        return self.pid

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _wait_exit(self.pid)
        for fd in (self.status, self.notify_r, self.go):
            os.close(fd)


@pytest.fixture(params=["machine code", "python"])
def shimmed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shimmed]:
    made = Shimmed(tmp_path, 3, python=request.param == "python")
    yield made
    made.close()


def test_the_shim_reports_the_inits_wait_status_and_holds_on(shimmed: Shimmed) -> None:
    time.sleep(0.2)  # the other child has come and gone meanwhile
    cmdline = Path(f"/proc/{shimmed.pid}/cmdline").read_bytes()
    assert cmdline.endswith(b"capsa-monitor shim t\0")  # the python one: after its code
    assert os.pread(shimmed.status, 4, 0) == b"", "a status before the init exited"
    shimmed.release()
    word = _read(shimmed.notify_r)
    assert shim.read_status(word) == 3 << 8
    assert shim.read_status(os.pread(shimmed.status, 4, 0)) == 3 << 8
    time.sleep(0.2)
    assert os.waitpid(shimmed.pid, os.WNOHANG) == (0, 0), "the shim did not hold on"


def test_a_shim_whose_init_is_not_its_child_says_it_cannot_know(tmp_path: Path) -> None:
    made = Shimmed(tmp_path, 3, init_is_child=False)
    try:
        made.release()
        assert shim.read_status(_read(made.notify_r)) is None
    finally:
        made.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as another user")
def test_the_shim_is_not_dumpable(tmp_path: Path) -> None:
    """With ``--pid host`` a container sees the shim: a process of the same user without
    CAP_SYS_PTRACE must not open its fds through /proc."""
    nobody = 65534
    os.chmod(tmp_path, 0o777)
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(nobody)
            os.setuid(nobody)
            r, w = os.pipe()
            for fd in (r, w):  # a shim holds both ends: no EPIPE
                os.set_inheritable(fd, True)
            shim.exec_program(shim.program(os.getpid() + 1000000, w, w), ["capsa-monitor shim t"])
        finally:
            os._exit(127)
    try:
        time.sleep(0.3)
        probe = os.fork()
        if probe == 0:
            code = 3
            try:
                os.setgid(nobody)
                os.setuid(nobody)
                os.listdir(f"/proc/{pid}/fd")
                code = 0
            except PermissionError:
                code = 1
            finally:
                os._exit(code)
        assert os.waitstatus_to_exitcode(_wait_exit(probe)) == 1, "its fds are open to see"
    finally:
        os.kill(pid, signal.SIGKILL)
        _wait_exit(pid)


def test_the_shim_is_a_page(tmp_path: Path) -> None:
    code = shim.program(12345, 3, 4)
    assert len(code) < 400 and code.startswith(b"\x7fELF")


# -- the sleeper -----------------------------------------------------------------------------


def _sleeper(fds: list[int], timeout: float | None, script: str) -> tuple[int, int]:
    """A child asleep on ``fds``; on waking it runs ``sh -c script`` with FOO=bar and its
    stdout on the returned pipe."""
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(out_w, 1)
            for fd in fds:
                os.set_inheritable(fd, True)
            argv = [b"sh", b"-c", script.encode()]
            program = sleeper.program(fds, timeout, b"/bin/sh", argv, [b"FOO=bar"])
            shim.exec_program(program, ["capsa-monitor host test"])
        finally:
            os._exit(127)
    os.close(out_w)
    return pid, out_r


def test_the_sleeper_wakes_into_its_program_when_an_fd_is_readable() -> None:
    r, w = os.pipe()
    quiet_r, quiet_w = os.pipe()
    pid, out = _sleeper([quiet_r, r], None, f'echo "awake $FOO $(head -c 5 /dev/fd/{r})"')
    try:
        time.sleep(0.3)
        os.kill(pid, signal.SIGSTOP)  # stopping and continuing it is no event
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.2)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert cmdline == b"capsa-monitor host test\0", "it woke up without an event"
        os.write(w, b"hello world")
        assert _read(out) == b"awake bar hello\n"
        assert os.waitstatus_to_exitcode(_wait_exit(pid)) == 0
    finally:
        for fd in (r, w, quiet_r, quiet_w, out):
            os.close(fd)


def test_the_sleeper_wakes_when_an_fd_hangs_up() -> None:
    r, w = os.pipe()
    pid, out = _sleeper([r], None, "echo hung up")
    try:
        time.sleep(0.2)
        os.close(w)
        assert _read(out) == b"hung up\n"
        _wait_exit(pid)
    finally:
        os.close(r)
        os.close(out)


def test_the_sleeper_wakes_at_its_timeout() -> None:
    r, w = os.pipe()
    began = time.monotonic()
    pid, out = _sleeper([r], 0.4, "echo timed out")
    try:
        assert _read(out) == b"timed out\n"
        assert time.monotonic() - began >= 0.35
        _wait_exit(pid)
    finally:
        for fd in (r, w, out):
            os.close(fd)


def test_the_sleeper_exits_127_if_it_cannot_exec() -> None:
    pid = os.fork()
    if pid == 0:
        try:
            program = sleeper.program([], 0.0, b"/nonexistent", [b"x"], [])
            shim.exec_program(program, ["capsa-monitor host test"])
        finally:
            os._exit(1)
    assert os.waitstatus_to_exitcode(_wait_exit(pid)) == 127


def test_the_linker_refuses_a_label_defined_twice() -> None:
    with pytest.raises(ValueError, match="twice"):
        asm.link([asm.label("a"), asm.label("a")])
    with pytest.raises(ValueError, match="both"):
        asm.link([asm.label("a")], [asm.label("a")])


# -- the engine's side: record, adoption, release --------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="pidfd_getfd on a non-dumpable shim needs root")
def test_a_new_host_adopts_a_shim_and_its_recorder_releases_it(tmp_path: Path) -> None:
    """A shim made as a monitor makes it: another process copies its fds (the output
    pipe reads the same data), learns its exit, and its recorder's release kills it."""
    from capsa.engine.monitor import shim as monitor_shim

    run = tmp_path / "run" / "containers" / "c1"
    run.mkdir(parents=True)
    out_r, out_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            init = os.fork()
            if init == 0:
                os.read(go_r, 1)
                os._exit(5)
            fds = monitor_shim.prepare(str(run))
            monitor = MonitorArgs(roots=Roots(root="/r", runroot="/rr"), id="c1", name="c1")
            loop = LoopArgs(monitor=monitor, pid=init, log="/log", runtime_root="/rt", stdout=out_r)
            monitor_shim.write_record(str(run), loop, fds)
            monitor_shim.become(fds, init, "capsa-monitor shim c1", [out_r])
        finally:
            os._exit(1)
    os.close(go_r)
    os.close(out_r)
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}/cmdline").read_bytes() != b"capsa-monitor shim c1\0":
            assert time.monotonic() < deadline, "no shim"
            time.sleep(0.02)
        assert monitor_shim.adopt(str(tmp_path / "run"), {"c1"}) == []
        ((args, status),) = monitor_shim.adopt(str(tmp_path / "run"), set())
        assert args.shim == pid and status is None and args.monitor.id == "c1"
        os.write(out_w, b"output")
        assert os.read(args.stdout, 100) == b"output"
        os.write(go_w, b"x")
        assert shim.read_status(os.read(args.notify, 4)) == 5 << 8
        ((again, status),) = monitor_shim.adopt(str(tmp_path / "run"), set())
        assert status == 5 << 8  # as a host adopting it now would know
        lock = monitor_shim.claim(str(run))
        assert monitor_shim.adopt(str(tmp_path / "run"), set()) == []  # claimed
        monitor_shim.release(str(run), lock, pid, again.shim_start)
        assert os.waitstatus_to_exitcode(_wait_exit(pid)) == -signal.SIGKILL
        assert not (run / monitor_shim.RECORD_FILE).exists()
        for got in (args, again):
            for fd in (got.stdout, got.notify):
                os.close(fd)
    finally:
        for fd in (out_w, go_w):
            os.close(fd)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def test_python_shim_argv_runs_the_same_program() -> None:
    argv = shim.python_shim_argv("t", 1, 2, 3)
    assert argv[0] == sys.executable and argv[-4:] == ["1", "2", "3", "t"]
