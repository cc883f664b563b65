"""Capability names, masks, /proc status parsing; apply() only in a forked child."""

from __future__ import annotations

import os

import pytest
from tests.helpers.forked import run_in_child

from capsa.errors import InvalidArgument
from capsa.linux import capabilities as caps
from capsa.oci.runtime_spec import Capabilities

SAMPLE_STATUS = """\
Name:\tsh
Umask:\t0022
State:\tS (sleeping)
Uid:\t0\t0\t0\t0
CapInh:\t0000000000000400
CapPrm:\t00000000a80425fb
CapEff:\t00000000a80425fb
CapBnd:\t000001ffffffffff
CapAmb:\t0000000000000400
NoNewPrivs:\t1
"""


def test_table_is_complete_and_contiguous() -> None:
    assert sorted(caps.CAPABILITIES.values()) == list(range(41))
    assert caps.CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40
    assert len(caps.DOCKER_DEFAULT_CAPS) == 14
    assert set(caps.DOCKER_DEFAULT_CAPS) <= set(caps.CAPABILITIES)


def test_parse_accepts_any_case_and_missing_prefix() -> None:
    mask = caps.parse(["CAP_CHOWN", "kill", "Net_Raw", "cap_sys_admin"], last=40)
    assert mask == (1 << 0) | (1 << 5) | (1 << 13) | (1 << 21)
    assert caps.parse(None) == 0
    assert caps.parse([]) == 0


def test_parse_rejects_unknown_names() -> None:
    with pytest.raises(InvalidArgument, match="unknown capability CAP_FOO"):
        caps.parse(["CAP_CHOWN", "foo"])


def test_parse_drops_capabilities_the_kernel_lacks() -> None:
    warnings: list[str] = []
    mask = caps.parse(["CAP_BPF", "CAP_CHOWN"], last=37, warn=warnings.append)
    assert mask == 1
    assert len(warnings) == 1
    assert "CAP_BPF" in warnings[0]


def test_names_round_trip() -> None:
    mask = caps.parse(caps.DOCKER_DEFAULT_CAPS, last=40)
    assert sorted(caps.names(mask)) == sorted(caps.DOCKER_DEFAULT_CAPS)
    assert caps.names(0) == []
    assert caps.names(1 << 63) == ["CAP_63"]


def test_from_spec() -> None:
    assert caps.from_spec(None) == caps.CapSets()
    spec = Capabilities(
        bounding=["CAP_CHOWN", "CAP_KILL"],
        effective=["CAP_KILL"],
        permitted=["CAP_KILL"],
        inheritable=None,
        ambient=["CAP_KILL"],
    )
    sets = caps.from_spec(spec, last=40)
    assert sets == caps.CapSets(bounding=0b100001, effective=32, permitted=32, ambient=32)


def test_parse_status_sample() -> None:
    sets = caps.parse_status(SAMPLE_STATUS)
    assert sets.inheritable == 0x400
    assert sets.permitted == sets.effective == 0xA80425FB
    assert sets.bounding == (1 << 41) - 1
    assert sets.ambient == 0x400
    assert caps.names(sets.effective) == sorted(
        caps.DOCKER_DEFAULT_CAPS, key=caps.CAPABILITIES.__getitem__
    )


def test_current_reads_this_process() -> None:
    sets = caps.current()
    assert sets.effective & ~sets.permitted == 0
    assert sets.bounding != 0
    assert caps.last_cap() >= 36


def test_apply_can_drop_everything_in_a_child() -> None:
    def child() -> str:
        caps.apply(caps.CapSets())
        with open("/proc/self/status") as f:
            return f.read()

    status, out = run_in_child(child)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, out
    after = caps.parse_status(out)
    assert (after.effective, after.permitted, after.inheritable, after.ambient) == (0, 0, 0, 0)
