"""The collaborators a container operation needs, built lazily from settings.

Shared by the container service (in the CLI or API process) and the monitor, which
rebuilds it from its arguments after each exec.
"""

from __future__ import annotations

from capsa.errors import InvalidArgument

MONITOR_START = ("fork", "spawn")

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from capsa.config import Settings
    from capsa.engine.backend import RuntimeBackend
    from capsa.engine.containers.metadata import ContainerStore
    from capsa.engine.containers.paths import ContainerPaths
    from capsa.engine.monitor.args import Roots
    from capsa.engine.network.service import NetworkService
    from capsa.engine.system.events import EventLog
    from capsa.engine.volumes.service import VolumeService
    from capsa.store.content import ContentStore
    from capsa.store.images import ImageStore
    from capsa.store.snapshots import SnapshotStore


class ServiceContext:
    def __init__(self, settings: Settings, monitor_start: str = "fork") -> None:
        """``monitor_start``: how a container's monitor starts when no monitor host
        takes it, the frontend's policy: ``fork`` this process (a command-line
        process, single threaded, with the engine imported), or ``spawn`` a fresh
        interpreter (a server: threads, open state that a fork must not copy)."""
        if monitor_start not in MONITOR_START:
            raise InvalidArgument(f"monitor start policy {monitor_start!r}: fork or spawn")
        self.settings = settings
        self.monitor_start = monitor_start
        self._cache: dict[str, Any] = {}

    @classmethod
    def from_roots(cls, roots: Roots) -> ServiceContext:
        """The context of a monitor (or another process the engine starts), from the
        roots its launcher gave it (``roots()``)."""
        from capsa.config import Settings, load

        try:
            settings = load(
                root=roots.root, runroot=roots.runroot, config=roots.config or None, env={}
            )
        except Exception:
            settings = Settings(root=roots.root, runroot=roots.runroot)
        return cls(settings)

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> ServiceContext:
        """``from_roots`` for a request holding the roots as ``monitor_args`` gives them
        (other keys are the request's)."""
        from capsa.engine.monitor.args import Roots

        roots = Roots(root=args["root"], runroot=args["runroot"], config=args.get("config") or "")
        return cls.from_roots(roots)

    def roots(self) -> Roots:
        """This context's roots, for a process that rebuilds it (``from_roots``)."""
        from capsa.engine.monitor.args import Roots

        return Roots(
            root=self.settings.root,
            runroot=self.settings.runroot,
            config=self.settings.config_path or "",
        )

    def monitor_args(self) -> dict[str, Any]:
        """The roots as a plain object, for a request that also carries other keys
        (an exec's watcher: ``from_args``)."""
        settings = self.settings
        return {"root": settings.root, "runroot": settings.runroot, "config": settings.config_path}

    def _get(self, key: str, make: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def store(self) -> ContainerStore:
        from capsa.engine.containers.metadata import ContainerStore

        return self._get("store", lambda: ContainerStore(self.settings.root))

    @property
    def images(self) -> ImageStore:
        from capsa.store.images import ImageStore

        return self._get("images", lambda: ImageStore(self.settings.root))

    @property
    def content(self) -> ContentStore:
        from capsa.store.content import ContentStore

        return self._get("content", lambda: ContentStore(self.settings.root))

    @property
    def snapshots(self) -> SnapshotStore:
        from capsa.store.snapshots import SnapshotStore

        return self._get("snapshots", lambda: SnapshotStore(self.settings.root))

    @property
    def volumes(self) -> VolumeService:
        from capsa.engine.volumes.service import VolumeService

        return self._get("volumes", lambda: VolumeService(self.settings, self._volume_refs))

    def _volume_refs(self) -> dict[str, list[str]]:
        """Volume name -> the containers (running or not) that mount it."""
        refs: dict[str, list[str]] = {}
        for rec in self.store.list():
            for m in rec.spec.mounts:
                if m.type == "volume" and m.source:
                    refs.setdefault(m.source, []).append(rec.id)
        return refs

    @property
    def networks(self) -> NetworkService:
        from capsa.engine.network.service import NetworkService

        def exists(container_id: str) -> bool:
            try:
                self.store.get(container_id)
            except Exception:
                return False
            return True

        return self._get("networks", lambda: NetworkService(self.settings, container_exists=exists))

    @property
    def events(self) -> EventLog:
        from capsa.engine.system.events import EventLog

        return self._get("events", lambda: EventLog(self.settings.root))

    @property
    def runtime_root(self) -> str:
        from capsa.engine.containers.paths import runtime_root

        return runtime_root(self.settings.runroot)

    def backend(self, name: str = "") -> RuntimeBackend:
        from capsa.engine.backend import make_backend

        return self._get(f"backend:{name}", lambda: make_backend(name, self.runtime_root))

    def paths(self, container_id: str) -> ContainerPaths:
        from capsa.engine.containers.paths import ContainerPaths

        return ContainerPaths(self.settings.root, self.settings.runroot, container_id)

    def close(self) -> None:
        """Close every database handle (before a fork: SQLite handles must not cross
        one). The services are rebuilt on next use."""
        for key in ("store", "images", "snapshots", "volumes", "networks"):
            obj = self._cache.pop(key, None)
            if obj is not None:
                obj.close()
