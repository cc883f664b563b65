"""Make OCI bundles around a copy of the busybox rootfs."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from capsa.oci.defaults import default_spec
from capsa.oci.runtime_spec import Root, Spec

from .probe import PROBE_PATH
from .rootfs import copy_rootfs

SpecEdit = Callable[[Spec], None]
RootfsEdit = Callable[[Path], None]


def write_config(bundle: Path, spec: Spec) -> Path:
    path = bundle / "config.json"
    path.write_text(json.dumps(spec.to_json(), indent=2))
    return path


def read_config(bundle: Path) -> Spec:
    return Spec.from_json(json.loads((bundle / "config.json").read_text()))


class BundleFactory:
    """``make_bundle(args, edit=..., prepare=..., **fields) -> Path``, one per test.

    The spec starts from ``default_spec(terminal=False)`` with a writable root (set
    ``root=Root(readonly=True)`` to test a read-only one) and a cgroupsPath
    ``/<token>/<bundle name>``; ``fields`` replace top-level Spec attributes, then
    ``edit(spec)`` may change anything. ``prepare(rootfs)`` runs after the copy.
    """

    def __init__(self, tmp: Path, rootfs: Path, token: str) -> None:
        self.tmp = tmp
        self.rootfs = rootfs
        self.token = token
        self._serial = 0

    def next_path(self) -> Path:
        """Where the next call will make its bundle (for specs naming rootfs paths)."""
        return self.tmp / f"bundle-{self._serial + 1}"

    def spec(self, args: list[str] | None, name: str) -> Spec:
        spec = default_spec(terminal=False, args=args if args is not None else [PROBE_PATH])
        spec.root = Root(path="rootfs", readonly=False)
        assert spec.linux is not None
        spec.linux.cgroups_path = f"/{self.token}/{name}"
        return spec

    def __call__(
        self,
        args: list[str] | None = None,
        *,
        edit: SpecEdit | None = None,
        prepare: RootfsEdit | None = None,
        **fields: Any,
    ) -> Path:
        bundle = self.next_path()
        self._serial += 1
        name = bundle.name
        bundle.mkdir()
        copy_rootfs(self.rootfs, bundle / "rootfs")
        if prepare is not None:
            prepare(bundle / "rootfs")
        spec = self.spec(args, name)
        for key, value in fields.items():
            if not hasattr(spec, key):
                raise TypeError(f"Spec has no field {key!r}")
            setattr(spec, key, value)
        if edit is not None:
            edit(spec)
        write_config(bundle, spec)
        return bundle


def remove_parent_cgroups(token: str) -> None:
    """Remove the empty ``/<token>`` parent cgroups (runtimes delete only the leaf)."""
    for parent in Path("/sys/fs/cgroup").glob(f"*/{token}"):
        with contextlib.suppress(OSError):
            parent.rmdir()


def sh(script: str) -> list[str]:
    """Process args running ``script`` under busybox sh."""
    return ["/bin/sh", "-c", script]
