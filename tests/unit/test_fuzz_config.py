"""Fuzz: a bundle's config.json as capsa-runtime reads it.

Any bytes in config.json, and any JSON shaped like a config, are read (fastjson,
``Spec.from_json``), checked (``runtime.validate``), planned into cgroup writes for
both drivers and compiled into a seccomp filter, with InvalidArgument (a CapsaError)
as the only way to fail: no traceback from the runtime's first steps.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from tests.helpers.fuzz import fuzz

from capsa.cgroups.plan import Plan
from capsa.cgroups.planning import plan_resources
from capsa.errors import CapsaError
from capsa.linux import seccomp
from capsa.oci.runtime_spec import Spec, load_spec
from capsa.runtime.validate import validate

INTS = st.one_of(
    st.sampled_from([0, 1, -1, 2, 1000, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1]),
    st.integers(-(2**70), 2**70),
)
WORDS = st.one_of(
    st.text(max_size=10),
    st.sampled_from(["", "/", "rootfs", "../..", "SCMP_ACT_ERRNO", "SCMP_ACT_ALLOW", "mount",
                     "pid", "user", "RLIMIT_NOFILE", "RLIMIT_BOGUS", "SCMP_CMP_EQ", "read",
                     "x86_64", "SCMP_ARCH_X86_64", "SCMP_ARCH_BOGUS", "max", "0-1", "a",
                     "2MB", "1GB", "bogus_syscall", "c", "rwm", "\udcff", "\x00",
                     "SCMP_ACT_KILL", "SCMP_ACT_TRACE", "SCMP_ACT_LOG", "SCMP_CMP_MASKED_EQ",
                     "SCMP_FLAG_LOG", "cpu.max", "memory.max", "10 100000", "1-2,4", "b",
                     "/dev/null", "/proc", "ro", "rbind", "bind", "tmpfs", "sysfs"]),
)  # fmt: skip
LEAVES = st.one_of(st.none(), st.booleans(), INTS, st.floats(), WORDS)
JSON = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def _or_junk(typed: Any) -> Any:
    """Mostly a value of the right type, one time in 25 any JSON."""
    return st.integers(0, 24).flatmap(lambda i: JSON if i == 0 else typed)


INT, STR, BOOL = _or_junk(INTS), _or_junk(WORDS), _or_junk(st.booleans())


def _obj(**fields: Any) -> Any:
    """An object with some of ``fields`` (each a strategy), sometimes any JSON instead."""
    return _or_junk(st.fixed_dictionaries({}, optional=fields))


def _list(item: Any) -> Any:
    return _or_junk(st.lists(item, max_size=3))


SECCOMP = _obj(
    defaultAction=STR, defaultErrnoRet=INT, architectures=_list(STR), flags=_list(STR),
    syscalls=_list(_obj(names=_list(STR), action=STR, errnoRet=INT,
                        args=_list(_obj(index=INT, value=INT, valueTwo=INT, op=STR)))),
)  # fmt: skip
RESOURCES = _obj(
    memory=_obj(limit=INT, reservation=INT, swap=INT, kernel=INT, swappiness=INT,
                disableOOMKiller=BOOL),
    cpu=_obj(shares=INT, quota=INT, period=INT, burst=INT, cpus=STR, mems=STR,
             realtimeRuntime=INT, realtimePeriod=INT, idle=INT),
    pids=_obj(limit=INT),
    blockIO=_obj(weight=INT, leafWeight=INT,
                 weightDevice=_list(_obj(major=INT, minor=INT, weight=INT)),
                 throttleReadBpsDevice=_list(_obj(major=INT, minor=INT, rate=INT))),
    hugepageLimits=_list(_obj(pageSize=STR, limit=INT)),
    network=_obj(classID=INT, priorities=_list(_obj(name=STR, priority=INT))),
    unified=_or_junk(st.dictionaries(WORDS, WORDS, max_size=3)),
    devices=_list(_obj(allow=BOOL, type=STR, major=INT, minor=INT, access=STR)),
)  # fmt: skip
CONFIG = _obj(
    ociVersion=STR,
    root=_obj(path=st.just("rootfs") | STR, readonly=BOOL),
    process=_obj(args=_list(STR), env=_list(STR), cwd=STR, terminal=BOOL,
                 user=_obj(uid=INT, gid=INT, additionalGids=_list(INT), umask=INT),
                 rlimits=_list(_obj(type=STR, soft=INT, hard=INT)),
                 capabilities=_obj(bounding=_list(STR), effective=_list(STR)),
                 consoleSize=_obj(height=INT, width=INT), oomScoreAdj=INT),
    mounts=_list(_obj(destination=STR, type=STR, source=STR, options=_list(STR))),
    hostname=STR,
    linux=_obj(namespaces=_list(_obj(type=STR, path=STR)), resources=RESOURCES,
               seccomp=SECCOMP, cgroupsPath=STR, sysctl=_or_junk(st.dictionaries(WORDS, WORDS)),
               maskedPaths=_list(STR),
               uidMappings=_list(_obj(containerID=INT, hostID=INT, size=INT))),
)  # fmt: skip


class _Cgroup:
    """What a planner may ask about the cgroup (capsa.cgroups.plan.Context): all there."""

    hugepage_sizes = ("2MB", "1GB")
    unified_controllers = frozenset({"cpu", "memory", "pids", "io", "cpuset", "hugetlb"})

    def __init__(self, version: int) -> None:
        self.version = version

    def mounted(self, hierarchy: str) -> bool:
        return True

    def has(self, hierarchy: str, file: str) -> bool:
        return True

    def read(self, hierarchy: str, file: str) -> str | None:
        return "0"


@pytest.fixture(scope="module")
def bundle() -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        os.mkdir(os.path.join(tmp, "rootfs"))
        yield tmp


def _steps(spec: Spec, bundle: str) -> list[Callable[[], object]]:
    """The runtime's steps before it touches the kernel, each tried on its own (a config
    that validation refuses never reaches the others, but they must hold anyway)."""
    steps: list[Callable[[], object]] = [lambda: validate(spec, bundle)]
    linux = spec.linux
    if linux and linux.resources:
        res = linux.resources
        steps += [partial(plan_resources, res, _Cgroup(v), Plan(), v) for v in (1, 2)]
    if linux and linux.seccomp and seccomp.available():
        steps.append(partial(seccomp.build_filter_bpf, linux.seccomp))
    return steps


def _read(data: bytes, bundle: str) -> None:
    with open(os.path.join(bundle, "config.json"), "wb") as f:
        f.write(data)
    try:
        spec = load_spec(bundle)
    except CapsaError:
        return
    for step in _steps(spec, bundle):
        try:
            step()
        except CapsaError:
            pass


@fuzz(400)
@given(st.binary(max_size=64))
@example(b"{bad json")
@example(b"[" * 100_000)
@example(b'{"a": 1' + b"0" * 5000 + b"}")
@example(b"\xff\xfe{}")
def test_any_bytes(bundle: str, data: bytes) -> None:
    _read(data, bundle)


@fuzz(1200)
@given(CONFIG)
def test_any_config_shaped_json(bundle: str, doc: Any) -> None:
    _read(json.dumps(doc).encode(), bundle)
