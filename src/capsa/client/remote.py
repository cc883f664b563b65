"""``RemoteEngine``: the engine's protocol (``capsa.engine.protocol``) over a running
``capsa system service``, through capsa's own endpoints (``capsa.api.routes_capsa``).

Each method sends its arguments as JSON and decodes the answer by the protocol's
return annotation, so a frontend gets the same records and the same error kinds as
from ``LocalEngine``. The I/O verbs get objects of the same shape: an ``AttachStream``
over a hijacked connection, a launch whose ``connect`` gives that connection's fd, an
exec session pumping the caller's fds, iterators of log entries and events.

What cannot work from another machine's point of view says so in one line: paths on
this host (``cp`` to or from a host path, ``save -o``) are not the server's.
"""

from __future__ import annotations

from capsa.client import codec
from capsa.client.transport import Transport, socket_path
from capsa.errors import NotFound, Unavailable

TYPE_CHECKING = False
if TYPE_CHECKING:
    import builtins
    from collections.abc import Callable, Iterator
    from typing import Any, BinaryIO, NoReturn

    from capsa.client.streams import RemoteExec, RemoteLaunch, Started
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

PREFIX = "/capsa/v1"


def not_remote(what: str) -> Unavailable:
    return Unavailable(f"{what} is not supported through --host (the service's paths are not ours)")


class _Service:
    """One service of the protocol: ``_call`` sends a method's arguments and decodes
    its answer by the protocol's annotation."""

    _name = ""
    _protocol = ""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    if not TYPE_CHECKING:  # hidden from mypy, which would take it for every member

        def __getattr__(self, name: str) -> NoReturn:
            """What a command reaches past the protocol fails in one clear line."""
            if name.startswith("_"):
                raise AttributeError(name)
            raise Unavailable(
                f"this command uses the local engine's {name!r}, which is not part of "
                "the engine's protocol: it cannot run through --host"
            )

    def _call(self, method: str, progress: ProgressSink | None = None, **args: Any) -> Any:
        from capsa.engine import protocol

        fn = getattr(getattr(protocol, self._protocol), method)
        url = f"{PREFIX}/call/{self._name}/{method}"
        body: dict[str, Any] = {"args": {k: codec.encode(v) for k, v in args.items()}}
        returns = codec.hints(fn).get("return")
        if progress is None:
            answer = self._transport.call(url, body)
            return codec.decode(returns, (answer or {}).get("result"), "result")
        from capsa.progress import ProgressEvent

        body["progress"] = True
        for doc in self._transport.lines(url, body):
            if "progress" in doc:
                progress.emit(codec.decode(ProgressEvent, doc["progress"], "progress"))
            elif "error" in doc:
                raise codec.error_from(doc["error"])
            elif "result" in doc:
                return codec.decode(returns, doc["result"], "result")
        raise Unavailable("the capsa service ended the answer early")


class RemoteBatch(_Service):
    _name, _protocol = "containers.each", "ContainerBatch"

    def inspect(self, names: builtins.list[str]) -> builtins.list[ItemReport[ContainerRecord]]:
        return self._call("inspect", names=names)

    def start(self, names: builtins.list[str]) -> builtins.list[ItemReport[ContainerRecord]]:
        return self._call("start", names=names)

    def stop(
        self, names: builtins.list[str], timeout: int | None = None, sig: int | None = None
    ) -> builtins.list[ItemReport[ContainerRecord]]:
        return self._call("stop", names=names, timeout=timeout, sig=sig)

    def restart(
        self, names: builtins.list[str], timeout: int | None = None
    ) -> builtins.list[ItemReport[ContainerRecord]]:
        return self._call("restart", names=names, timeout=timeout)

    def kill(
        self, names: builtins.list[str], sig: int
    ) -> builtins.list[ItemReport[ContainerRecord]]:
        return self._call("kill", names=names, sig=sig)

    def pause(self, names: builtins.list[str]) -> builtins.list[ItemReport[None]]:
        return self._call("pause", names=names)

    def unpause(self, names: builtins.list[str]) -> builtins.list[ItemReport[None]]:
        return self._call("unpause", names=names)

    def remove(
        self, names: builtins.list[str], force: bool = False, volumes: bool = False
    ) -> builtins.list[ItemReport[str]]:
        return self._call("remove", names=names, force=force, volumes=volumes)

    def wait(
        self, names: builtins.list[str], condition: str = "not-running"
    ) -> builtins.list[ItemReport[int | None]]:
        return self._call("wait", names=names, condition=condition)


