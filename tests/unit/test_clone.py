"""clone3 fork: the interpreter survives a refused call and a child forked by it."""

from __future__ import annotations

import errno
import os
import tempfile

import pytest

from capsa.linux.clone import fork_into_cgroup


def test_refused_clone3_raises_and_leaves_the_interpreter_usable() -> None:
    # in a forked child: single threaded, as capsa-runtime is (pytest-xdist is not)
    r, w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - child
        code = 0
        try:
            with tempfile.TemporaryDirectory() as d:
                fd = os.open(d, os.O_PATH | os.O_DIRECTORY)
                try:
                    fork_into_cgroup(fd)  # not a cgroup2 directory
                except OSError as e:
                    os.write(w, str(e.errno).encode())
            # the import lock and the fork hooks were released: a normal fork still works
            pid = os.fork()
            if pid == 0:
                os._exit(7)
            code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        refused = f.read()
    assert os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 7
    assert refused and int(refused) in (errno.EBADF, errno.ENOSYS, errno.EPERM, errno.EINVAL)


def test_a_multi_threaded_process_is_refused() -> None:
    import threading

    stop = threading.Event()
    helper = threading.Thread(target=stop.wait)
    helper.start()
    try:
        with pytest.raises(OSError) as err:
            fork_into_cgroup(0)
    finally:
        stop.set()
        helper.join()
    assert err.value.errno == errno.EAGAIN
