"""The image index: which images exist, their names, digests and users.

An image is identified, as in Docker, by the digest of its config. Names are kept
normalized (``docker.io/library/busybox:latest``); repo digests record which manifest
(or index) digest a repository served it under. Leases record who uses an image (a
container), so it cannot be removed without ``--force``. All changes are single
SQLite transactions: an image appears with its names at once, or not at all.
"""

from __future__ import annotations

import os
import time

from capsa.errors import Conflict, no_such_image
from capsa.oci import reference
from capsa.record import field, record
from capsa.store.db import Database, Transaction

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3

MIGRATIONS = (
    """
    CREATE TABLE images (
        id TEXT PRIMARY KEY,
        manifest_digest TEXT NOT NULL,
        manifest_media_type TEXT NOT NULL,
        created TEXT,
        size INTEGER NOT NULL DEFAULT 0,
        added TEXT NOT NULL,
        platform TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE tags (
        name TEXT PRIMARY KEY,
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
    );
    CREATE INDEX tags_image ON tags(image_id);
    CREATE TABLE repo_digests (
        repository TEXT NOT NULL,
        digest TEXT NOT NULL,
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        PRIMARY KEY (repository, digest)
    );
    CREATE TABLE leases (
        holder TEXT PRIMARY KEY,
        image_id TEXT NOT NULL REFERENCES images(id)
    );
    """,
    # the manifest digest each tag was pulled or pushed as (images --digests)
    "ALTER TABLE tags ADD COLUMN digest TEXT NOT NULL DEFAULT ''",
)


def now_rfc3339() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


@record
class ImageRecord:
    id: str
    manifest_digest: str
    manifest_media_type: str
    created: str | None = None
    size: int = 0
    added: str = ""
    platform: str = ""
    tags: list[str] = field(default_factory=list)
    repo_digests: list[str] = field(default_factory=list)
    tag_digests: dict[str, str] = field(default_factory=dict)  # tag -> manifest digest

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]


