"""Per-container runtime state under ``--root``: one directory per container.

``state.json`` is written atomically and holds what the runtime needs after the
creating process is gone: the init pid (with its start time, against pid reuse),
the bundle, the cgroup path and the config as created.
"""

from __future__ import annotations

import os

from capsa import fastjson
from capsa.errors import AlreadyExists, InvalidArgument, NotFound, os_reason
from capsa.linux.atomicfile import write_atomic
from capsa.record import asdict, field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_ID_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ID_CHARS = _ID_FIRST | frozenset("_.+-")
STATE_FILE = "state.json"
FIFO_NAME = "exec.fifo"


@record
class ContainerState:
    id: str
    bundle: str
    rootfs: str
    cgroups_path: str
    created: str
    # per tree (Hierarchy.name), where a relative cgroupsPath landed in different places
    cgroup_paths: dict[str, str] = field(default_factory=dict)
    owner: str = ""
    pid: int = 0
    pid_start: int = 0
    created_status: str = "creating"
    annotations: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    systemd_cgroup: bool = False

    def to_bytes(self) -> bytes:
        return fastjson.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> ContainerState:
        return cls(**fastjson.loads(raw))


def _valid_id(container_id: str) -> bool:
    """``[A-Za-z0-9][A-Za-z0-9_.+-]{0,1023}``, without ``re``'s import cost."""
    return (
        0 < len(container_id) <= 1024
        and container_id[0] in _ID_FIRST
        and set(container_id) <= _ID_CHARS
    )


def validate_id(container_id: str) -> None:
    if not _valid_id(container_id):
        raise InvalidArgument(f"invalid container id {container_id!r}")


class StateStore:
    """The directory tree under ``--root``."""

    def __init__(self, root: str) -> None:
        self.root = root

    def dir(self, container_id: str) -> str:
        validate_id(container_id)
        return os.path.join(self.root, container_id)

    def fifo(self, container_id: str) -> str:
        return os.path.join(self.dir(container_id), FIFO_NAME)

    def reserve(self, container_id: str) -> str:
        """Create the container's directory; fail if it exists."""
        path = self.dir(container_id)
        try:
            os.makedirs(self.root, mode=0o700, exist_ok=True)
            os.mkdir(path, 0o711)
        except FileExistsError:
            raise AlreadyExists(f"container {container_id} already exists") from None
        except OSError as e:
            raise InvalidArgument(f"cannot create {e.filename or path}: {os_reason(e)}") from None
        return path

    def save(self, state: ContainerState) -> None:
        write_atomic(os.path.join(self.dir(state.id), STATE_FILE), state.to_bytes(), durable=False)

    def load(self, container_id: str) -> ContainerState:
        path = os.path.join(self.dir(container_id), STATE_FILE)
        try:
            with open(path, "rb") as f:
                return ContainerState.from_bytes(f.read())
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"container {container_id} does not exist") from None

    def exists(self, container_id: str) -> bool:
        return os.path.isdir(self.dir(container_id))

    def remove(self, container_id: str) -> None:
        """Remove the container's directory (a few files: no shutil needed)."""
        top = self.dir(container_id)
        for parent, dirs, files in os.walk(top, topdown=False):
            for name in files:
                try:
                    os.unlink(os.path.join(parent, name))
                except FileNotFoundError:
                    pass
            for name in dirs:
                try:
                    os.rmdir(os.path.join(parent, name))
                except FileNotFoundError:
                    pass
        try:
            os.rmdir(top)
        except FileNotFoundError:
            pass

    def ids(self) -> list[str]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        except OSError as e:
            raise InvalidArgument(f"cannot list {self.root}: {os_reason(e)}") from None
        return sorted(n for n in names if os.path.exists(os.path.join(self.root, n, STATE_FILE)))
