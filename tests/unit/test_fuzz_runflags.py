"""Fuzz: ``run``/``create`` flags, from the command line to the OCI config.

Any argv is parsed by click, turned into a ContainerSpec (capsa.cli.runflags), checked
as the engine checks a spec at create, generated into the runtime's config.json as at
start, and read back as the runtime reads it. Only typed errors (CapsaError) and
click's usage errors may come out: no traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import click
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from tests.helpers.fuzz import fuzz

from capsa import fastjson
from capsa.cli.containers import create
from capsa.cli.runflags import build_spec
from capsa.engine.containers import specgen
from capsa.errors import CapsaError
from capsa.oci.codec import to_dict
from capsa.oci.image_spec import ContainerConfig, ImageConfig
from capsa.oci.runtime_spec import Spec
from capsa.syntax.policies import parse_log_opts, parse_restart

FLAGS = [
    "--name", "-e", "-w", "-u", "-h", "--domainname", "-l", "--entrypoint", "-t", "-i",
    "--init", "--rm", "--restart", "--health-cmd", "--health-interval", "--health-timeout",
    "--health-retries", "--health-start-period", "--health-on-failure", "--no-healthcheck",
    "--read-only", "--tmpfs", "-v", "--mount", "--cap-add", "--cap-drop", "--privileged",
    "--security-opt", "--device", "--ulimit", "--sysctl", "--shm-size", "--stop-signal",
    "--stop-timeout", "--pid", "--ipc", "--uts", "--network", "--add-host", "-p", "-P",
    "--ip", "--network-alias", "--mac-address", "--network-rate-in", "--network-rate-out",
    "--dns", "--dns-search", "--dns-option", "-m", "--memory-swap", "--memory-reservation",
    "--oom-kill-disable", "--oom-score-adj", "--cpus", "-c", "--cpu-quota", "--cpu-period",
    "--cpuset-cpus", "--cpuset-mems", "--pids-limit", "--blkio-weight", "--device-read-bps",
    "--device-write-bps", "--device-read-iops", "--device-write-iops", "--log-opt",
    "--group-add", "--pull",
]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(
        [
            "", "0", "1", "-1", "-5", "7", "1000", "0.5", "1.5", "-0.1", "1e3", "nan", "inf",
            "1e400", "99999999999999999999999", "0x10", "1/2", "1.2.3", "512m", "1.5GiB",
            "6m", "1k", "10 m", "kb", "always", "on-failure:3", "on-failure:-1", "no:1",
            "unless-stopped", "host", "none", "private", "container:x", "bridge", "shareable",
            "/data", "/a:/b", "/a:/b:ro", "vol:/x:rw,nocopy", "a:b:c:d", "/x:mode=1777",
            "/x:mode=zz", "/x:size=1m", "type=tmpfs,target=/t,tmpfs-mode=99",
            "type=bind,source=/nonexistent-capsa-fuzz,target=/b", "type=volume,target=/v",
            "type=tmpfs,destination=/t,tmpfs-size=-1", 'type="a,target=/x', "ALL", "NET_RAW",
            "cap_bogus", "seccomp=unconfined", "no-new-privileges", "apparmor=x", "bogus",
            "/dev/null", "/dev/null:/dev/x:rwm", "/dev/null:q", "/dev/null:1mb",
            "/dev/null:-5", "/dev/null:99999999999999999999999", "nofile=1024:2048",
            "nofile=10:5", "stack=1", "nofile=-1", "nproc=-1:5", "bogus=1", "nofile=", "=",
            "net.ipv4.ip_forward=1", "kernel.shmmax=1", "kernel.domainname=x", "vm.x=1",
            "SIGTERM", "SIGBOGUS", "9", "99", "80", "8080:80", "1-3:1-2", "127.0.0.1::80/udp",
            "[::1]:80:80", "70000", "10mbit", "5xbit", "a=b", "x:1.2.3.4", "x=1.2.3.4", "x",
            "max-size=1k", "max-file=0", "compress=maybe", "1s", "-1s", "1h30m", "1.5.5s",
            "kill", "bogus-action", "0-1", "0,1", "99-1", "a-b", "\udcff", "a\udcffb",
            "x" * 200, "a" * 70,
        ]
    ),
    st.text(max_size=12),
)  # fmt: skip
ARGS = st.lists(st.tuples(st.sampled_from(FLAGS), VALUES), max_size=5)
IMAGE = ImageConfig(
    architecture="amd64",
    os="linux",
    config=ContainerConfig(cmd=["/bin/sh"], env=["PATH=/bin", "BIG=" + "b" * 100]),
)


def _argv(pairs: list[tuple[str, str]], command: list[str]) -> list[str]:
    argv: list[str] = []
    for flag, value in pairs:
        option = create.params[[p.name for p in create.params].index(_dest(flag))]
        argv += [flag] if getattr(option, "is_flag", False) else [flag, value]
    return [*argv, "busybox", *command]


def _dest(flag: str) -> str | None:
    for p in create.params:
        if flag in getattr(p, "opts", []):
            return p.name
    raise AssertionError(flag)


def _end_to_end(argv: list[str]) -> None:
    try:
        ctx = create.make_context("create", list(argv))
    except click.ClickException:
        return
    params = dict(ctx.params)
    image, command = params.pop("image"), params.pop("command")
    try:
        spec = build_spec(image, command, params)
        for check in (
            specgen.capabilities,
            specgen.resources,
            specgen.check_sysctls,
            specgen.check_modes,
            specgen.rlimits,
        ):
            check(spec)
        parse_restart(spec.restart)
        parse_log_opts(spec.log_opts)
        inputs = specgen.Inputs(container_id="f" * 64, rootfs="/nonexistent", image=IMAGE)
        config = specgen.generate(spec, inputs)
    except CapsaError:
        return
    text = json.dumps(to_dict(config))  # as engine.bundle writes config.json
    assert Spec.from_json(fastjson.loads(text.encode())) == config  # as the runtime reads it


@pytest.fixture(autouse=True, scope="module")
def _no_host_changes() -> object:
    """``-v /dir:...`` creates a missing source directory: not on this host."""
    with mock.patch("capsa.cli.runflags.os.makedirs"):
        yield None


@fuzz(1500)
@given(ARGS, st.lists(st.sampled_from(["sh", "-c", "echo", "\udcff", "x" * 300]), max_size=3))
@example([("--cpus", "-1")], [])
@example([("--cpus", "inf")], [])
@example([("-m", "nan")], [])
@example([("--tmpfs", "/x:mode=zz")], [])
@example([("--ulimit", "nofile=--5")], [])
@example([("-h", "a\udcffb")], [])
@example([("-e", "=x")], [])
@example([("--device", "\x00")], [])
@example([("--entrypoint", "\\")], [])
@example([("--mount", "\n0")], [])
def test_run_flags_end_to_end(pairs: list[tuple[str, str]], command: list[str]) -> None:
    _end_to_end(_argv(pairs, command))


@fuzz(500)
@given(st.lists(VALUES, max_size=6))
def test_any_argv(argv: list[str]) -> None:
    _end_to_end(argv)


def test_an_env_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "env"
    bad.write_bytes(b"A=\xff\n")
    with pytest.raises(CapsaError, match="invalid utf8"):
        _build(["--env-file", str(bad), "busybox"])


def _build(argv: list[str]) -> object:
    ctx = create.make_context("create", argv)
    params = dict(ctx.params)
    return build_spec(params.pop("image"), params.pop("command"), params)
