"""The engine's one door: the protocol every frontend calls, local or remote.

``capsa.engine.local.LocalEngine`` implements it in this process and
``capsa.client.remote.RemoteEngine`` over a running ``capsa system service``
(``/capsa/v1``), as podman's CLI calls ``entities.ContainerEngine`` either way. Each
service lists the methods the frontends use, with the engine's typed option records in
and its reports out; the I/O verbs return objects the frontend pumps (an
``AttachStream``, an exec session, a launch to connect through, iterators of log
entries and events).

Only typing happens here: the types are imported for type checkers, and
``type_namespace`` imports them at run time for the client's codec, on first use.
"""

from __future__ import annotations

import builtins

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any, BinaryIO, Protocol

    from capsa.engine.containers.attach import AttachStream
    from capsa.engine.containers.log_reader import LogEntry
    from capsa.engine.containers.restore import RestoreReport
    from capsa.engine.containers.stats import Sample, TopResult
    from capsa.engine.containers.types import (
        ContainerFiles,
        ContainerRecord,
        ContainerSpec,
        ExecSpec,
        ExecStdio,
        LogOptions,
        PsOptions,
    )
    from capsa.engine.containers.update import ResourceUpdate
    from capsa.engine.explain.types import Explanation
    from capsa.engine.fsops.diff import Change
    from capsa.engine.fsops.types import CommitOptions, CopyOptions, PathStat
    from capsa.engine.images.types import (
        HistoryEntry,
        ImageDetail,
        ImageFilters,
        ImageSummary,
        ImportOptions,
        PruneReport,
        PullOptions,
        PushOptions,
        RemoveImagesOptions,
        RemoveReport,
    )
    from capsa.engine.network.types import Endpoint, Network, NetworkCreateOptions, NetworkFilters
    from capsa.engine.system.info import SystemInfo
    from capsa.engine.system.reports import ItemReport
    from capsa.engine.system.types import DiskUsage, SystemPruneOptions, SystemPruneReport
    from capsa.engine.volumes.types import (
        Volume,
        VolumeCreateOptions,
        VolumeFilters,
        VolumePruneReport,
    )
    from capsa.oci.image_spec import ImageConfig
    from capsa.progress import ProgressSink
else:
    Protocol = object

_NAMESPACE: dict[str, object] = {}


class Launch(Protocol):
    """A container being started with ``wait_attach``: ``connect`` gives the fd of a
    connection to its attach socket (greet it, then ``wait_ready``)."""

    warnings: builtins.list[str]

    def connect(self, timeout: float = 30.0) -> int: ...

    def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]: ...


class ExecHandle(Protocol):
    """A running exec: its pty's ``master`` (-1 without a terminal) for the frontend
    to pump, ``signal``, ``resize``, and ``wait`` for its exit code."""

    master: int

    def signal(self, signum: int) -> None: ...

    def resize(self, rows: int, cols: int) -> None: ...

    def wait(self) -> int: ...


class ContainerBatch(Protocol):
    """The verbs that take several names: one report per name, in order."""

    def inspect(self, names: builtins.list[str]) -> builtins.list[ItemReport[ContainerRecord]]: ...

    def start(self, names: builtins.list[str]) -> builtins.list[ItemReport[ContainerRecord]]: ...

    def stop(
        self, names: builtins.list[str], timeout: int | None = None, sig: int | None = None
    ) -> builtins.list[ItemReport[ContainerRecord]]: ...

    def restart(
        self, names: builtins.list[str], timeout: int | None = None
    ) -> builtins.list[ItemReport[ContainerRecord]]: ...

    def kill(
        self, names: builtins.list[str], sig: int
    ) -> builtins.list[ItemReport[ContainerRecord]]: ...

    def pause(self, names: builtins.list[str]) -> builtins.list[ItemReport[None]]: ...

    def unpause(self, names: builtins.list[str]) -> builtins.list[ItemReport[None]]: ...

    def remove(
        self, names: builtins.list[str], force: bool = False, volumes: bool = False
    ) -> builtins.list[ItemReport[str]]: ...

    def wait(
        self, names: builtins.list[str], condition: str = "not-running"
    ) -> builtins.list[ItemReport[int | None]]: ...


