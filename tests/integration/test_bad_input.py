"""Bad input to ``capsa run``/``create``: one line on stderr, Docker's exit code, no
traceback, nothing left behind; bytes that are not UTF-8 pass through to the container.

Each command runs cold (``CAPSA_WARM=0``) and warm (forked by the monitor host, which a
running container keeps up): both must behave the same.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers import capsa_cli
from tests.helpers.capsa_cli import CAPSA, IMAGE, CapsaCli

busybox_tarball = capsa_cli.busybox_tarball  # fixtures
capsa_module = capsa_cli.capsa_module
capsa = capsa_cli.capsa

pytestmark = pytest.mark.root

MODES = ("cold", "warm")


@pytest.fixture
def serving(capsa: CapsaCli) -> Iterator[CapsaCli]:
    """A running container: it keeps the run root's monitor host up for warm starts."""
    capsa.detached("--init")
    yield capsa


def _run(capsa: CapsaCli, mode: str, *args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    # a locale whose output encoding is strict (en_US.UTF-8 and most others are)
    strict = {"PYTHONIOENCODING": "utf-8:strict"}
    env = {**capsa.env, **strict, "CAPSA_WARM": "0" if mode == "cold" else "1"}
    argv = [CAPSA.encode(), *(a if isinstance(a, bytes) else a.encode() for a in args)]
    proc = subprocess.run(argv, env=env, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert b"Traceback" not in proc.stderr, proc.stderr.decode(errors="replace")
    return proc


def _one_line_error(proc: subprocess.CompletedProcess[bytes], code: int = 125) -> str:
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == code, err
    lines = err.strip().splitlines()
    # "Error response from daemon: " for a verb given several names (rm), as Docker's CLI
    assert len(lines) == 1 and lines[0].startswith(("Error: ", "Error response from daemon: ")), err
    return lines[0]


def _containers(capsa: CapsaCli) -> list[str]:
    return capsa.run("ps", "-aq", "--no-trunc").stdout.split()


@pytest.mark.parametrize("mode", MODES)
def test_bytes_that_are_not_utf8_reach_the_container(serving: CapsaCli, mode: str) -> None:
    run = ("run", "--rm", "--network", "none")
    echo = _run(serving, mode, *run, IMAGE, "echo", b"a\xffb")
    assert (echo.returncode, echo.stdout) == (0, b"a\xffb\n"), echo.stderr
    env = _run(serving, mode, *run, "-e", b"X=\xfe", IMAGE, "sh", "-c", 'echo "$X"')
    assert (env.returncode, env.stdout) == (0, b"\xfe\n"), env.stderr
    workdir = _run(serving, mode, *run, "-w", b"/w\xff", IMAGE, "pwd")
    assert (workdir.returncode, workdir.stdout) == (0, b"/w\xff\n"), workdir.stderr


@pytest.mark.parametrize("mode", MODES)
def test_a_label_that_is_not_utf8_prints_as_its_bytes(serving: CapsaCli, mode: str) -> None:
    name = serving.name()
    made = _run(
        serving, mode, "create", "--network", "none", "--name", name, "-l", b"k=\xff", IMAGE
    )
    assert made.returncode == 0, made.stderr
    shown = _run(serving, mode, "inspect", "-f", "{{.Config.Labels.k}}", name)
    assert (shown.returncode, shown.stdout) == (0, b"\xff\n"), shown.stderr
    as_json = _run(serving, mode, "inspect", "-f", "{{json .Config.Labels}}", name)
    assert as_json.stdout == '{"k":"\ufffd"}\n'.encode(), as_json.stderr  # as Go's json


@pytest.mark.parametrize("mode", MODES)
def test_names_that_are_not_utf8_are_one_line_errors(serving: CapsaCli, mode: str) -> None:
    before = _containers(serving)
    run = ("run", "--rm", "--network", "none")
    for flag in ("--name", "--hostname", "--domainname"):
        line = _one_line_error(_run(serving, mode, *run, flag, b"a\xffb", IMAGE, "true"))
        assert "a\\xffb" in line or "a\\udcffb" in line, line
    line = _one_line_error(_run(serving, mode, *run, b"busybox\xff", "true"))
    assert "invalid reference format" in line, line
    assert _containers(serving) == before


@pytest.mark.parametrize("mode", MODES)
def test_looking_up_a_name_that_is_not_utf8_is_a_one_line_error(
    serving: CapsaCli, mode: str
) -> None:
    for command in (("inspect",), ("rm", "-f"), ("logs",), ("volume", "inspect")):
        line = _one_line_error(_run(serving, mode, *command, b"a\xffb"), code=1)
        assert 'invalid argument "a\\xffb"' in line, line


@pytest.mark.parametrize("mode", MODES)
def test_a_1mb_environment_variable_is_refused_before_create(
    serving: CapsaCli, mode: str, tmp_path: Path
) -> None:
    before = _containers(serving)
    env_file = tmp_path / "big.env"
    env_file.write_text("BIG=" + "x" * (1 << 20) + "\n")
    for cmd in ("run", "create"):
        proc = _run(serving, mode, cmd, "--network", "none", "--env-file", str(env_file), IMAGE)
        line = _one_line_error(proc)
        assert "'BIG'" in line and "too long" in line and "argument list too long" in line
    assert _containers(serving) == before


BAD_LIMITS = [
    (("--cpus", "-1"), "--cpus", "range of CPUs"),
    (("--cpus", "inf"), "--cpus", "rational number"),
    (("--cpus", "0.001"), "--cpus", "range of CPUs"),
    (("-m", "-1"), "--memory", "invalid size"),
    (("-m", "nan"), "--memory", "invalid size"),
    (("-m", "1k"), "--memory", "6MB"),
    (("--memory-swap", "-5"), "--memory-swap", "invalid size"),
    (("--memory-reservation", "1e3"), "--memory-reservation", "invalid size"),
    (("-c", "-1"), "--cpu-shares", "positive"),
    (("--cpu-period", "10"), "--cpu-period", "1ms"),
    (("--cpu-quota", "10"), "--cpu-quota", "1ms"),
    (("--cpu-quota", "-5"), "--cpu-quota", "negative"),
    (("--blkio-weight", "5"), "--blkio-weight", "10 to 1000"),
    (("--shm-size", "-1"), "--shm-size", "invalid size"),
    (("--oom-score-adj", "5000"), "--oom-score-adj", "[-1000, 1000]"),
    (("--stop-timeout", "99999999999"), "--stop-timeout", "out of range"),
    (("--pids-limit", "99999999999999999999"), "--pids-limit", "out of range"),
]


@pytest.mark.parametrize(("flag", "shown", "why"), BAD_LIMITS, ids=lambda v: str(v))
def test_a_bad_limit_names_the_flag_and_the_value(
    capsa: CapsaCli, flag: tuple[str, str], shown: str, why: str
) -> None:
    before = _containers(capsa)
    line = _one_line_error(_run(capsa, "cold", "create", *flag, IMAGE, "true"))
    assert f'invalid argument "{flag[1]}" for ' in line and shown in line and why in line, line
    assert _containers(capsa) == before  # refused before anything was made


@pytest.mark.parametrize(
    ("flags", "why"),
    [
        (("--ulimit", "bogus=1"), "invalid ulimit type: bogus"),
        (("--ulimit", "nofile=--5"), "invalid ulimit argument"),
        (("--tmpfs", "/x:mode=zz"), "invalid tmpfs mode"),
        (("--mount", "type=tmpfs,target=/x,tmpfs-mode=zz"), "invalid tmpfs mode"),
        (("--entrypoint", "sh 'unclosed"), "--entrypoint"),
        (("-m", "10m", "--memory-reservation", "20m"), "memory reservation"),
        (("--memory-swap", "100m"), "memory limit"),
        (("--cpus", "1", "--cpu-period", "100000"), "cannot both be set"),
        (("-e", "=x"), "invalid environment variable: =x"),
        (("-h", "h" * 65), "longer than 64 bytes"),
    ],
    ids=lambda v: str(v),
)
def test_other_bad_values_are_one_line_errors(
    capsa: CapsaCli, flags: tuple[str, ...], why: str
) -> None:
    before = _containers(capsa)
    line = _one_line_error(_run(capsa, "cold", "create", *flags, IMAGE, "true"))
    assert why in line, line
    assert _containers(capsa) == before


def test_limits_that_are_fine_still_apply(capsa: CapsaCli) -> None:
    cid = capsa.detached(
        "--init", "--cpus", "1.5", "-m", "64m", "--memory-swap", "-1", "--pids-limit", "-5"
    )
    assert capsa.cgroup_value(cid, "cpu", "cpu.cfs_quota_us") == "150000"
    assert capsa.cgroup_value(cid, "memory", "memory.limit_in_bytes") == str(64 << 20)
    assert capsa.cgroup_value(cid, "pids", "pids.max") == "max"  # Docker: <= 0 is unlimited
    assert os.path.isdir(capsa.cgroup(cid, "cpu"))


def test_update_names_the_flag_and_the_value(capsa: CapsaCli) -> None:
    cid = capsa.detached("--init")
    for value, why in (("inf", "rational number"), ("-1", "range of CPUs")):
        line = _one_line_error(_run(capsa, "cold", "update", "--cpus", value, cid), code=1)
        assert f'invalid argument "{value}" for "--cpus" flag: ' in line and why in line, line
