"""The image service: pull, push, list, remove, tag, inspect, save/load, import, prune.

It orchestrates the store: the registry client fills the content store, snapshots
unpack layers once per chain id, the image index names the result. Every operation
that adds an image writes the index last, in one transaction, so a failure leaves no
half image visible. Blobs and snapshots no image needs are collected after removals.
"""

from __future__ import annotations

from capsa.engine.images.types import (
    HistoryEntry,
    ImageDetail,
    ImageFilters,
    ImageSummary,
    ImportOptions,
    PruneReport,
    PullOptions,
    PushOptions,
    RegistryAuth,
    RemoveImagesOptions,
    RemoveReport,
)
from capsa.errors import CapsaError, Conflict, InvalidArgument
from capsa.oci import image_spec, reference
from capsa.progress import NullProgress, ProgressEvent
from capsa.store.images import ImageRecord, now_rfc3339

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, BinaryIO

    from capsa.config import Settings
    from capsa.engine.system.filters import FilterArgs
    from capsa.engine.system.reports import ItemReport
    from capsa.engine.system.types import ImagesUsage
    from capsa.oci.image_spec import ImageConfig, Manifest, Platform
    from capsa.progress import ProgressSink
    from capsa.store.content import ContentStore
    from capsa.store.images import ImageStore
    from capsa.store.snapshots import SnapshotStore


