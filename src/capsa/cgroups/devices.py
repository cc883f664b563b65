"""devices controller: the allow/deny list (v1 files; v2 via an eBPF program)."""

from __future__ import annotations

from capsa.cgroups.plan import Context, Plan
from capsa.errors import InvalidArgument
from capsa.oci.runtime_spec import DeviceCgroup
from capsa.record import record

H = "devices"


@record(frozen=True)
class Rule:
    type: str  # "a", "b" or "c"
    major: int  # -1: any
    minor: int  # -1: any
    access: str  # subset of "rwm"
    allow: bool


def to_rule(dev: DeviceCgroup) -> Rule:
    kind = dev.type or "a"
    access = dev.access or "rwm"
    if kind not in ("a", "b", "c"):
        raise InvalidArgument(f"invalid device type {kind!r} in device rule")
    if not access or set(access) - set("rwm"):
        raise InvalidArgument(f"invalid device access {access!r} in device rule")
    major = -1 if dev.major is None else dev.major
    minor = -1 if dev.minor is None else dev.minor
    if major < -1 or minor < -1 or major > 0xFFFFFFF or minor > 0xFFFFFFF:
        raise InvalidArgument(f"invalid device number {major}:{minor} in device rule")
    return Rule(kind, major, minor, "".join(c for c in "rwm" if c in access), dev.allow)


def rules(devices: list[DeviceCgroup]) -> list[Rule]:
    return [to_rule(d) for d in devices]


def v1_line(rule: Rule) -> str:
    """``c 1:3 rwm``, with ``*`` for any number; plain ``a`` for every device."""
    if rule.type == "a" and rule.major == -1 and rule.minor == -1:
        return "a *:* rwm"
    major = "*" if rule.major == -1 else str(rule.major)
    minor = "*" if rule.minor == -1 else str(rule.minor)
    return f"{rule.type} {major}:{minor} {rule.access}"


def plan_v1(devices: list[DeviceCgroup] | None, ctx: Context, plan: Plan) -> None:
    """Deny everything first, then replay the rules in order, as runc does."""
    if devices is None:
        return
    parsed = rules(devices)
    if not ctx.mounted(H):
        plan.warn("device rules not enforced: devices controller not mounted")
        return
    plan.add(H, "devices.deny", "a", "devices", restorable=False, check=False)
    for rule in parsed:
        file = "devices.allow" if rule.allow else "devices.deny"
        plan.add(H, file, v1_line(rule), "devices", restorable=False, check=False)
