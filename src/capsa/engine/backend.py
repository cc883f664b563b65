"""Runtime backends: how the engine drives an OCI runtime.

``CapsaBackend`` calls capsa's own runtime in this process (no interpreter start, no
re-parsing); ``BinaryBackend`` runs any runc-compatible binary (``runc``, ``crun``).
A VM backend will fill the same protocol. The caller (the container's monitor) is a
child subreaper, so the container's init becomes its child and it reaps it.
"""

from __future__ import annotations

import os
import socket

from capsa.errors import InvalidArgument, Unavailable
from capsa.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    from capsa.oci.runtime_spec import Process, Resources
else:
    Protocol = object


@record
class Stdio:
    """fds the container's process gets, or a terminal (the master comes back)."""

    stdin: int = -1
    stdout: int = -1
    stderr: int = -1
    terminal: bool = False


@record
class Created:
    pid: int
    master: int = -1  # the pty master when Stdio.terminal
    warnings: list[str] = None  # type: ignore[assignment]


class RuntimeBackend(Protocol):
    name: str

    def create(self, container_id: str, bundle: str, stdio: Stdio) -> Created: ...
    def start(self, container_id: str) -> None: ...
    def kill(self, container_id: str, sig: int, all_processes: bool = False) -> None: ...
    def delete(self, container_id: str, force: bool = False) -> None: ...
    def pause(self, container_id: str) -> None: ...
    def resume(self, container_id: str) -> None: ...
    def update(self, container_id: str, resources: Resources) -> list[str]: ...
    def stats(self, container_id: str) -> dict[str, Any]: ...
    def pids(self, container_id: str) -> list[int]: ...
    def exec(
        self,
        container_id: str,
        process: Process,
        stdio: Stdio,
        detach: bool,
    ) -> Created: ...


class _Redirect:
    """Temporarily point fds 0-2 of this process at ``stdio`` (the init inherits them)."""

    def __init__(self, stdio: Stdio) -> None:
        self.stdio = stdio
        self.saved: list[tuple[int, int]] = []

    def __enter__(self) -> None:
        for target, fd in ((0, self.stdio.stdin), (1, self.stdio.stdout), (2, self.stdio.stderr)):
            if fd < 0:
                continue
            self.saved.append((target, os.dup(target)))
            os.dup2(fd, target)

    def __exit__(self, *exc: object) -> None:
        for target, saved in self.saved:
            os.dup2(saved, target)
            os.close(saved)


class CapsaBackend:
    """capsa's runtime, called in process."""

    name = "capsa"

    def __init__(self, state_root: str) -> None:
        from capsa.runtime.container import Runtime

        self.runtime = Runtime(state_root)

    def create(self, container_id: str, bundle: str, stdio: Stdio) -> Created:
        from capsa.runtime.create import CreateOptions

        ours = theirs = None
        if stdio.terminal:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            import capsa.runtime.console  # noqa: F401 - the init uses it after pivot_root
        opts = CreateOptions(bundle=bundle, console=theirs)
        try:
            with _Redirect(stdio):
                created = self.runtime.create(container_id, opts)
            master = -1
            if ours is not None:
                from capsa.runtime.console import receive_master

                assert theirs is not None
                theirs.close()
                master = receive_master(ours)
        finally:
            for s in (ours, theirs):
                if s is not None:
                    s.close()
        return Created(pid=created.state.pid, master=master, warnings=created.warnings)

    def start(self, container_id: str) -> None:
        self.runtime.start(container_id)

    def kill(self, container_id: str, sig: int, all_processes: bool = False) -> None:
        self.runtime.kill(container_id, sig, all_processes)

    def delete(self, container_id: str, force: bool = False) -> None:
        from capsa.errors import NotFound

        try:
            self.runtime.delete(container_id, force)
        except NotFound:
            pass

    def pause(self, container_id: str) -> None:
        self.runtime.pause(container_id)

    def resume(self, container_id: str) -> None:
        self.runtime.resume(container_id)

    def update(self, container_id: str, resources: Resources) -> list[str]:
        return self.runtime.update(container_id, resources)

    def stats(self, container_id: str) -> dict[str, Any]:
        return self.runtime.stats(container_id)

    def pids(self, container_id: str) -> list[int]:
        return self.runtime.pids(container_id)

    def exec(
        self,
        container_id: str,
        process: Process,
        stdio: Stdio,
        detach: bool,
    ) -> Created:
        from capsa.runtime.exec import ExecOptions, exec_process

        ours = theirs = None
        if stdio.terminal:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with _Redirect(stdio):
                done = exec_process(
                    self.runtime,
                    container_id,
                    ExecOptions(process=process, detach=detach, console=theirs),
                )
            master = -1
            if ours is not None:
                from capsa.runtime.console import receive_master

                master = receive_master(ours)
        finally:
            for s in (ours, theirs):
                if s is not None:
                    s.close()
        return Created(pid=done.pid, master=master, warnings=done.warnings)