class ImageService:
    def __init__(
        self,
        settings: Settings,
        content: ContentStore,
        images: ImageStore,
        snapshots: Callable[[], SnapshotStore],
    ) -> None:
        """``snapshots``: the snapshot store, asked for when needed (listing images
        does not: it imports and opens the store)."""
        self.settings = settings
        self.content = content
        self.images = images
        self._snapshots = snapshots

    @property
    def snapshots(self) -> SnapshotStore:
        return self._snapshots()

    # -- helpers ------------------------------------------------------------

    def _manifest(self, record: ImageRecord) -> Manifest:
        return image_spec.load_manifest(self.content.read(record.manifest_digest))

    def _config(self, record: ImageRecord) -> ImageConfig:
        return image_spec.load_config(self.content.read(record.id))

    def _summary(self, record: ImageRecord, config: ImageConfig | None = None) -> ImageSummary:
        config = config or self._config(record)
        labels = dict((config.config.labels if config.config else None) or {})
        return ImageSummary(
            id=record.id,
            repo_tags=[reference.parse(t).familiar for t in record.tags],
            repo_digests=[_familiar_digest(d) for d in record.repo_digests],
            tag_digests={reference.parse(t).familiar: d for t, d in record.tag_digests.items()},
            created=record.created or config.created,
            size=record.size,
            labels=labels,
            containers=len(self.images.holders(record.id)),
        )

    def register(
        self,
        manifest_digest: str,
        manifest: Manifest,
        config: ImageConfig,
        names: list[str],
        repo_digest: tuple[str, str] | None,
        progress: ProgressSink,
    ) -> ImageRecord:
        """Unpack the layers, then add the image and its names in one transaction."""
        chain_ids = self.snapshots.ensure(self.content, manifest, config, progress)
        sizes = self._chain_sizes()
        record = ImageRecord(
            id=manifest.config.digest,
            manifest_digest=manifest_digest,
            manifest_media_type=manifest.media_type or image_spec.OCI_MANIFEST,
            created=config.created,
            size=sum(sizes.get(c, 0) for c in chain_ids),
            added=now_rfc3339(),
            platform=str(config.platform),
        )
        self.images.put(record, names, repo_digest)
        return self.images.get(record.id)

    def _chain_sizes(self) -> dict[str, int]:
        return {u.chain_id: u.size for u in self.snapshots.usage() if u.kind == "layer"}

    def resolve(self, text: str) -> ImageRecord:
        return self.images.resolve(text)

    def exists(self, text: str) -> bool:
        """Whether ``text`` (a reference or an id) names a local image."""
        return self.images.find(text) is not None

    def chain_ids(self, record: ImageRecord) -> list[str]:
        """The snapshot chain ids of an image's layers (lowest first)."""
        from capsa.store.snapshots import chain_ids

        return chain_ids(self._config(record).rootfs.diff_ids)

    # -- registry -----------------------------------------------------------

    def pull(
        self, text: str, opts: PullOptions | None = None, progress: ProgressSink | None = None
    ) -> ImageSummary:
        import asyncio

        from capsa.store.registry import RegistryClient, parse_platform

        opts = opts or PullOptions()
        progress = progress or NullProgress()
        ref = reference.parse(text)
        platform: Platform | None = parse_platform(opts.platform) if opts.platform else None

        async def fetch() -> Any:
            creds = self._credentials(opts.auth)
            client = RegistryClient(self.settings, self.content, progress, creds)
            try:
                return await client.pull(ref, platform)
            finally:
                await client.close()

        result = asyncio.run(fetch())
        names = [ref.name] if ref.tag else []
        record = self.register(
            result.manifest_digest,
            result.manifest,
            result.config,
            names,
            (ref.repository, result.top_digest),
            progress,
        )
        progress.emit(
            ProgressEvent(id=ref.familiar, action=f"Digest: {result.top_digest}", done=True)
        )
        return self._summary(record, result.config)

    def push(
        self, text: str, opts: PushOptions | None = None, progress: ProgressSink | None = None
    ) -> str:
        import asyncio

        from capsa.store.registry import RegistryClient

        opts = opts or PushOptions()
        progress = progress or NullProgress()
        ref = reference.parse(text)
        record = self.images.resolve(text)
        mount_from = _same_registry_source(record, ref)

        async def send() -> str:
            creds = self._credentials(opts.auth)
            client = RegistryClient(self.settings, self.content, progress, creds)
            try:
                return str(await client.push(ref, record.manifest_digest, mount_from=mount_from))
            finally:
                await client.close()

        digest = asyncio.run(send())
        self.images.put(record, [], (ref.repository, digest))
        return digest

    def _credentials(self, given: RegistryAuth | None = None) -> Any:
        """The stored credentials, or ``given`` ones for their registry."""
        from capsa.store.credentials import Credentials

        stored = Credentials(self.settings.auth_file)
        return stored if given is None else _GivenCredentials(given, stored)

    def login(self, server: str, username: str, password: str) -> None:
        import asyncio

        from capsa.store.credentials import login

        asyncio.run(login(self.settings, _registry_host(server), username, password))
        self._credentials().set(_registry_host(server), username, password)

    def logout(self, server: str) -> bool:
        removed: bool = self._credentials().remove(_registry_host(server))
        return removed

    # -- local queries ----------------------------------------------------

    def list_images(
        self, filters: ImageFilters | None = None, include_intermediate: bool = False
    ) -> list[ImageSummary]:
        filters = filters or ImageFilters()
        records = self.images.list()
        by_text = {r.id: r for r in records}
        before = self.images.resolve(filters.before).added if filters.before else None
        since = self.images.resolve(filters.since).added if filters.since else None
        out = []
        for record in records:
            summary = self._summary(record)
            if filters.dangling is not None and summary.dangling != filters.dangling:
                continue
            if not _labels_match(summary.labels, filters.labels):
                continue
            if filters.references and not _narrow(summary, filters.references):
                continue
            if before is not None and record.added >= before:
                continue
            if since is not None and record.added <= since:
                continue
            out.append(summary)
        del by_text
        return out

    def inspect(self, text: str) -> ImageDetail:
        record = self.images.resolve(text)
        manifest, config = self._manifest(record), self._config(record)
        sizes = self._chain_sizes()
        from capsa.store.snapshots import chain_ids

        per_layer = [sizes.get(c, 0) for c in chain_ids(config.rootfs.diff_ids)]
        return ImageDetail(
            summary=self._summary(record, config),
            manifest_digest=record.manifest_digest,
            manifest_media_type=record.manifest_media_type,
            manifest=manifest,
            config=config,
            layer_sizes=per_layer,
            added=record.added,
        )

    def inspect_each(self, texts: list[str]) -> list[ItemReport[ImageDetail]]:
        """``inspect`` of several images, a report per name (``capsa.engine.system.reports``)."""
        from capsa.engine.system.reports import each

        return each(texts, self.inspect)

    def history(self, text: str) -> list[HistoryEntry]:
        detail = self.inspect(text)
        entries = detail.config.history or []
        sizes = iter(detail.layer_sizes)
        out = []
        for h in entries:
            size = 0 if h.empty_layer else next(sizes, 0)
            out.append(
                HistoryEntry(
                    id="<missing>",
                    created=h.created,
                    created_by=h.created_by or "",
                    size=size,
                    comment=h.comment or "",
                    empty_layer=bool(h.empty_layer),
                )
            )
        if not entries:  # images without history: one line per layer
            out = [
                HistoryEntry(id="<missing>", created=detail.config.created, created_by="", size=s)
                for s in detail.layer_sizes
            ]
        out.reverse()
        if out:
            out[0].id = detail.summary.id
            out[0].tags = detail.summary.repo_tags
        return out

    # -- names and removal ----------------------------------------------------

    def tag(self, source: str, target: str) -> None:
        record = self.images.resolve(source)
        ref = reference.parse(target)
        if ref.digest:
            raise InvalidArgument(f"refusing to create a tag with a digest reference: {target}")
        self.images.tag(ref.name, record.id)

    def remove(self, texts: list[str], opts: RemoveImagesOptions | None = None) -> RemoveReport:
        opts = opts or RemoveImagesOptions()
        report = RemoveReport()
        for text in texts:
            try:
                self._remove_one(text, opts, report)
            except CapsaError as e:  # the next names are removed all the same
                report.errors.append(str(e))
        if report.deleted and not opts.no_prune:
            self.collect_garbage()
        return report

    def _remove_one(self, text: str, opts: RemoveImagesOptions, report: RemoveReport) -> None:
        record = self.images.resolve(text)
        by_name = _names_tag(record, text)
        users = self.images.holders(record.id)
        if by_name is not None and (len(record.tags) > 1 or (users and opts.force)):
            self.images.untag(by_name)
            report.untagged.append(reference.parse(by_name).familiar)
            return
        if by_name is None and len(record.tags) > 1 and not opts.force:
            raise Conflict(
                f"unable to delete {record.short_id} (must be forced) - image is "
                f"referenced in multiple repositories"
            )
        if users and not opts.force:
            what = f'"{text}"' if by_name else record.short_id
            raise Conflict(
                f"unable to remove {what} (must force) - container {users[0]} "
                f"is using its referenced image {record.short_id}"
            )
        for name in record.tags:
            self.images.untag(name)
            report.untagged.append(reference.parse(name).familiar)
        for holder in users:
            self.images.release(holder)
        self.images.delete(record.id)
        report.deleted.append(record.id)

    def prune(self, all_images: bool = False, filters: FilterArgs | None = None) -> PruneReport:
        """Remove images no container uses: untagged ones, or all with ``all_images`` or
        ``dangling=false``; ``until``/``label``/``label!`` narrow it, as dockerd's."""
        from capsa.engine.system.filters import IMAGE_PRUNE, parse_prune

        parsed = parse_prune(filters, IMAGE_PRUNE)
        # as dockerd: `-a` adds dangling=false to the filter, and any false in it means
        # every unused image (so `-a --filter dangling=true` prunes them all)
        dangling_only = not all_images and parsed.dangling is not False
        report = PruneReport()
        for summary in self.list_images():
            if summary.containers or (summary.repo_tags and dangling_only):
                continue
            if not parsed.matches(summary.labels, summary.created):
                continue
            record = self.images.get(summary.id)
            for name in record.tags:
                self.images.untag(name)
                report.untagged.append(reference.parse(name).familiar)
            self.images.delete(record.id)
            report.deleted.append(record.id)
        report.space_reclaimed = self.collect_garbage()
        return report

    def collect_garbage(self) -> int:
        """Remove blobs and snapshots no image needs; return the bytes freed."""
        from capsa.store.gc import collect

        return collect(self.content, self.images, self.snapshots)

    # -- archives -----------------------------------------------------------

    def save(self, texts: list[str], out: BinaryIO, fmt: str = "docker-archive") -> None:
        from capsa.store.archive import SaveItem, save

        items = []
        for text in texts:
            record = self.images.resolve(text)
            names = [reference.parse(text).name] if _names_tag(record, text) else record.tags
            items.append(
                SaveItem(
                    manifest_digest=record.manifest_digest, config_digest=record.id, names=names
                )
            )
        save(self.content, items, out, fmt)

    def save_to_file(self, texts: list[str], path: str, fmt: str = "docker-archive") -> None:
        """``save`` into the file at ``path``, whole or not at all."""
        from capsa.linux.atomicfile import write_atomic_stream

        with write_atomic_stream(path) as out:
            self.save(texts, out, fmt)

    def load(self, stream: BinaryIO, progress: ProgressSink | None = None) -> list[str]:
        """Load an archive; return what was loaded ("Loaded image: NAME" / "ID")."""
        from capsa.store.archive import load

        progress = progress or NullProgress()
        loaded: list[str] = []
        for image in load(self.content, stream):
            names = [reference.parse(n).name for n in image.names]
            record = self.register(
                image.manifest_digest, image.manifest, image.config, names, None, progress
            )
            loaded.extend(reference.parse(n).familiar for n in names)
            if not names:
                loaded.append(record.id)
        return loaded

    def import_image(
        self,
        stream: BinaryIO,
        opts: ImportOptions | None = None,
        progress: ProgressSink | None = None,
    ) -> ImageSummary:
        from capsa.store.importer import import_rootfs
        from capsa.store.registry import host_platform, parse_platform

        opts = opts or ImportOptions()
        platform = parse_platform(opts.platform) if opts.platform else host_platform()
        names = [reference.parse(opts.reference).name] if opts.reference else []
        image = import_rootfs(self.content, stream, opts.changes, platform, opts.message)
        record = self.register(
            image.manifest_digest,
            image.manifest,
            image.config,
            names,
            None,
            progress or NullProgress(),
        )
        return self._summary(record, image.config)

    # -- disk usage -----------------------------------------------------------

    def disk_usage(self) -> ImagesUsage:
        """``system df``'s images: every layer once, and for each image the bytes of its
        layers that other images share (dockerd's ``SharedSize``)."""
        from collections import Counter

        from capsa.engine.system.types import ImagesUsage, ImageUsage

        summaries = self.list_images()
        sizes = self._chain_sizes()
        chains = {s.id: set(self.chain_ids(self.images.get(s.id))) for s in summaries}
        refs = Counter(c for ids in chains.values() for c in ids)
        images = [
            ImageUsage(s, sum(sizes.get(c, 0) for c in chains[s.id] if refs[c] > 1))
            for s in summaries
        ]
        return ImagesUsage(layers_size=sum(sizes.get(c, 0) for c in refs), images=images)


