"""Garbage collection: blobs and snapshots that no image needs.

Roots are the images in the index: each keeps its manifest, config and layer blobs,
the top-level documents (indexes) it was pulled by, and the snapshots of its layer
chain. Snapshots still used by a container's read-write layer refuse removal and
stay. Partial ingests nobody holds are removed too.
"""

from __future__ import annotations

from capsa.errors import Conflict, NotFound
from capsa.oci import image_spec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from capsa.store.content import ContentStore
    from capsa.store.images import ImageStore
    from capsa.store.snapshots import SnapshotStore


def _reachable(content: ContentStore, images: ImageStore) -> tuple[set[str], set[str]]:
    from capsa.store.snapshots import chain_ids

    blobs: set[str] = set()
    chains: set[str] = set()
    for record in images.list():
        blobs.update((record.id, record.manifest_digest))
        blobs.update(d.partition("@")[2] for d in record.repo_digests)
        try:
            manifest = image_spec.load_manifest(content.read(record.manifest_digest))
            config = image_spec.load_config(content.read(record.id))
        except NotFound:
            continue
        blobs.update(layer.digest for layer in manifest.layers)
        chains.update(chain_ids(config.rootfs.diff_ids))
    return blobs, chains


def collect(content: ContentStore, images: ImageStore, snapshots: SnapshotStore) -> int:
    """Remove what no image references; return the bytes freed."""
    blobs, chains = _reachable(content, images)
    freed = 0
    for digest in list(content.digests()):
        if digest not in blobs:
            freed += content.delete(digest)
    freed += content.clean_ingest()
    pending = [
        u.chain_id for u in snapshots.usage() if u.kind == "layer" and u.chain_id not in chains
    ]
    while pending:  # children before parents: retry what a child still held
        still = []
        for chain_id in pending:
            try:
                freed += snapshots.remove(chain_id)
            except Conflict:
                still.append(chain_id)
        if len(still) == len(pending):
            break
        pending = still
    return freed