class RemoteContainers(_Service):
    _name, _protocol = "containers", "Containers"

    @property
    def each(self) -> RemoteBatch:
        return RemoteBatch(self._transport)

    def get(self, text: str) -> ContainerRecord:
        return self._call("get", text=text)

    def list_containers(self, opts: PsOptions | None = None) -> builtins.list[ContainerRecord]:
        return self._call("list_containers", opts=opts)

    def create(self, spec: ContainerSpec, progress: ProgressSink | None = None) -> ContainerRecord:
        return self._call("create", progress, spec=spec)

    def network_connect(
        self, text: str, network: str, aliases: builtins.list[str] | None = None, ip: str = ""
    ) -> None:
        self._call("network_connect", text=text, network=network, aliases=aliases, ip=ip)

    def network_disconnect(self, text: str, network: str, force: bool = False) -> None:
        self._call("network_disconnect", text=text, network=network, force=force)

    def start(
        self, text: str, wait_attach: bool = False
    ) -> tuple[ContainerRecord, RemoteLaunch | Started | None]:
        from capsa.client.streams import start

        return start(self._transport, text, wait_attach)

    def stop(
        self, text: str, timeout: int | None = None, sig: int | None = None
    ) -> ContainerRecord:
        return self._call("stop", text=text, timeout=timeout, sig=sig)

    def restart(
        self, text: str, timeout: int | None = None, sig: int | None = None
    ) -> ContainerRecord:
        return self._call("restart", text=text, timeout=timeout, sig=sig)

    def kill(self, text: str, sig: int) -> ContainerRecord:
        return self._call("kill", text=text, sig=sig)

    def proxy_signal(self, text: str, sig: int) -> None:
        self._call("proxy_signal", text=text, sig=sig)

    def pause(self, text: str) -> None:
        self._call("pause", text=text)

    def unpause(self, text: str) -> None:
        self._call("unpause", text=text)

    def wait(self, text: str, condition: str = "not-running") -> int | None:
        return self._call("wait", text=text, condition=condition)

    def wait_for(self, rec: ContainerRecord, condition: str, began: float) -> int | None:
        return self._call("wait_for", rec=rec, condition=condition, began=began)

    def remove(self, text: str, force: bool = False, volumes: bool = False) -> str:
        return self._call("remove", text=text, force=force, volumes=volumes)

    def rename(self, text: str, name: str) -> None:
        self._call("rename", text=text, name=name)

    def prune(
        self, filters: dict[str, builtins.list[str]] | None = None
    ) -> tuple[builtins.list[str], int]:
        return self._call("prune", filters=filters)

    def exec(self, text: str, spec: ExecSpec, stdio: ExecStdio) -> RemoteExec | None:
        from capsa.client.streams import exec_

        return exec_(self._transport, text, spec, stdio)

    def attach(self, text: str) -> AttachStream:
        from capsa.client.streams import attach

        return attach(self._transport, text)

    def resize(self, text: str, rows: int, cols: int) -> None:
        self._call("resize", text=text, rows=rows, cols=cols)

    def logs(
        self, text: str, opts: LogOptions, gone: Callable[[], bool] | None = None
    ) -> Iterator[LogEntry]:
        from capsa.engine.containers.log_reader import LogEntry

        body = {"text": text, "opts": codec.encode(opts)}
        for doc in self._transport.lines(PREFIX + "/logs", body):
            if "error" in doc:
                raise codec.error_from(doc["error"])
            if "item" in doc:
                yield codec.decode(LogEntry, doc["item"], "log entry")
            if gone is not None and gone():
                return

    def stats(
        self, text: str, interval: float = 1.0, gone: Callable[[], bool] | None = None
    ) -> Iterator[Sample]:
        """The local engine's stream, made of remote samples."""
        rec = self.get(text)  # not found: now, not at the first sample
        return self._sampling(rec.id, interval, gone)

    def _sampling(
        self, container_id: str, interval: float, gone: Callable[[], bool] | None
    ) -> Iterator[Sample]:
        import time

        while True:
            began = time.monotonic()
            try:
                current = self.sample(self.get(container_id))
            except NotFound:
                return
            yield current
            if not current.running:
                return
            while time.monotonic() - began < interval:
                if gone is not None and gone():
                    return
                time.sleep(min(0.1, max(0.0, interval - (time.monotonic() - began))))

    def sample(self, rec: ContainerRecord) -> Sample:
        return self._call("sample", rec=rec)

    def top(self, text: str, ps_args: builtins.list[str] | None = None) -> TopResult:
        return self._call("top", text=text, ps_args=ps_args)

    def update(self, text: str, changes: ResourceUpdate) -> builtins.list[str]:
        return self._call("update", text=text, changes=changes)

    def explain(self, text: str) -> Explanation:
        return self._call("explain", text=text)

    def image_config(self, rec: ContainerRecord) -> ImageConfig:
        return self._call("image_config", rec=rec)

    def files(self, rec: ContainerRecord) -> ContainerFiles:
        return self._call("files", rec=rec)

    def endpoints(self, rec: ContainerRecord) -> builtins.list[Endpoint]:
        return self._call("endpoints", rec=rec)

    def health(self, rec: ContainerRecord) -> dict[str, Any] | None:
        return self._call("health", rec=rec)

    def rw_size(self, rec: ContainerRecord) -> int:
        return self._call("rw_size", rec=rec)

    def root_fs_size(self, rec: ContainerRecord, rw_size: int | None = None) -> int:
        return self._call("root_fs_size", rec=rec, rw_size=rw_size)


