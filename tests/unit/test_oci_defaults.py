"""default_spec() must equal what ``runc spec`` prints (recorded under data/)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from capsa.oci.defaults import default_spec
from capsa.oci.runtime_spec import Spec

DATA = Path(__file__).parent / "data"


def _recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    # runc 1.1 stamps its own spec version; the content is what we compare.
    data.pop("ociVersion")
    return data


def _ours(spec: Spec) -> dict[str, Any]:
    data = spec.to_json()
    assert data.pop("ociVersion")
    return data


def test_default_spec_matches_runc_spec() -> None:
    assert _ours(default_spec()) == _recorded("runc-spec.json")


def test_rootless_spec_matches_runc_spec_rootless() -> None:
    expected = _recorded("runc-spec-rootless.json")
    expected["linux"]["uidMappings"][0]["hostID"] = os.getuid()
    expected["linux"]["gidMappings"][0]["hostID"] = os.getgid()
    assert _ours(default_spec(rootless=True)) == expected


@pytest.mark.parametrize("rootless", [False, True])
def test_default_spec_round_trips(rootless: bool) -> None:
    spec = default_spec(rootless=rootless)
    assert Spec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


def test_args_and_terminal() -> None:
    spec = default_spec(args=["/bin/echo", "hi"], terminal=False)
    assert spec.process is not None
    assert spec.process.args == ["/bin/echo", "hi"]
    assert spec.process.terminal is False


def test_each_call_returns_fresh_lists() -> None:
    first = default_spec()
    assert first.mounts is not None and first.process is not None
    first.mounts.pop()
    assert first.process.capabilities is not None and first.process.capabilities.bounding
    first.process.capabilities.bounding.append("CAP_SYS_ADMIN")
    second = default_spec()
    assert second.mounts is not None and len(second.mounts) == 7
    assert second.process is not None and second.process.capabilities is not None
    assert "CAP_SYS_ADMIN" not in (second.process.capabilities.bounding or [])


def test_rootless_uses_a_user_namespace_without_network() -> None:
    spec = default_spec(rootless=True)
    assert spec.linux is not None
    assert spec.linux.namespace("user") is not None
    assert spec.linux.namespace("network") is None
    assert spec.linux.resources is None
