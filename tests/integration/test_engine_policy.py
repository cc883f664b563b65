"""The engine in a server's process: monitors start by the frontend's policy.

A threaded or async server (the API service) must never fork itself: with the
``spawn`` policy a container's monitor comes from a running monitor host, or from a
fresh interpreter, and the caller's process is not forked, not even to start a host.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from tests.helpers import capsa_cli
from tests.helpers.capsa_cli import IMAGE, CapsaCli

busybox_tarball = capsa_cli.busybox_tarball  # fixtures
capsa_module = capsa_cli.capsa_module
capsa = capsa_cli.capsa

if TYPE_CHECKING:
    from capsa.engine.local import LocalEngine

pytestmark = pytest.mark.root


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Every ``os.fork`` of this process from now on."""
    made: list[int] = []
    real = os.fork

    def counted() -> int:
        pid = real()
        if pid:
            made.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", counted)
    yield made


def _engine(capsa: CapsaCli, policy: str) -> LocalEngine:
    from capsa.config import Settings
    from capsa.engine.local import LocalEngine

    return LocalEngine(Settings(root=str(capsa.root), runroot=str(capsa.runroot)), policy)


def test_the_spawn_policy_never_forks_the_caller(capsa: CapsaCli, forks: list[int]) -> None:
    from capsa.engine.containers.types import ContainerSpec, State

    engine = _engine(capsa, "spawn")
    try:
        name = capsa.name()
        spec = ContainerSpec(image=IMAGE, name=name, command=["sleep", "30"], init=True)
        rec = engine.containers.create(spec)
        started, _ = engine.containers.start(rec.id)
        assert started.state is State.RUNNING
        second = capsa.name()  # a second one while the first's host may be up
        rec2 = engine.containers.create(
            ContainerSpec(image=IMAGE, name=second, command=["sleep", "30"], init=True)
        )
        assert engine.containers.start(rec2.id)[0].state is State.RUNNING
    finally:
        engine.close()
    assert forks == []
    assert capsa.status(name) == "running" and capsa.status(second) == "running"
    capsa.run("rm", "-f", name, second)


def test_exec_under_the_spawn_policy_never_forks(capsa: CapsaCli, forks: list[int]) -> None:
    """The exec's watcher (its subreaper) is a fresh interpreter, not a fork."""
    from capsa.engine.containers.types import ExecSpec, ExecStdio

    name = capsa.name()
    capsa.run("run", "-d", "--name", name, IMAGE, "sleep", "300")
    engine = _engine(capsa, "spawn")
    r, w = os.pipe()
    try:
        session = engine.containers.exec(
            name, ExecSpec(command=["sh", "-c", "echo watched; exit 6"]), ExecStdio(stdout=w)
        )
        os.close(w)
        assert session is not None
        assert session.wait() == 6
        assert os.read(r, 100) == b"watched\n"
        detached = engine.containers.exec(
            name, ExecSpec(command=["touch", "/tmp/detached"], detach=True), ExecStdio()
        )
        assert detached is None
    finally:
        engine.close()
        os.close(r)
    assert forks == []
    capsa.wait_for(
        lambda: capsa.run("exec", name, "ls", "/tmp/detached", check=False).returncode == 0
    )
    died = capsa.run(
        "events",
        "--since",
        "1m",
        "--until",
        "0s",
        "--filter",
        f"container={name}",
        "--filter",
        "event=exec_die",
        "--format",
        "{{.Actor.Attributes.exitCode}}",
    )
    assert "6" in died.stdout.split()


def test_an_unknown_policy_is_refused() -> None:
    from capsa.config import Settings
    from capsa.engine.service_context import ServiceContext
    from capsa.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="fork or spawn"):
        ServiceContext(Settings(root="/nonexistent", runroot="/nonexistent"), "thread")
