"""Linux capabilities: names, masks, and the five sets of the calling process.

Masks are plain ints (bit N = capability N). The runtime's container init calls, in
this order, right before execve: ``drop_bounding`` -> ``set_keepcaps(True)`` ->
setgroups/setgid/setuid -> ``set_keepcaps(False)`` -> ``apply``. Everything needed there
is imported at module top: nothing is loaded late inside the forked child.
"""

from __future__ import annotations

import errno
import sys

from capsa.errors import InvalidArgument, PermissionDenied
from capsa.linux import libc, syscalls
from capsa.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: keep the import of this module light
    from collections.abc import Callable, Iterable

    from capsa.oci.runtime_spec import Capabilities

CAPABILITIES: dict[str, int] = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}
_BY_NUMBER = {v: k for k, v in CAPABILITIES.items()}

# Docker's default capability set (moby oci/caps/defaults.go).
DOCKER_DEFAULT_CAPS: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

_LAST_CAP_PATH = "/proc/sys/kernel/cap_last_cap"
_CAPABILITY_VERSION_3 = 0x20080522
_STATUS_KEYS = {
    "CapInh": "inheritable",
    "CapPrm": "permitted",
    "CapEff": "effective",
    "CapBnd": "bounding",
    "CapAmb": "ambient",
}


@record
class CapSets:
    bounding: int = 0
    effective: int = 0
    permitted: int = 0
    inheritable: int = 0
    ambient: int = 0


def last_cap() -> int:
    """The highest capability number the running kernel knows."""
    try:
        with open(_LAST_CAP_PATH, "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return max(CAPABILITIES.values())


def canonical(name: str) -> str:
    """``net_raw`` / ``NET_RAW`` / ``cap_net_raw`` -> ``CAP_NET_RAW``; unknown -> error."""
    upper = name.strip().upper()
    full = upper if upper.startswith("CAP_") else f"CAP_{upper}"
    if full not in CAPABILITIES:
        raise InvalidArgument(f"unknown capability {full}")
    return full


def parse(
    names: Iterable[str] | None,
    *,
    last: int | None = None,
    warn: Callable[[str], None] | None = None,
) -> int:
    """Mask of ``names``; capabilities the kernel lacks (above ``last``) are dropped."""
    top = last_cap() if last is None else last
    mask = 0
    for name in names or ():
        full = canonical(name)
        number = CAPABILITIES[full]
        if number > top:
            if warn is not None:
                warn(f"capability {full} is not supported by the kernel, ignored")
            continue
        mask |= 1 << number
    return mask


def names(mask: int) -> list[str]:
    """Capability names of ``mask`` in number order; unknown bits are shown as ``CAP_<n>``."""
    out = []
    for bit in range(mask.bit_length()):
        if mask >> bit & 1:
            out.append(_BY_NUMBER.get(bit, f"CAP_{bit}"))
    return out


def from_spec(
    caps: Capabilities | None,
    *,
    last: int | None = None,
    warn: Callable[[str], None] | None = None,
) -> CapSets:
    """The five masks of an OCI ``process.capabilities`` (absent set = empty)."""
    if caps is None:
        return CapSets()
    top = last_cap() if last is None else last
    return CapSets(
        bounding=parse(caps.bounding, last=top, warn=warn),
        effective=parse(caps.effective, last=top, warn=warn),
        permitted=parse(caps.permitted, last=top, warn=warn),
        inheritable=parse(caps.inheritable, last=top, warn=warn),
        ambient=parse(caps.ambient, last=top, warn=warn),
    )


def parse_status(text: str) -> CapSets:
    """CapSets from the text of a ``/proc/<pid>/status`` file."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        field = _STATUS_KEYS.get(key)
        if field is not None:
            values[field] = int(value.strip(), 16)
    return CapSets(**values)


def current(pid: int | str = "self") -> CapSets:
    """The capability sets of ``pid`` (default: the calling process)."""
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
        return parse_status(f.read())


def drop_bounding(sets: CapSets, *, last: int | None = None) -> None:
    """Drop every capability outside ``sets.bounding`` from the bounding set."""
    top = last_cap() if last is None else last
    for number in range(top + 1):
        if sets.bounding >> number & 1:
            continue
        try:
            syscalls.prctl(syscalls.PR_CAPBSET_DROP, number)
        except OSError as e:
            if e.errno == errno.EINVAL:  # not known to this kernel
                continue
            raise PermissionDenied(f"drop capability {_name(number)} from bounding set: {e}") from e


def set_keepcaps(on: bool) -> None:
    """Keep the permitted set across setuid() away from root (PR_SET_KEEPCAPS)."""
    syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 1 if on else 0)


def apply(sets: CapSets) -> None:
    """Set effective/permitted/inheritable with capset(2), then the ambient set."""
    # struct __user_cap_header_struct {u32 version; int pid}, then two
    # struct __user_cap_data_struct {u32 effective, permitted, inheritable}
    header = bytearray(_CAPABILITY_VERSION_3.to_bytes(4, sys.byteorder) + bytes(4))
    data = bytearray()
    for word in range(2):
        for value in (sets.effective, sets.permitted, sets.inheritable):
            data += ((value >> (32 * word)) & 0xFFFFFFFF).to_bytes(4, sys.byteorder)
    try:
        libc.call("capset", libc.buffer(header), libc.buffer(data))
    except OSError as e:
        raise PermissionDenied(f"set capabilities: {e.strerror}") from None
    # The kernel only lets a capability be ambient when it is both permitted and
    # inheritable; like runc, others named in the spec are skipped, not an error.
    _apply_ambient(sets.ambient & sets.permitted & sets.inheritable)


def _apply_ambient(mask: int) -> None:
    try:
        syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError as e:
        if mask == 0 and e.errno == errno.EINVAL:  # kernel without ambient capabilities
            return
        raise PermissionDenied(f"clear ambient capabilities: {e.strerror}") from e
    for bit in range(mask.bit_length()):
        if not mask >> bit & 1:
            continue
        try:
            syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_RAISE, bit)
        except OSError as e:
            # Raising needs the capability in both the permitted and inheritable sets.
            raise PermissionDenied(f"raise ambient capability {_name(bit)}: {e.strerror}") from e


def _name(number: int) -> str:
    return _BY_NUMBER.get(number, f"CAP_{number}")
