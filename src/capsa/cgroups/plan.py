"""What the controller modules produce: a list of file writes, planned before any is made.

Planning first means every value is validated before the first write, so an invalid
resource set leaves the cgroup untouched. Drivers execute the writes in order.
"""

from __future__ import annotations

from capsa.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol
else:  # the protocol is for type checkers; at run time it is a plain class
    Protocol = object

# hierarchy key of the v2 directory: the only one in v2, the unified tree in hybrid mode
UNIFIED = ""


@record(frozen=True)
class Write:
    hierarchy: str  # v1: a controller of the hierarchy holding the file; UNIFIED for v2
    file: str
    value: str
    name: str  # the limit in spec terms, e.g. "memory.limit"
    restorable: bool = True  # the file holds one value we can read and write back
    check: bool = True  # compare on read back


@record
class Plan:
    writes: list[Write] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, hierarchy: str, file: str, value: str | int, name: str, **kw: bool) -> None:
        self.writes.append(Write(hierarchy, file, str(value), name, **kw))

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


class Context(Protocol):
    """What a planner may ask about the cgroup it plans for."""

    version: int  # 1 (v1 and hybrid) or 2
    hugepage_sizes: tuple[str, ...]
    unified_controllers: frozenset[str]  # v2: controllers of the cgroup; hybrid: unified tree

    def mounted(self, hierarchy: str) -> bool:
        """Whether the hierarchy holding ``hierarchy`` (a controller) exists."""
        ...

    def has(self, hierarchy: str, file: str) -> bool: ...

    def read(self, hierarchy: str, file: str) -> str | None: ...


@record(frozen=True)
class Enforced:
    """One limit asked for, and what the cgroup file says is in force."""

    name: str
    file: str
    asked: str
    in_force: str | None  # None: file missing or unreadable
    ok: bool


def _is_unlimited(text: str) -> bool:
    if text in ("max", "-1"):
        return True
    try:
        return int(text) >= 1 << 62
    except ValueError:
        return False


def _line_for(asked: str, content: str) -> str:
    """The line of a multi-entry file (io.max, blkio throttle) that ``asked`` targets."""
    key = asked.split()[0] if asked.split() else ""
    lines = content.strip().splitlines()
    if ":" in key or key == "default":
        for line in lines:
            if line.split() and line.split()[0] == key:
                return line.strip()
        return ""
    return lines[0].strip() if lines else ""


def compare(write: Write, content: str | None) -> Enforced:
    if content is None:
        return Enforced(write.name, write.file, write.value, None, False)
    line = _line_for(write.value, content)
    asked_tokens = write.value.split()
    have = line.split()
    ok = set(asked_tokens) <= set(have)
    if not ok and len(asked_tokens) == 1 and len(have) >= 1:
        ok = _is_unlimited(asked_tokens[0]) and _is_unlimited(have[0])
    if not ok and "=" in write.value:
        wanted = [t for t in asked_tokens[1:] if not t.endswith("=max")]
        ok = all(t in have for t in wanted)
    return Enforced(write.name, write.file, write.value, line, ok)