class Containers(Protocol):
    @property
    def each(self) -> ContainerBatch: ...

    def get(self, text: str) -> ContainerRecord: ...

    def list_containers(self, opts: PsOptions | None = None) -> builtins.list[ContainerRecord]: ...

    def create(
        self, spec: ContainerSpec, progress: ProgressSink | None = None
    ) -> ContainerRecord: ...

    def network_connect(
        self, text: str, network: str, aliases: builtins.list[str] | None = None, ip: str = ""
    ) -> None: ...

    def network_disconnect(self, text: str, network: str, force: bool = False) -> None: ...

    def start(self, text: str, wait_attach: bool = False) -> tuple[ContainerRecord, Launch | None]:
        """The record, and a ``Launch`` (None when it was running already)."""
        ...

    def stop(
        self, text: str, timeout: int | None = None, sig: int | None = None
    ) -> ContainerRecord: ...

    def restart(
        self, text: str, timeout: int | None = None, sig: int | None = None
    ) -> ContainerRecord: ...

    def kill(self, text: str, sig: int) -> ContainerRecord: ...

    def proxy_signal(self, text: str, sig: int) -> None: ...

    def pause(self, text: str) -> None: ...

    def unpause(self, text: str) -> None: ...

    def wait(self, text: str, condition: str = "not-running") -> int | None: ...

    def wait_for(self, rec: ContainerRecord, condition: str, began: float) -> int | None: ...

    def remove(self, text: str, force: bool = False, volumes: bool = False) -> str: ...

    def rename(self, text: str, name: str) -> None: ...

    def prune(
        self, filters: dict[str, builtins.list[str]] | None = None
    ) -> tuple[builtins.list[str], int]: ...

    def exec(self, text: str, spec: ExecSpec, stdio: ExecStdio) -> ExecHandle | None: ...

    def attach(self, text: str) -> AttachStream: ...

    def resize(self, text: str, rows: int, cols: int) -> None: ...

    def logs(
        self, text: str, opts: LogOptions, gone: Callable[[], bool] | None = None
    ) -> Iterator[LogEntry]: ...

    def stats(
        self, text: str, interval: float = 1.0, gone: Callable[[], bool] | None = None
    ) -> Iterator[Sample]: ...

    def sample(self, rec: ContainerRecord) -> Sample: ...

    def top(self, text: str, ps_args: builtins.list[str] | None = None) -> TopResult: ...

    def update(self, text: str, changes: ResourceUpdate) -> builtins.list[str]: ...

    def explain(self, text: str) -> Explanation: ...

    def image_config(self, rec: ContainerRecord) -> ImageConfig: ...

    def files(self, rec: ContainerRecord) -> ContainerFiles: ...

    def endpoints(self, rec: ContainerRecord) -> builtins.list[Endpoint]: ...

    def health(self, rec: ContainerRecord) -> dict[str, Any] | None: ...

    def rw_size(self, rec: ContainerRecord) -> int: ...

    def root_fs_size(self, rec: ContainerRecord, rw_size: int | None = None) -> int: ...


class Images(Protocol):
    def exists(self, text: str) -> bool: ...

    def pull(
        self, text: str, opts: PullOptions | None = None, progress: ProgressSink | None = None
    ) -> ImageSummary: ...

    def push(
        self, text: str, opts: PushOptions | None = None, progress: ProgressSink | None = None
    ) -> str: ...

    def login(self, server: str, username: str, password: str) -> None: ...

    def logout(self, server: str) -> bool: ...

    def list_images(
        self, filters: ImageFilters | None = None, include_intermediate: bool = False
    ) -> builtins.list[ImageSummary]: ...

    def inspect(self, text: str) -> ImageDetail: ...

    def inspect_each(self, texts: builtins.list[str]) -> builtins.list[ItemReport[ImageDetail]]: ...

    def history(self, text: str) -> builtins.list[HistoryEntry]: ...

    def tag(self, source: str, target: str) -> None: ...

    def remove(
        self, texts: builtins.list[str], opts: RemoveImagesOptions | None = None
    ) -> RemoveReport: ...

    def prune(
        self, all_images: bool = False, filters: dict[str, builtins.list[str]] | None = None
    ) -> PruneReport: ...

    def save(
        self, texts: builtins.list[str], out: BinaryIO, fmt: str = "docker-archive"
    ) -> None: ...

    def save_to_file(
        self, texts: builtins.list[str], path: str, fmt: str = "docker-archive"
    ) -> None: ...

    def load(
        self, stream: BinaryIO, progress: ProgressSink | None = None
    ) -> builtins.list[str]: ...

    def import_image(
        self,
        stream: BinaryIO,
        opts: ImportOptions | None = None,
        progress: ProgressSink | None = None,
    ) -> ImageSummary: ...


class Volumes(Protocol):
    def create(self, opts: VolumeCreateOptions) -> Volume: ...

    def get(self, name: str) -> Volume: ...

    def inspect_each(self, names: builtins.list[str]) -> builtins.list[ItemReport[Volume]]: ...

    def remove_each(
        self, names: builtins.list[str], force: bool = False
    ) -> builtins.list[ItemReport[None]]: ...

    def list(self, filters: VolumeFilters | None = None) -> builtins.list[Volume]: ...

    def remove(self, name: str, force: bool = False, leaving: str = "") -> None: ...

    def prune(
        self, filters: VolumeFilters | None = None, all_volumes: bool = False
    ) -> VolumePruneReport: ...


