"""Shared fixtures: busybox rootfs, bundles, private roots, runtimes and leak checks."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers import requires, unique_name
from tests.helpers.bundle import BundleFactory, remove_parent_cgroups
from tests.helpers.leaks import Snapshot, remove, take_snapshot
from tests.helpers.rootfs import BUSYBOX, build_busybox_rootfs
from tests.helpers.runtime import Runtime

pytest_plugins = ["tests.helpers.registry", "tests.helpers.images"]

__all__ = ["requires"]

RUNTIMES = ("capsa-runtime", "runc")

# A monitor host exits as soon as it supervises nothing, so that every test's leak check
# sees no process of it; tests/integration/test_monitor_host.py covers the lingering host.
os.environ["CAPSA_MONITOR_LINGER"] = "0"


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A busybox rootfs with /etc/passwd, /etc/group and /probe; built once, never edit."""
    if not BUSYBOX.is_file():
        pytest.skip(f"needs {BUSYBOX} (apt-get install busybox-static)")
    return build_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@pytest.fixture
def test_token() -> str:
    """``capsa-test-<rand>``: prefix of every name (cgroup, container id) this test makes."""
    return unique_name()


@pytest.fixture
def bundle(tmp_path: Path, busybox_rootfs: Path, test_token: str) -> BundleFactory:
    """``bundle(args, edit=..., prepare=...) -> Path``: see helpers.bundle.BundleFactory."""
    return BundleFactory(tmp_path, busybox_rootfs, test_token)


@pytest.fixture
def capsa_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Private CAPSA_ROOT and CAPSA_RUNROOT, exported to the test's environment."""
    root, runroot = tmp_path / "capsa-root", tmp_path / "capsa-runroot"
    root.mkdir()
    runroot.mkdir()
    monkeypatch.setenv("CAPSA_ROOT", str(root))
    monkeypatch.setenv("CAPSA_RUNROOT", str(runroot))
    return root, runroot


def _runtime_binary(name: str) -> str:
    if name == "runc":
        return shutil.which("runc") or "/usr/sbin/runc"
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else (shutil.which(name) or str(local))


def _runtime_names() -> list[str]:
    # runc is the reference the tests were validated against; CI runs capsa only
    return list(RUNTIMES) if os.environ.get("CAPSA_TEST_RUNC") == "1" else [RUNTIMES[0]]


@pytest.fixture(params=_runtime_names())
def runtime(request: pytest.FixtureRequest, tmp_path: Path, test_token: str) -> Iterator[Runtime]:
    """An OCI runtime CLI with a private --root: capsa-runtime, and runc when
    CAPSA_TEST_RUNC=1."""
    name: str = request.param
    requires(*(["runc"] if name == "runc" else []))
    rt = Runtime(name, _runtime_binary(name), tmp_path / "runtime-root", token=test_token)
    yield rt
    problems = rt.cleanup()
    remove_parent_cgroups(test_token)
    assert not problems, f"{name} could not delete: {problems}"


@pytest.fixture(autouse=True)
def _leak_check(request: pytest.FixtureRequest) -> Iterator[None]:
    """For root tests: fail if mounts, cgroups, links, nft tables or processes remain."""
    if request.node.get_closest_marker("root") is None:
        yield
        return
    requires()
    tmp_path: Path = request.getfixturevalue("tmp_path")
    token: str = request.getfixturevalue("test_token")
    markers = (str(tmp_path), token)
    before = take_snapshot(markers)
    yield
    deadline = time.monotonic() + 3  # killed processes may take a moment to go away
    while True:
        leaked = _only_ours(take_snapshot(markers).minus(before), markers)
        if not leaked.describe() or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if leaked.describe():
        errors = remove(leaked)
        pytest.fail("test leaked:\n  " + "\n  ".join(leaked.describe() + errors))


def _only_ours(leaked: Snapshot, markers: tuple[str, ...]) -> Snapshot:
    """Under xdist other workers make capsa-test objects too: keep this test's own."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return leaked

    def mine(items: frozenset[str]) -> frozenset[str]:
        return frozenset(i for i in items if any(m in i for m in markers))

    return Snapshot(
        mine(leaked.mounts),
        mine(leaked.cgroups),
        mine(leaked.links),
        mine(leaked.nft_tables),
        leaked.processes,
    )
