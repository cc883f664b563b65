"""The v2 device filter program, run through a tiny eBPF interpreter."""

from __future__ import annotations

import struct

import pytest

from capsa.cgroups import devices
from capsa.cgroups.devices_bpf import (
    BPF_DEVCG_ACC_MKNOD,
    BPF_DEVCG_ACC_READ,
    BPF_DEVCG_ACC_WRITE,
    BPF_DEVCG_DEV_BLOCK,
    BPF_DEVCG_DEV_CHAR,
    Rule,
    build_program,
    encode,
)
from capsa.errors import InvalidArgument
from capsa.oci.runtime_spec import DeviceCgroup

R, W, M = BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE, BPF_DEVCG_ACC_MKNOD
CHAR, BLOCK = BPF_DEVCG_DEV_CHAR, BPF_DEVCG_DEV_BLOCK
MASK64 = (1 << 64) - 1


def run(program: bytes, dev_type: int, access: int, major: int, minor: int) -> int:
    """Interpret the few opcodes the filter uses over a bpf_cgroup_dev_ctx."""
    ctx = struct.pack("<III", dev_type | (access << 16), major, minor)
    regs = [0] * 11
    pc, steps = 0, 0
    while True:
        code, regs_byte, off, imm = struct.unpack_from("<BBhi", program, pc * 8)
        dst, src = regs_byte & 0xF, regs_byte >> 4
        pc, steps = pc + 1, steps + 1
        assert steps < 10_000
        if code == 0x61:  # ldxw: only from the ctx in r1 (never rewritten before loads)
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif code == 0x54:
            regs[dst] = (regs[dst] & imm) & 0xFFFFFFFF
        elif code == 0x74:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif code == 0xB4:
            regs[dst] = imm & 0xFFFFFFFF
        elif code == 0xBC:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif code == 0x55:
            if regs[dst] != imm & MASK64:
                pc += off
        elif code == 0x5D:
            if regs[dst] != regs[src]:
                pc += off
        elif code == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


def program(rules: list[DeviceCgroup]) -> bytes:
    return encode(build_program(devices.rules(rules)))


def test_default_deny_and_allow_list() -> None:
    p = program(
        [
            DeviceCgroup(allow=False, access="rwm"),
            DeviceCgroup(allow=True, type="c", major=1, minor=3, access="rwm"),
            DeviceCgroup(allow=True, type="c", major=1, minor=5, access="r"),
            DeviceCgroup(allow=True, type="c", major=136, access="rw"),
        ]
    )
    assert run(p, CHAR, R, 1, 3) == 1
    assert run(p, CHAR, W, 1, 3) == 1
    assert run(p, BLOCK, R, 1, 3) == 0  # wrong type
    assert run(p, CHAR, R, 1, 5) == 1
    assert run(p, CHAR, W, 1, 5) == 0  # access not granted
    assert run(p, CHAR, W, 136, 7) == 1  # any minor
    assert run(p, CHAR, M, 136, 7) == 0
    assert run(p, CHAR, R, 8, 0) == 0  # nothing matches


def test_later_rule_wins() -> None:
    p = program(
        [
            DeviceCgroup(allow=True, access="rwm"),  # allow everything ...
            DeviceCgroup(
                allow=False, type="c", major=1, minor=3, access="rwm"
            ),  # ... but /dev/null
        ]
    )
    assert run(p, CHAR, R, 1, 3) == 0
    assert run(p, CHAR, R, 1, 5) == 1
    assert run(p, BLOCK, W, 8, 0) == 1


def test_empty_rules_deny_everything() -> None:
    p = program([])
    assert run(p, CHAR, R, 1, 3) == 0
    assert len(p) % 8 == 0


def test_allow_all_last_stops_the_program() -> None:
    insns = build_program(
        devices.rules(
            [
                DeviceCgroup(allow=False, type="c", major=1, minor=3),
                DeviceCgroup(allow=True),
            ]
        )
    )
    assert len(insns) == 6 + 2  # prologue, then "return 1": the deny rule is unreachable


def test_invalid_rules() -> None:
    with pytest.raises(InvalidArgument):
        devices.rules([DeviceCgroup(allow=True, type="p")])
    with pytest.raises(InvalidArgument):
        build_program([Rule("c", 1, 3, "x", True)])


def test_v1_lines() -> None:
    lines = [
        devices.v1_line(r)
        for r in devices.rules(
            [
                DeviceCgroup(allow=True),
                DeviceCgroup(allow=True, type="b", major=8, access="r"),
            ]
        )
    ]
    assert lines == ["a *:* rwm", "b 8:* r"]
