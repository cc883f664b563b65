"""A thin wrapper running an OCI runtime CLI (capsa-runtime or runc) with a private root.

Output goes to temporary files, never pipes: a container started by ``create`` or
``run -d`` inherits the runtime's stdout/stderr, and a pipe would then stay open
until the container exits.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

_CREATING_VERBS = ("create", "run")


class CommandFailed(AssertionError):
    """A runtime command failed where the test expected success."""


@dataclass
class Runtime:
    """Runs ``[binary, --root, root, *args]`` and cleans up what it created."""

    name: str
    binary: str
    root: Path
    token: str = "capsa-test"
    created: list[str] = field(default_factory=list)
    spawned: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _serial: int = 0

    @property
    def is_runc(self) -> bool:
        return self.name == "runc"

    def new_id(self) -> str:
        """A fresh container id, unique to this test (``capsa-test-<rand>-<n>``)."""
        self._serial += 1
        return f"{self.token}-{self._serial}"

    def command(self, *args: str) -> list[str]:
        return [self.binary, "--root", str(self.root), *args]

    def run(
        self,
        *args: str,
        check: bool = True,
        input: str | bytes | None = None,
        timeout: float = 30,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run one verb; ``check`` raises with the runtime's stderr on non-zero exit."""
        self._remember(args)
        with (
            _stdin(input) as stdin,
            tempfile.TemporaryFile() as out,
            tempfile.TemporaryFile() as err,
        ):
            proc = subprocess.Popen(
                self.command(*args), stdin=stdin, stdout=out, stderr=err, cwd=cwd
            )
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise
            result = subprocess.CompletedProcess(proc.args, code, _read(out), _read(err))
        if check and code != 0:
            raise CommandFailed(
                f"{self.name} {' '.join(args)} exited {code}: {result.stderr.strip()}"
            )
        return result

    def spawn(
        self, *args: str, stdout: IO[bytes] | int = subprocess.DEVNULL
    ) -> subprocess.Popen[bytes]:
        """Start a verb in the background (e.g. a foreground ``run``); reaped at cleanup."""
        self._remember(args)
        proc = subprocess.Popen(
            self.command(*args), stdin=subprocess.DEVNULL, stdout=stdout, stderr=stdout
        )
        self.spawned.append(proc)
        return proc

    def state(self, container_id: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.run("state", container_id).stdout)
        return data

    def status(self, container_id: str) -> str | None:
        """The container's status, or None when the runtime does not know it."""
        proc = self.run("state", container_id, check=False)
        if proc.returncode != 0:
            return None
        return str(json.loads(proc.stdout)["status"])

    def wait_status(self, container_id: str, status: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            seen = self.status(container_id)
            if seen == status:
                return
            time.sleep(0.02)
        raise AssertionError(f"{container_id} is {seen}, not {status}, after {timeout}s")

    def cleanup(self) -> list[str]:
        """``delete --force`` every container this wrapper created; return failures."""
        problems = []
        for cid in reversed(self.created):
            status = self.status(cid)
            if status is None:
                continue
            if status == "paused":
                self.run("resume", cid, check=False)
            proc = self.run("delete", "--force", cid, check=False)
            if proc.returncode != 0 and self.status(cid) is not None:
                problems.append(f"{cid}: {proc.stderr.strip()}")
        self.created.clear()
        for child in self.spawned:
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                problems.append(f"{child.args!r} still ran after its container was deleted")
        self.spawned.clear()
        return problems

    def _remember(self, args: tuple[str, ...]) -> None:
        if args and args[0] in _CREATING_VERBS and args[-1] not in self.created:
            self.created.append(args[-1])


def _read(f: IO[bytes]) -> str:
    f.seek(0)
    return f.read().decode(errors="replace")


@contextlib.contextmanager
def _stdin(data: str | bytes | None) -> Iterator[IO[bytes] | int]:
    """DEVNULL, or a temporary file holding ``data``."""
    if data is None:
        yield subprocess.DEVNULL
        return
    with tempfile.TemporaryFile() as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.seek(0)
        yield f
