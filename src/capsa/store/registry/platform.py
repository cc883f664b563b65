"""Platforms: the host's, parsing ``os/arch[/variant]``, and choosing from an index.

Matching follows containerd's ``platforms.Only``: architecture aliases are
normalized (``x86_64`` -> ``amd64``, ``aarch64`` -> ``arm64``), ``arm64`` means
``arm64/v8``, ``arm`` means ``arm/v7``, and an ARM host also accepts older variants
(``arm/v7`` runs ``v6`` and ``v5`` images; ``arm64`` runs 32-bit ``arm``), ranked
below an exact match.
"""

from __future__ import annotations

import os

from capsa.errors import InvalidArgument, NotFound
from capsa.oci.image_spec import Platform

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.oci.image_spec import Descriptor, Index

_ARCH_ALIASES = {
    "x86_64": ("amd64", ""),
    "x86-64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", ""),
    "arm64": ("arm64", ""),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv5tel": ("arm", "v5"),
    "arm": ("arm", ""),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "386": ("386", ""),
}
_ARM_VARIANTS = ("v8", "v7", "v6", "v5")


def normalize(p: Platform) -> Platform:
    """Canonical os/architecture/variant (``linux/aarch64`` -> ``linux/arm64/v8``)."""
    arch, implied = _ARCH_ALIASES.get(p.architecture.lower(), (p.architecture.lower(), ""))
    variant = (p.variant or implied).lower()
    if arch == "arm64" and variant in ("", "8"):
        variant = "v8"
    elif arch == "arm" and variant in ("", "7", "8"):
        variant = "v7" if variant != "8" else "v8"
    elif arch == "arm" and variant in ("5", "6"):
        variant = "v" + variant
    elif arch == "amd64" and variant == "v1":
        variant = ""
    return Platform(architecture=arch, os=(p.os or "linux").lower(), variant=variant or None)


def host_platform() -> Platform:
    """The platform this machine runs natively (``linux/amd64``, ``linux/arm64/v8``...)."""
    machine = os.uname().machine
    return normalize(Platform(architecture=machine, os=os.uname().sysname.lower()))


def parse_platform(text: str) -> Platform:
    """``linux/arm64/v8``, ``linux/amd64`` or ``linux/arm/v7`` -> a normalized Platform."""
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidArgument(f"invalid platform {text!r}: expected os/arch[/variant]")
    variant = parts[2] if len(parts) == 3 else None
    return normalize(Platform(architecture=parts[1], os=parts[0], variant=variant))


def compatible(want: Platform) -> list[Platform]:
    """Platforms an image may have to run on ``want``, best first."""
    want = normalize(want)
    out = [want]
    if want.architecture == "arm64":
        out += [Platform(architecture="arm", os=want.os, variant=v) for v in _ARM_VARIANTS]
    elif want.architecture == "arm" and want.variant in _ARM_VARIANTS:
        older = _ARM_VARIANTS[_ARM_VARIANTS.index(want.variant) + 1 :]
        out += [Platform(architecture="arm", os=want.os, variant=v) for v in older]
    return out


def rank(want: Platform, have: Platform) -> int | None:
    """Position of ``have`` in ``compatible(want)`` (0 = exact), None if it cannot run."""
    have = normalize(have)
    for i, candidate in enumerate(compatible(want)):
        if (have.os, have.architecture) != (candidate.os, candidate.architecture):
            continue
        if candidate.variant is None or have.variant == candidate.variant:
            return i
    return None


def select_manifest(index: Index, want: Platform) -> Descriptor:
    """The index entry that best matches ``want`` (index order breaks ties)."""
    best: tuple[int, int] | None = None
    for pos, desc in enumerate(index.manifests):
        if desc.platform is None:
            continue
        r = rank(want, desc.platform)
        if r is not None and (best is None or (r, pos) < best):
            best = (r, pos)
    if best is None:
        raise NotFound(f"no matching manifest for {want} in the manifest list entries")
    return index.manifests[best[1]]