class BinaryBackend:
    """Any OCI runtime with runc's command line, run as a subprocess."""

    def __init__(self, binary: str, state_root: str) -> None:
        import shutil

        path = binary if "/" in binary else shutil.which(binary)
        if not path or not os.access(path, os.X_OK):
            raise InvalidArgument(f"unknown or invalid runtime name: {binary}")
        self.name = os.path.basename(path)
        self.binary = path
        self.root = state_root

    def _run(self, *args: str, stdio: Stdio | None = None, check: bool = True) -> str:
        import subprocess

        kwargs: dict[str, Any] = {"capture_output": stdio is None}
        if stdio is not None:
            kwargs.update(
                stdin=stdio.stdin if stdio.stdin >= 0 else subprocess.DEVNULL,
                stdout=stdio.stdout if stdio.stdout >= 0 else subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        proc = subprocess.run([self.binary, "--root", self.root, *args], check=False, **kwargs)
        if check and proc.returncode != 0:
            err = (proc.stderr or b"").decode(errors="replace").strip().splitlines()
            raise Unavailable(f"{self.name} {args[0]}: {err[-1] if err else 'failed'}")
        return (proc.stdout or b"").decode() if stdio is None else ""

    def _console(self, directory: str) -> tuple[socket.socket, str]:
        path = os.path.join(directory, "console.sock")
        if os.path.exists(path):
            os.unlink(path)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen(1)
        return server, path

    def create(self, container_id: str, bundle: str, stdio: Stdio) -> Created:
        pid_file = os.path.join(bundle, "init.pid")
        args = ["create", "--bundle", bundle, "--pid-file", pid_file]
        server = None
        if stdio.terminal:
            server, path = self._console(bundle)
            args += ["--console-socket", path]
        try:
            self._run(
                *args,
                container_id,
                stdio=Stdio(stdin=stdio.stdin, stdout=stdio.stdout, stderr=stdio.stderr),
            )
            master = -1
            if server is not None:
                conn, _ = server.accept()
                from capsa.runtime.console import receive_master

                master = receive_master(conn)
                conn.close()
        finally:
            if server is not None:
                server.close()
        with open(pid_file) as f:
            return Created(pid=int(f.read().strip()), master=master, warnings=[])

    def start(self, container_id: str) -> None:
        self._run("start", container_id)

    def kill(self, container_id: str, sig: int, all_processes: bool = False) -> None:
        self._run("kill", *(["--all"] if all_processes else []), container_id, str(sig))

    def delete(self, container_id: str, force: bool = False) -> None:
        self._run("delete", *(["--force"] if force else []), container_id, check=False)

    def pause(self, container_id: str) -> None:
        self._run("pause", container_id)

    def resume(self, container_id: str) -> None:
        self._run("resume", container_id)

    def update(self, container_id: str, resources: Resources) -> list[str]:
        import json
        import tempfile

        from capsa.oci.codec import to_dict

        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump(to_dict(resources), f)
            f.flush()
            self._run("update", "--resources", f.name, container_id)
        return []

    def stats(self, container_id: str) -> dict[str, Any]:
        import json

        data: dict[str, Any] = json.loads(self._run("events", "--stats", container_id))
        return data

    def pids(self, container_id: str) -> list[int]:
        import json

        return [int(p) for p in json.loads(self._run("ps", "--format", "json", container_id))]

    def exec(
        self,
        container_id: str,
        process: Process,
        stdio: Stdio,
        detach: bool,
    ) -> Created:
        """``exec --detach``: the process is re-parented to our subreaper; the caller
        waits for it (``detach`` only changes who waits)."""
        import json
        import tempfile

        from capsa.oci.codec import to_dict

        work = tempfile.mkdtemp(prefix="capsa-exec-")
        try:
            proc_file = os.path.join(work, "process.json")
            with open(proc_file, "w") as f:
                json.dump(to_dict(process), f)
            pid_file = os.path.join(work, "pid")
            args = ["exec", "--process", proc_file, "--detach", "--pid-file", pid_file]
            server = None
            if stdio.terminal:
                server, path = self._console(work)
                args += ["--console-socket", path]
            try:
                self._run(*args, container_id, stdio=stdio)
                master = -1
                if server is not None:
                    conn, _ = server.accept()
                    from capsa.runtime.console import receive_master

                    master = receive_master(conn)
                    conn.close()
            finally:
                if server is not None:
                    server.close()
            with open(pid_file) as f:
                return Created(pid=int(f.read().strip()), master=master, warnings=[])
        finally:
            import shutil

            shutil.rmtree(work, ignore_errors=True)


def make_backend(name: str, state_root: str) -> RuntimeBackend:
    if name in ("", "capsa", "capsa-runtime"):
        return CapsaBackend(state_root)
    return BinaryBackend(name, os.path.join(state_root, name.replace("/", "_")))
