"""``--cgroupns``: the mode recorded at create and the namespaces it asks the runtime for."""

from __future__ import annotations

from pathlib import Path

import pytest

from capsa.engine.containers import specgen
from capsa.engine.containers.types import ContainerSpec
from capsa.errors import InvalidArgument
from capsa.oci.image_spec import ContainerConfig, ImageConfig


def _namespaces(mode: str) -> list[str]:
    spec = ContainerSpec(image="busybox", cgroupns_mode=mode)
    image = ImageConfig(config=ContainerConfig(cmd=["sh"]))
    inputs = specgen.Inputs(container_id="f" * 64, rootfs="/nonexistent", image=image)
    config = specgen.generate(spec, inputs)
    assert config.linux is not None
    return [ns.type for ns in config.linux.namespaces or []]


def test_host_mode_keeps_the_host_cgroup_namespace() -> None:
    assert "cgroup" not in _namespaces("host")
    assert "cgroup" in _namespaces("private")
    assert "cgroup" in _namespaces("")  # a record made before the flag: it was private


def test_default_follows_the_cgroup_version(tmp_path: Path) -> None:
    marker = tmp_path / "cgroup.controllers"
    assert specgen.default_cgroupns(str(marker)) == "host"  # v1 or hybrid
    marker.write_text("cpu memory pids\n")
    assert specgen.default_cgroupns(str(marker)) == "private"  # cgroup v2 only


@pytest.mark.parametrize("given", ["", "host", "private"])
def test_create_records_a_mode(given: str) -> None:
    spec = ContainerSpec(image="busybox", cgroupns_mode=given)
    specgen.check_modes(spec)
    assert spec.cgroupns_mode == (given or specgen.default_cgroupns())


def test_other_modes_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="invalid cgroup namespace mode: container:x"):
        specgen.check_modes(ContainerSpec(image="busybox", cgroupns_mode="container:x"))
