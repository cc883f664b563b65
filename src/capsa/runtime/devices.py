"""Device cgroup rules every container gets, whatever its config denies.

Like runc: mknod of any node is allowed (access is what the rules control), the
standard nodes are readable and writable, and each device in ``linux.devices`` is
allowed too, after the config's own rules, so a deny-all config still works.
"""

from __future__ import annotations

from capsa.oci.runtime_spec import DeviceCgroup, Resources, Spec


def _allow(kind: str, major: int | None, minor: int | None, access: str) -> DeviceCgroup:
    return DeviceCgroup(allow=True, type=kind, major=major, minor=minor, access=access)


DEFAULT_ALLOWED = (
    _allow("c", None, None, "m"),
    _allow("b", None, None, "m"),
    _allow("c", 1, 3, "rwm"),  # null
    _allow("c", 1, 8, "rwm"),  # random
    _allow("c", 1, 7, "rwm"),  # full
    _allow("c", 5, 0, "rwm"),  # tty
    _allow("c", 1, 5, "rwm"),  # zero
    _allow("c", 1, 9, "rwm"),  # urandom
    _allow("c", 5, 1, "rwm"),  # console
    _allow("c", 136, None, "rwm"),  # pts
    _allow("c", 5, 2, "rwm"),  # ptmx
    _allow("c", 10, 200, "rwm"),  # net/tun
)


def effective_resources(spec: Spec) -> Resources | None:
    """The config's resources with the default and configured devices allowed."""
    linux = spec.linux
    if linux is None:
        return None
    res = linux.resources or Resources()
    rules = list(res.devices or [])
    if not rules:
        return linux.resources
    rules.extend(DEFAULT_ALLOWED)
    for dev in linux.devices or []:
        kind = "c" if dev.type == "u" else dev.type
        rules.append(_allow(kind, dev.major, dev.minor, "rwm"))
    res.devices = rules
    return res