class Networks(Protocol):
    def create(self, opts: NetworkCreateOptions) -> Network: ...

    def get(self, name_or_id: str) -> Network: ...

    def inspect(self, name_or_id: str) -> Network: ...

    def inspect_each(self, names: builtins.list[str]) -> builtins.list[ItemReport[Network]]: ...

    def remove_each(self, names: builtins.list[str]) -> builtins.list[ItemReport[None]]: ...

    def list(self, filters: NetworkFilters | None = None) -> builtins.list[Network]: ...

    def endpoints_of(self, network: Network) -> builtins.list[Endpoint]: ...

    def remove(self, name_or_id: str) -> None: ...

    def prune(self, filters: NetworkFilters | None = None) -> builtins.list[str]: ...


class System(Protocol):
    def info(self) -> SystemInfo: ...

    def check_prune(self, opts: SystemPruneOptions) -> None: ...

    def prune(self, opts: SystemPruneOptions) -> SystemPruneReport: ...

    def disk_usage(self) -> DiskUsage: ...


class Events(Protocol):
    def stream(
        self,
        since: float | None,
        until: float | None,
        filters: dict[str, builtins.list[str]],
        stop: Callable[[], bool] | None = None,
    ) -> Iterator[dict[str, Any]]: ...


class Files(Protocol):
    """cp, export, diff and commit."""

    def stat_path(self, container: str, path: str) -> PathStat: ...

    def archive(
        self, container: str, path: str, out: BinaryIO, opts: CopyOptions | None = None
    ) -> Any: ...

    def extract(
        self, container: str, path: str, stream: BinaryIO, opts: CopyOptions | None = None
    ) -> None: ...

    def copy_from(
        self, container: str, src_path: str, dst_path: str, opts: CopyOptions | None = None
    ) -> None: ...

    def copy_to(
        self, container: str, src_path: str, dst_path: str, opts: CopyOptions | None = None
    ) -> None: ...

    def changes(self, container: str) -> builtins.list[Change]: ...

    def export(self, container: str, out: BinaryIO) -> None: ...

    def commit(self, container: str, opts: CommitOptions | None = None) -> str: ...


class Restore(Protocol):
    """``system restore``: after a reboot or a crash, settle the records and start the
    containers whose restart policy brings them back. It works on this host's state:
    through a remote engine ``run`` raises ``Unavailable`` (the service's host runs it)."""

    def run(self) -> RestoreReport: ...


class Engine(Protocol):
    """What a frontend holds: the services, and ``close`` when it is done."""

    @property
    def containers(self) -> Containers: ...

    @property
    def images(self) -> Images: ...

    @property
    def volumes(self) -> Volumes: ...

    @property
    def networks(self) -> Networks: ...

    @property
    def system(self) -> System: ...

    @property
    def events(self) -> Events: ...

    @property
    def fs(self) -> Files: ...

    @property
    def restore(self) -> Restore: ...

    def close(self) -> None: ...


def type_namespace() -> dict[str, object]:
    """The names this module's annotations use, imported (for the client's codec)."""
    if _NAMESPACE:
        return _NAMESPACE
    import collections.abc
    import types as types_module
    import typing

    from capsa.engine.containers import log_reader, stats, types, update
    from capsa.engine.explain import types as explain_types
    from capsa.engine.fsops import diff
    from capsa.engine.fsops import types as fs_types
    from capsa.engine.images import types as image_types
    from capsa.engine.network import types as network_types
    from capsa.engine.system import info, reports
    from capsa.engine.system import types as system_types
    from capsa.engine.volumes import types as volume_types
    from capsa.oci import image_spec
    from capsa.record import is_record

    names: dict[str, object] = {"builtins": builtins, "Any": typing.Any}
    for name in ("Callable", "Iterator", "Iterable", "Sequence", "Mapping"):
        names[name] = getattr(collections.abc, name)
    for module in (
        types,
        log_reader,
        stats,
        update,
        explain_types,
        diff,
        fs_types,
        image_types,
        network_types,
        reports,
        info,
        system_types,
        volume_types,
        image_spec,
    ):
        for name, value in vars(module).items():
            if isinstance(value, type) and (is_record(value) or _is_enum(value)):
                names.setdefault(name, value)
            elif isinstance(value, types_module.GenericAlias) and name[:1].isupper():
                names.setdefault(name, value)  # VolumeFilters = dict[str, list[str]]
    from capsa.engine.containers.attach import AttachStream

    names["AttachStream"] = AttachStream
    _NAMESPACE.update(names)
    return _NAMESPACE


def _is_enum(value: type) -> bool:
    return hasattr(value, "_value2member_map_")  # enum.Enum's and capsa.enums'


if TYPE_CHECKING:
    from capsa.engine.local import LocalEngine

    def _local_is_an_engine(engine: LocalEngine) -> Engine:
        return engine