class RemoteImages(_Service):
    _name, _protocol = "images", "Images"

    def exists(self, text: str) -> bool:
        return self._call("exists", text=text)

    def pull(
        self, text: str, opts: PullOptions | None = None, progress: ProgressSink | None = None
    ) -> ImageSummary:
        return self._call("pull", progress, text=text, opts=opts)

    def push(
        self, text: str, opts: PushOptions | None = None, progress: ProgressSink | None = None
    ) -> str:
        return self._call("push", progress, text=text, opts=opts)

    def login(self, server: str, username: str, password: str) -> None:
        self._call("login", server=server, username=username, password=password)

    def logout(self, server: str) -> bool:
        return self._call("logout", server=server)

    def list_images(
        self, filters: ImageFilters | None = None, include_intermediate: bool = False
    ) -> builtins.list[ImageSummary]:
        return self._call("list_images", filters=filters, include_intermediate=include_intermediate)

    def inspect(self, text: str) -> ImageDetail:
        return self._call("inspect", text=text)

    def inspect_each(self, texts: builtins.list[str]) -> builtins.list[ItemReport[ImageDetail]]:
        return self._call("inspect_each", texts=texts)

    def history(self, text: str) -> builtins.list[HistoryEntry]:
        return self._call("history", text=text)

    def tag(self, source: str, target: str) -> None:
        self._call("tag", source=source, target=target)

    def remove(
        self, texts: builtins.list[str], opts: RemoveImagesOptions | None = None
    ) -> RemoveReport:
        return self._call("remove", texts=texts, opts=opts)

    def prune(
        self, all_images: bool = False, filters: dict[str, builtins.list[str]] | None = None
    ) -> PruneReport:
        return self._call("prune", all_images=all_images, filters=filters)

    def save(self, texts: builtins.list[str], out: BinaryIO, fmt: str = "docker-archive") -> None:
        from capsa.client.streams import download

        download(self._transport, "/images/save", {"texts": texts, "fmt": fmt}, out)

    def save_to_file(
        self, texts: builtins.list[str], path: str, fmt: str = "docker-archive"
    ) -> None:
        with open(path, "wb") as out:
            self.save(texts, out, fmt)

    def load(self, stream: BinaryIO, progress: ProgressSink | None = None) -> builtins.list[str]:
        from capsa.client.streams import upload

        doc = upload(self._transport, "/images/load", {}, stream)
        return [str(name) for name in doc]

    def import_image(
        self,
        stream: BinaryIO,
        opts: ImportOptions | None = None,
        progress: ProgressSink | None = None,
    ) -> ImageSummary:
        from capsa.client.streams import upload
        from capsa.engine.images.types import ImageSummary

        doc = upload(self._transport, "/images/import", {"opts": codec.encode(opts)}, stream)
        return codec.decode(ImageSummary, doc, "result")


class RemoteVolumes(_Service):
    _name, _protocol = "volumes", "Volumes"

    def create(self, opts: VolumeCreateOptions) -> Volume:
        return self._call("create", opts=opts)

    def get(self, name: str) -> Volume:
        return self._call("get", name=name)

    def inspect_each(self, names: builtins.list[str]) -> builtins.list[ItemReport[Volume]]:
        return self._call("inspect_each", names=names)

    def remove_each(
        self, names: builtins.list[str], force: bool = False
    ) -> builtins.list[ItemReport[None]]:
        return self._call("remove_each", names=names, force=force)

    def list(self, filters: VolumeFilters | None = None) -> builtins.list[Volume]:
        return self._call("list", filters=filters)

    def remove(self, name: str, force: bool = False, leaving: str = "") -> None:
        self._call("remove", name=name, force=force, leaving=leaving)

    def prune(
        self, filters: VolumeFilters | None = None, all_volumes: bool = False
    ) -> VolumePruneReport:
        return self._call("prune", filters=filters, all_volumes=all_volumes)


