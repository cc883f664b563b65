"""Docker-format seccomp profiles (``--security-opt seccomp=FILE``) -> OCI seccomp.

Docker's files add to the OCI shape: ``archMap`` (architectures with their
sub-architectures) and per-rule ``includes``/``excludes`` conditions on
capabilities and architectures, evaluated here for the container's capabilities.
"""

from __future__ import annotations

import json
import os

from capsa.errors import InvalidArgument
from capsa.oci.codec import from_dict
from capsa.oci.runtime_spec import Seccomp, SeccompSyscall

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_ARCH = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}


def _applies(rule: dict[str, Any], caps: set[str], arch: str) -> bool:
    inc = rule.get("includes") or {}
    exc = rule.get("excludes") or {}
    if inc.get("caps") and not set(inc["caps"]) <= caps:
        return False
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if exc.get("caps") and set(exc["caps"]) & caps:
        return False
    return not (exc.get("arches") and arch in exc["arches"])


def parse_docker_profile(text: str, caps: set[str]) -> Seccomp:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise InvalidArgument(f"decoding seccomp profile failed: {e}") from None
    if not isinstance(data, dict):
        raise InvalidArgument("decoding seccomp profile failed: expected an object")
    machine = os.uname().machine
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    rules = []
    for i, rule in enumerate(data.get("syscalls") or []):
        if not isinstance(rule, dict):
            raise InvalidArgument(f"seccomp profile: syscalls[{i}] must be an object")
        if not _applies(rule, caps, arch):
            continue
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        entry = {
            k: v for k, v in rule.items() if k not in ("includes", "excludes", "name", "comment")
        }
        entry["names"] = names
        rules.append(from_dict(SeccompSyscall, entry, f"seccomp.syscalls[{i}]"))
    arches = list(data.get("architectures") or [])
    for item in data.get("archMap") or []:
        if item.get("architecture") == _ARCH.get(machine):
            arches = [item["architecture"], *item.get("subArchitectures", [])]
    return Seccomp(
        default_action=str(data.get("defaultAction") or "SCMP_ACT_ERRNO"),
        default_errno_ret=data.get("defaultErrnoRet"),
        architectures=arches or None,
        flags=data.get("flags"),
        syscalls=rules or None,
    )
