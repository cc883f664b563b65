"""The default seccomp profile blocks io_uring, as Docker's does since 25.0: a default
container (even with every capability) gets EPERM from io_uring_setup, while the same
probe works on the host and in an unconfined container."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.helpers import capsa_cli, syscall_probe
from tests.helpers.capsa_cli import IMAGE, CapsaCli

busybox_tarball = capsa_cli.busybox_tarball  # fixtures
capsa_module = capsa_cli.capsa_module
capsa = capsa_cli.capsa

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not syscall_probe.supported(), reason="the probe is x86_64 code"),
]

EPERM = 1


@pytest.fixture
def probe_dir(tmp_path: Path) -> Path:
    probe = syscall_probe.write_io_uring_probe(tmp_path / "io_uring_setup")
    host = subprocess.run([str(probe)], timeout=10).returncode
    if host != 0:  # kernel.io_uring_disabled, or an older kernel: nothing to tell apart
        pytest.skip(f"io_uring_setup fails on this host too (errno {host})")
    return tmp_path


def _errno(capsa: CapsaCli, probe_dir: Path, *flags: str) -> int:
    proc = capsa.run(
        "run", "--rm", "-v", f"{probe_dir}:/probe-bin:ro", *flags, IMAGE,
        "/probe-bin/io_uring_setup", check=False,
    )  # fmt: skip
    return proc.returncode


def test_io_uring_setup_is_denied_in_a_default_container(capsa: CapsaCli, probe_dir: Path) -> None:
    assert _errno(capsa, probe_dir) == EPERM
    assert _errno(capsa, probe_dir, "--cap-add", "ALL") == EPERM


def test_io_uring_setup_works_without_the_filter(capsa: CapsaCli, probe_dir: Path) -> None:
    assert _errno(capsa, probe_dir, "--security-opt", "seccomp=unconfined") == 0
