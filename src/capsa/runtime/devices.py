"""Device cgroup rules every container gets, whatever its config denies.

As runc does: mknod of any node is allowed (access is what the rules control) and
the standard nodes are readable and writable, appended after the config's own
rules, so a deny-all config still works. A standard node that ``linux.devices``
redefines loses its default rule: the config decides about it. Devices listed in
``linux.devices`` get no rule of their own; the config's rules must allow them.
"""

from __future__ import annotations

from capsa.oci.runtime_spec import DeviceCgroup, Resources, Spec


def _allow(kind: str, major: int | None, minor: int | None, access: str) -> DeviceCgroup:
    return DeviceCgroup(allow=True, type=kind, major=major, minor=minor, access=access)


# (path or "" for rules that are not one node, rule)
DEFAULT_ALLOWED: tuple[tuple[str, DeviceCgroup], ...] = (
    ("", _allow("c", None, None, "m")),
    ("", _allow("b", None, None, "m")),
    ("/dev/null", _allow("c", 1, 3, "rwm")),
    ("/dev/random", _allow("c", 1, 8, "rwm")),
    ("/dev/full", _allow("c", 1, 7, "rwm")),
    ("/dev/tty", _allow("c", 5, 0, "rwm")),
    ("/dev/zero", _allow("c", 1, 5, "rwm")),
    ("/dev/urandom", _allow("c", 1, 9, "rwm")),
    ("/dev/console", _allow("c", 5, 1, "rwm")),
    ("", _allow("c", 136, None, "rwm")),  # /dev/pts/*
    ("/dev/ptmx", _allow("c", 5, 2, "rwm")),
    ("/dev/net/tun", _allow("c", 10, 200, "rwm")),
)


def effective_resources(spec: Spec) -> Resources | None:
    """The config's resources with the default devices allowed after its rules."""
    linux = spec.linux
    if linux is None or linux.resources is None or not linux.resources.devices:
        return linux.resources if linux else None
    redefined = {d.path for d in linux.devices or []}
    rules = list(linux.resources.devices)
    rules.extend(rule for path, rule in DEFAULT_ALLOWED if not path or path not in redefined)
    linux.resources.devices = rules
    return linux.resources
