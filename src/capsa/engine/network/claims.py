"""Subnets held by every capsa data root of this host, so that two roots never choose one.

A root's networks are records in its own ``networks.db``; a subnet is routed only while
its network is up. Two roots (two engines, a test beside a user's engine) that chose
subnets while the other's networks were down would both get the first free one, and
their bridges would fight over the route once both were up. So each root also lists its
subnets in a claim file of the host (``CLAIMS_DIR/<hash of the root>.json``): an
automatic choice skips what other roots claim, as it skips the host's routes. The
choice, its record and the claim are made under one host-wide lock.

A claim is stale once its root has no ``networks.db`` (the root was deleted): it is
ignored and removed. Claims are rewritten whenever a root adds, removes or brings up a
network, so a lost or deleted claim file comes back. Claims only steer automatic
choices: an explicit ``--subnet`` is the user's to pick, as with Docker.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

CLAIMS_DIR = "/var/lib/capsa-subnets"
LOCK_NAME = ".lock"


class SubnetClaims:
    """The claims of one root (``root``) among those of the host (``directory``)."""

    def __init__(self, root: str, directory: str) -> None:
        self.root = os.path.realpath(root)
        self.directory = directory
        digest = hashlib.sha256(self.root.encode()).hexdigest()[:16]
        self.path = os.path.join(directory, f"{digest}.json")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the host-wide lock: choose, record and publish without another root
        choosing in between. Without a claims directory (no permission), no lock."""
        try:
            os.makedirs(self.directory, mode=0o755, exist_ok=True)
            fd = os.open(
                os.path.join(self.directory, LOCK_NAME),
                os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                0o600,
            )
        except OSError:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def others(self) -> list[str]:
        """The subnets other live roots claim; stale claims are removed on the way."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        out: list[str] = []
        for name in sorted(names):
            path = os.path.join(self.directory, name)
            if not name.endswith(".json") or path == self.path:
                continue
            claim = _read(path)
            if claim is None:
                continue
            root, subnets = claim
            if root == self.root:
                continue
            if not os.path.exists(os.path.join(root, "networks.db")):
                with contextlib.suppress(OSError):
                    os.unlink(path)
                continue
            out += subnets
        return out

    def publish(self, subnets: Iterable[str]) -> None:
        """Claim exactly ``subnets`` for this root (none: the claim goes)."""
        wanted = sorted({s for s in subnets if s})
        try:
            if not wanted:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
                return
            os.makedirs(self.directory, mode=0o755, exist_ok=True)
            doc = {"root": self.root, "subnets": wanted}
            from capsa.linux.atomicfile import write_atomic

            write_atomic(self.path, json.dumps(doc).encode(), 0o644)
        except OSError:
            return  # claims steer choices; a root that cannot write them still works


def _read(path: str) -> tuple[str, list[str]] | None:
    """(root, subnets) of a claim file; None when it is unreadable or not a claim."""
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read(1 << 20))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    root, subnets = doc.get("root"), doc.get("subnets")
    if not isinstance(root, str) or not isinstance(subnets, list):
        return None
    return root, [s for s in subnets if isinstance(s, str)]
