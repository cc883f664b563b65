"""Parse the ``key=value`` report of probe.sh into something tests assert on."""

from __future__ import annotations

from dataclasses import dataclass, field

PROBE_PATH = "/probe"


@dataclass(frozen=True)
class ProbeMount:
    source: str
    target: str
    fstype: str
    options: tuple[str, ...]


@dataclass
class Probe:
    """Every key keeps all its values in order; most keys have exactly one."""

    values: dict[str, list[str]] = field(default_factory=dict)

    def get(self, key: str, default: str | None = None) -> str:
        found = self.values.get(key)
        if not found:
            if default is None:
                raise KeyError(f"probe reported no {key!r}")
            return default
        return found[-1]

    def all(self, key: str) -> list[str]:
        return list(self.values.get(key, []))

    def number(self, key: str) -> int:
        return int(self.get(key))

    def cap(self, kind: str) -> int:
        """A capability set (eff, prm, bnd, inh, amb) as a bit mask."""
        return int(self.get(f"cap_{kind}"), 16)

    @property
    def uid(self) -> int:
        return self.number("uid")

    @property
    def gid(self) -> int:
        return self.number("gid")

    @property
    def groups(self) -> list[int]:
        return [int(g) for g in self.get("groups", "").split()]

    @property
    def env(self) -> dict[str, str]:
        pairs = (line.partition("=") for line in self.all("env"))
        return {k: v for k, _, v in pairs}

    @property
    def fds(self) -> dict[int, str]:
        """Open fds of a child of the probe (0, 1, 2 and anything leaked) -> target."""
        pairs = (line.partition(" ") for line in self.all("fd"))
        return {int(n): target for n, _, target in pairs}

    @property
    def mounts(self) -> list[ProbeMount]:
        out = []
        for line in self.all("mount"):
            parts = line.split()
            if len(parts) >= 4:
                out.append(ProbeMount(parts[0], parts[1], parts[2], tuple(parts[3].split(","))))
        return out

    def mount(self, target: str) -> ProbeMount | None:
        """The topmost mount on ``target``, if any."""
        found = [m for m in self.mounts if m.target == target]
        return found[-1] if found else None

    def namespace(self, kind: str) -> str:
        """``ns_<kind>`` as readlink shows it, e.g. ``pid:[4026532201]``."""
        return self.get(f"ns_{kind}")

    def rlimit(self, name: str) -> tuple[str, str]:
        soft, _, hard = self.get(f"rlimit_{name}").partition(" ")
        return soft, hard


def parse_probe(text: str) -> Probe:
    probe = Probe()
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key and " " not in key:
            probe.values.setdefault(key, []).append(value)
    return probe


def caps_mask(names: list[str]) -> int:
    """The bit mask of capability names (``CAP_KILL`` ...), as /proc/self/status shows."""
    mask = 0
    for name in names:
        mask |= 1 << CAPABILITY_NUMBERS[name]
    return mask


_CAP_NAMES = (
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
    "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER "
    "SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE "
    "SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP "
    "MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF "
    "CHECKPOINT_RESTORE"
)
CAPABILITY_NUMBERS = {f"CAP_{name}": i for i, name in enumerate(_CAP_NAMES.split())}
