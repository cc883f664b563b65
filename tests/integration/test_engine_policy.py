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


def test_an_unknown_policy_is_refused() -> None:
    from capsa.config import Settings
    from capsa.engine.service_context import ServiceContext
    from capsa.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="fork or spawn"):
        ServiceContext(Settings(root="/nonexistent", runroot="/nonexistent"), "thread")