class RemoteNetworks(_Service):
    _name, _protocol = "networks", "Networks"

    def create(self, opts: NetworkCreateOptions) -> Network:
        return self._call("create", opts=opts)

    def get(self, name_or_id: str) -> Network:
        return self._call("get", name_or_id=name_or_id)

    def inspect(self, name_or_id: str) -> Network:
        return self._call("inspect", name_or_id=name_or_id)

    def inspect_each(self, names: builtins.list[str]) -> builtins.list[ItemReport[Network]]:
        return self._call("inspect_each", names=names)

    def remove_each(self, names: builtins.list[str]) -> builtins.list[ItemReport[None]]:
        return self._call("remove_each", names=names)

    def list(self, filters: NetworkFilters | None = None) -> builtins.list[Network]:
        return self._call("list", filters=filters)

    def endpoints_of(self, network: Network) -> builtins.list[Endpoint]:
        return self._call("endpoints_of", network=network)

    def remove(self, name_or_id: str) -> None:
        self._call("remove", name_or_id=name_or_id)

    def prune(self, filters: NetworkFilters | None = None) -> builtins.list[str]:
        return self._call("prune", filters=filters)


class RemoteSystem(_Service):
    _name, _protocol = "system", "System"

    def info(self) -> SystemInfo:
        return self._call("info")

    def check_prune(self, opts: SystemPruneOptions) -> None:
        self._call("check_prune", opts=opts)

    def prune(self, opts: SystemPruneOptions) -> SystemPruneReport:
        return self._call("prune", opts=opts)

    def disk_usage(self) -> DiskUsage:
        return self._call("disk_usage")


class RemoteEvents:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def stream(
        self,
        since: float | None,
        until: float | None,
        filters: dict[str, builtins.list[str]],
        stop: Callable[[], bool] | None = None,
    ) -> Iterator[dict[str, Any]]:
        body = {"since": since, "until": until, "filters": filters}
        for doc in self._transport.lines(PREFIX + "/events", body):
            if "error" in doc:
                raise codec.error_from(doc["error"])
            if "item" in doc and isinstance(doc["item"], dict):
                yield doc["item"]
            if stop is not None and stop():  # heartbeats ({}) come while nothing happens
                return


class RemoteFiles(_Service):
    _name, _protocol = "fs", "Files"

    def stat_path(self, container: str, path: str) -> PathStat:
        return self._call("stat_path", container=container, path=path)

    def archive(
        self, container: str, path: str, out: BinaryIO, opts: CopyOptions | None = None
    ) -> Any:
        from capsa.client.streams import download

        body = {"container": container, "path": path, "opts": codec.encode(opts)}
        download(self._transport, "/archive", body, out)

    def extract(
        self, container: str, path: str, stream: BinaryIO, opts: CopyOptions | None = None
    ) -> None:
        from capsa.client.streams import upload

        body = {"container": container, "path": path, "opts": codec.encode(opts)}
        upload(self._transport, "/extract", body, stream)

    def copy_from(
        self, container: str, src_path: str, dst_path: str, opts: CopyOptions | None = None
    ) -> None:
        from capsa.client.hostcopy import copy_from

        copy_from(self, container, src_path, dst_path, opts)

    def copy_to(
        self, container: str, src_path: str, dst_path: str, opts: CopyOptions | None = None
    ) -> None:
        from capsa.client.hostcopy import copy_to

        copy_to(self, container, src_path, dst_path, opts)

    def changes(self, container: str) -> builtins.list[Change]:
        return self._call("changes", container=container)

    def export(self, container: str, out: BinaryIO) -> None:
        from capsa.client.streams import download

        download(self._transport, "/export", {"container": container}, out)

    def commit(self, container: str, opts: CommitOptions | None = None) -> str:
        return self._call("commit", container=container, opts=opts)


class RemoteEngine:
    """The engine of a ``capsa system service`` at ``host`` (``unix://PATH``)."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._transport = Transport(socket_path(host))

    @property
    def containers(self) -> RemoteContainers:
        return RemoteContainers(self._transport)

    @property
    def images(self) -> RemoteImages:
        return RemoteImages(self._transport)

    @property
    def volumes(self) -> RemoteVolumes:
        return RemoteVolumes(self._transport)

    @property
    def networks(self) -> RemoteNetworks:
        return RemoteNetworks(self._transport)

    @property
    def system(self) -> RemoteSystem:
        return RemoteSystem(self._transport)

    @property
    def events(self) -> RemoteEvents:
        return RemoteEvents(self._transport)

    @property
    def fs(self) -> RemoteFiles:
        return RemoteFiles(self._transport)

    @property
    def restore(self) -> _Restore:
        return _Restore()

    def close(self) -> None:
        return None


class _Restore:
    """``system restore`` works on the state of the service's host, not through --host."""

    def run(self) -> RestoreReport:
        raise Unavailable("system restore runs on the service's host, not through --host")


if TYPE_CHECKING:
    from capsa.engine.protocol import Engine, ExecHandle, Launch

    def _remote_is_an_engine(engine: RemoteEngine) -> Engine:
        return engine

    def _exec_is_a_handle(session: RemoteExec) -> ExecHandle:
        return session

    def _launch_is_a_launch(launch: RemoteLaunch) -> Launch:
        return launch
