"""Checks on a bundle's config before anything is created."""

from __future__ import annotations

import os

from capsa.errors import InvalidArgument
from capsa.oci.runtime_spec import NAMESPACE_TYPES, Spec


def validate(spec: Spec, bundle: str) -> str:
    """Raise InvalidArgument for a config capsa cannot run; return the rootfs path."""
    if spec.root is None or not spec.root.path:
        raise InvalidArgument("config: root.path is required")
    rootfs = os.path.normpath(os.path.join(bundle, spec.root.path))
    if not os.path.isdir(rootfs):
        raise InvalidArgument(f"root filesystem {rootfs} does not exist or is not a directory")
    if spec.process is None or not spec.process.args:
        raise InvalidArgument("config: process.args is required")
    if spec.process.cwd and not spec.process.cwd.startswith("/"):
        raise InvalidArgument(f"config: process.cwd {spec.process.cwd!r} must be absolute")
    linux = spec.linux
    if linux is None:
        raise InvalidArgument("config: the linux section is required")
    seen: set[str] = set()
    for ns in linux.namespaces or []:
        if ns.type not in NAMESPACE_TYPES:
            raise InvalidArgument(f"config: unknown namespace type {ns.type!r}")
        if ns.type in seen:
            raise InvalidArgument(f"config: namespace {ns.type} is listed twice")
        seen.add(ns.type)
    if "mount" not in seen and (linux.masked_paths or linux.readonly_paths):
        # they would be masked in the runtime's mount namespace: runc refuses too
        raise InvalidArgument(
            "config: unable to restrict sys entries without a private MNT namespace"
        )
    if (spec.hostname or spec.domainname) and "uts" not in seen:
        raise InvalidArgument("config: setting a hostname needs a uts namespace")
    if (linux.uid_mappings or linux.gid_mappings) and "user" not in seen:
        raise InvalidArgument("config: uid/gid mappings need a user namespace")
    user_ns = linux.namespace("user")
    if user_ns and not user_ns.path and not (linux.uid_mappings and linux.gid_mappings):
        raise InvalidArgument("config: a new user namespace needs uidMappings and gidMappings")
    if linux.time_offsets and "time" not in seen:
        raise InvalidArgument("config: timeOffsets need a time namespace")
    if linux.cgroups_path and ".." in linux.cgroups_path.split("/"):
        raise InvalidArgument(f"config: invalid cgroupsPath {linux.cgroups_path!r}")
    for m in spec.mounts or []:
        if not m.destination.startswith("/"):
            raise InvalidArgument(f"config: mount destination {m.destination!r} must be absolute")
    return rootfs