class ImageStore(Database):
    def __init__(self, root: str) -> None:
        super().__init__(os.path.join(root, "images.db"), MIGRATIONS)

    # -- writes -------------------------------------------------------------

    def put(
        self,
        image: ImageRecord,
        tags: list[str] = (),  # type: ignore[assignment]
        repo_digest: tuple[str, str] | None = None,
    ) -> None:
        """Add (or refresh) ``image`` and point ``tags`` at it, in one transaction."""
        with Transaction(self.conn) as c:
            c.execute(
                "INSERT INTO images(id, manifest_digest, manifest_media_type, created, size,"
                " added, platform) VALUES (?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET"
                " manifest_digest=excluded.manifest_digest,"
                " manifest_media_type=excluded.manifest_media_type",
                (
                    image.id,
                    image.manifest_digest,
                    image.manifest_media_type,
                    image.created,
                    image.size,
                    image.added or now_rfc3339(),
                    image.platform,
                ),
            )
            for name in tags:
                digest = ""
                if repo_digest and name.rpartition(":")[0] == repo_digest[0]:
                    digest = repo_digest[1]
                c.execute(
                    "INSERT INTO tags(name, image_id, digest) VALUES (?, ?, ?) ON CONFLICT(name)"
                    " DO UPDATE SET image_id=excluded.image_id, digest=excluded.digest",
                    (name, image.id, digest),
                )
            if repo_digest:
                c.execute(
                    "INSERT OR REPLACE INTO repo_digests(repository, digest, image_id)"
                    " VALUES (?,?,?)",
                    (*repo_digest, image.id),
                )

    def tag(self, name: str, image_id: str) -> None:
        with Transaction(self.conn) as c:
            self._require(c, image_id)
            c.execute(
                "INSERT INTO tags(name, image_id) VALUES (?, ?) ON CONFLICT(name)"
                " DO UPDATE SET image_id=excluded.image_id",
                (name, image_id),
            )

    def untag(self, name: str) -> str:
        with Transaction(self.conn) as c:
            row = c.execute("SELECT image_id FROM tags WHERE name=?", (name,)).fetchone()
            if row is None:
                raise no_such_image(name)
            c.execute("DELETE FROM tags WHERE name=?", (name,))
            return str(row[0])

    def delete(self, image_id: str) -> None:
        with Transaction(self.conn) as c:
            users = [
                r[0] for r in c.execute("SELECT holder FROM leases WHERE image_id=?", (image_id,))
            ]
            if users:
                raise Conflict(f"image {image_id[7:19]} is in use by {users[0]}")
            c.execute("DELETE FROM images WHERE id=?", (image_id,))

    def lease(self, holder: str, image_id: str) -> None:
        with Transaction(self.conn) as c:
            self._require(c, image_id)
            c.execute(
                "INSERT OR REPLACE INTO leases(holder, image_id) VALUES (?, ?)", (holder, image_id)
            )

    def release(self, holder: str) -> None:
        self.conn.execute("DELETE FROM leases WHERE holder=?", (holder,))

    def holders(self, image_id: str) -> list[str]:
        rows = self.conn.execute(
            "SELECT holder FROM leases WHERE image_id=? ORDER BY holder", (image_id,)
        )
        return [r[0] for r in rows]

    # -- reads ------------------------------------------------------------

    def _require(self, c: sqlite3.Connection, image_id: str) -> None:
        if c.execute("SELECT 1 FROM images WHERE id=?", (image_id,)).fetchone() is None:
            raise no_such_image(image_id)

    def _record(self, row: sqlite3.Row) -> ImageRecord:
        image_id = row["id"]
        rows = self.conn.execute(
            "SELECT name, digest FROM tags WHERE image_id=? ORDER BY name", (image_id,)
        ).fetchall()
        tags = [r[0] for r in rows]
        digests = [
            f"{r[0]}@{r[1]}"
            for r in self.conn.execute(
                "SELECT repository, digest FROM repo_digests WHERE image_id=? ORDER BY repository",
                (image_id,),
            )
        ]
        return ImageRecord(
            id=image_id,
            manifest_digest=row["manifest_digest"],
            manifest_media_type=row["manifest_media_type"],
            created=row["created"],
            size=row["size"],
            added=row["added"],
            platform=row["platform"],
            tags=tags,
            repo_digests=digests,
            tag_digests={r[0]: r[1] for r in rows if r[1]},
        )

    def get(self, image_id: str) -> ImageRecord:
        row = self.conn.execute("SELECT * FROM images WHERE id=?", (image_id,)).fetchone()
        if row is None:
            raise no_such_image(image_id)
        return self._record(row)

    def list(self) -> list[ImageRecord]:
        rows = self.conn.execute("SELECT * FROM images ORDER BY added DESC").fetchall()
        return [self._record(r) for r in rows]

    def find(self, text: str) -> ImageRecord | None:
        """The image ``text`` names (tag, name@digest, id or unique id prefix), or None."""
        candidate = text.removeprefix("sha256:")
        if reference.is_short_id(candidate):
            rows = self.conn.execute(
                "SELECT * FROM images WHERE id LIKE ?", (f"sha256:{candidate}%",)
            ).fetchall()
            if len(rows) > 1:
                raise Conflict(f"short id {candidate} is ambiguous: it names {len(rows)} images")
            if rows:
                return self._record(rows[0])
            if text.startswith("sha256:"):
                return None
        try:
            ref = reference.parse(text)
        except Exception:
            return None
        if ref.digest:
            row = self.conn.execute(
                "SELECT i.* FROM images i JOIN repo_digests d ON d.image_id=i.id"
                " WHERE d.repository=? AND d.digest=?",
                (ref.repository, ref.digest),
            ).fetchone()
            if row is None:
                row = self.conn.execute(
                    "SELECT * FROM images WHERE manifest_digest=?", (ref.digest,)
                ).fetchone()
        else:
            row = self.conn.execute(
                "SELECT i.* FROM images i JOIN tags t ON t.image_id=i.id WHERE t.name=?",
                (ref.name,),
            ).fetchone()
        return self._record(row) if row is not None else None

    def resolve(self, text: str) -> ImageRecord:
        found = self.find(text)
        if found is None:
            raise no_such_image(text)
        return found
