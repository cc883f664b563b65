"""Terminals: the pty master through --console-socket, and `run`/`exec -t` on a pty."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers.bundle import BundleFactory, sh
from tests.helpers.runtime import Runtime
from tests.helpers.terminal import (
    MasterReader,
    PtyProcess,
    adopting_orphans,
    console_socket,
    reap,
    receive_pty_master,
    set_winsize,
)

from capsa.oci.runtime_spec import Spec

pytestmark = pytest.mark.root

IDLE = 'trap "exit 0" TERM; while :; do sleep 0.05; done'


def _terminal(spec: Spec) -> None:
    assert spec.process is not None
    spec.process.terminal = True


class Adopted:
    """Container inits re-parented to the test (see adopting_orphans), reaped at the end."""

    def __init__(self) -> None:
        self.pids: list[int] = []

    def add(self, pid: int) -> int:
        self.pids.append(pid)
        return pid


@pytest.fixture
def adopted(runtime: Runtime) -> Iterator[Adopted]:
    found = Adopted()
    yield found
    problems = runtime.cleanup()  # kills what still runs: then every adopted pid is reapable
    for pid in found.pids:
        try:
            reap(pid, timeout=5)
        except ChildProcessError:
            pass  # already reaped by the test
    assert not problems, problems


@pytest.fixture
def pty_processes() -> Iterator[list[PtyProcess]]:
    procs: list[PtyProcess] = []
    yield procs
    for proc in procs:
        proc.close()


def test_console_socket_receives_the_master(
    runtime: Runtime, bundle: BundleFactory, adopted: Adopted, tmp_path: Path
) -> None:
    b = bundle(["sh"], edit=_terminal)
    cid = runtime.new_id()
    pid_file = tmp_path / "init.pid"
    with console_socket(tmp_path / "console.sock") as server, adopting_orphans():
        runtime.run(
            "create",
            "--console-socket",
            str(server.getsockname()),
            "--pid-file",
            str(pid_file),
            "--bundle",
            str(b),
            cid,
        )
        master = receive_pty_master(server)
    pid = adopted.add(int(pid_file.read_text()))
    assert os.isatty(master)
    term = MasterReader(master)
    try:
        runtime.run("start", cid)
        term.write("tty; echo hi-$((1+1)); exit 3\n")
        out = term.read_to_eof()
    finally:
        os.close(master)
    assert "\r\nhi-2\r\n" in out  # the output; the echoed input reads hi-$((1+1))
    assert "/dev/pts/0\r\n" in out
    assert reap(pid) == 3
    runtime.wait_status(cid, "stopped")


def test_console_socket_needs_a_listener(
    runtime: Runtime, bundle: BundleFactory, tmp_path: Path
) -> None:
    cid = runtime.new_id()
    missing = tmp_path / "nobody-listens.sock"
    proc = runtime.run(
        "create",
        "--console-socket",
        str(missing),
        "--bundle",
        str(bundle(["sh"], edit=_terminal)),
        cid,
        check=False,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip()
    assert runtime.status(cid) is None


def test_run_on_a_pty_proxies_the_terminal(
    runtime: Runtime, bundle: BundleFactory, pty_processes: list[PtyProcess]
) -> None:
    script = 'stty size; tty; while read l; do [ "$l" = q ] && exit 5; stty size; done'
    b = bundle(sh(script), edit=_terminal)
    cid = runtime.new_id()
    runtime.created.append(cid)  # for the fixture's cleanup
    proc = PtyProcess(runtime.command("run", "--bundle", str(b), cid), rows=33, cols=101)
    pty_processes.append(proc)
    proc.term.read_until("33 101\r\n", timeout=5)
    proc.term.read_until("/dev/pts/0\r\n")
    # the outer terminal changes size: the runtime gets SIGWINCH and resizes the inner one
    set_winsize(proc.term.fd, 40, 120)
    for _ in range(100):  # each empty line makes the shell print its size again
        proc.term.write("\n")
        if proc.term.seen("40 120", timeout=0.1):
            break
    assert "40 120\r\n" in proc.term.text
    proc.term.write("q\n")
    assert proc.wait() == 5
    assert runtime.status(cid) is None  # run deletes what it created


def test_exec_tty_from_a_pty(
    runtime: Runtime,
    bundle: BundleFactory,
    pty_processes: list[PtyProcess],
    request: pytest.FixtureRequest,
) -> None:
    if runtime.is_runc:  # it copies the window size only once the process runs: a race
        request.node.add_marker(pytest.mark.xfail(reason="runc sizes the pty late"))
    cid = runtime.new_id()
    runtime.run("run", "-d", "--bundle", str(bundle(sh(IDLE))), cid)
    argv = runtime.command("exec", "-t", cid, "sh", "-c", "tty; stty size; read l; exit 4")
    proc = PtyProcess(argv, rows=21, cols=77)
    pty_processes.append(proc)
    proc.term.read_until("21 77\r\n", timeout=5)
    assert "/dev/pts/" in proc.term.text
    proc.term.write("done\n")
    assert proc.wait() == 4
    assert runtime.status(cid) == "running"