class _GivenCredentials:
    """Credentials a frontend handed over, before the stored ones."""

    def __init__(self, given: RegistryAuth, stored: Any) -> None:
        self.given = given
        self.stored = stored

    def get(self, host: str) -> tuple[str, str] | None:
        server = self.given.server
        if not server or _registry_host(server) == _registry_host(host):
            return self.given.username, self.given.password
        found: tuple[str, str] | None = self.stored.get(host)
        return found


def _familiar_digest(text: str) -> str:
    repo, _, digest = text.partition("@")
    return f"{reference.parse(repo).familiar_repository}@{digest}"


def _registry_host(server: str) -> str:
    host = server.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    return "docker.io" if host in ("", "index.docker.io", "registry-1.docker.io") else host


def _names_tag(record: ImageRecord, text: str) -> str | None:
    """The tag ``text`` names on ``record``, if ``text`` is a name rather than an id."""
    try:
        ref = reference.parse(text)
    except InvalidArgument:
        return None
    return ref.name if ref.name in record.tags else None


def _same_registry_source(record: ImageRecord, ref: reference.Reference) -> str | None:
    for item in record.repo_digests:
        repo = item.partition("@")[0]
        domain, _, path = repo.partition("/")
        if domain == ref.domain and path != ref.path:
            return path
    return None


def _labels_match(labels: dict[str, str], wanted: list[str]) -> bool:
    for item in wanted:
        key, eq, value = item.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


def _narrow(summary: ImageSummary, patterns: list[str]) -> bool:
    """``images REPO`` and ``--filter reference=``: keep only the image's names that
    match one of ``patterns``, as dockerd does (its other names are not listed); False
    when none does (nor for an untagged image: it is not listed)."""
    tags = [t for t in summary.repo_tags if _familiar_match(patterns, t)]
    digests = [d for d in summary.repo_digests if _familiar_match(patterns, d)]
    summary.repo_tags, summary.repo_digests = tags, digests
    summary.tag_digests = {t: d for t, d in summary.tag_digests.items() if t in tags}
    return bool(tags or digests)


def _familiar_match(patterns: list[str], familiar: str) -> bool:
    ref = reference.parse(familiar, default_tag=False)
    return any(reference.familiar_match(pattern, ref) for pattern in patterns)
