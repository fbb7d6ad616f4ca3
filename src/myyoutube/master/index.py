"""The master's durable index: videos, their blobs and where the replicas live.

Theory of operation
-------------------
SQLite in WAL mode with `synchronous=FULL` is the write-ahead log: a video is committed by
one transaction that inserts its blob, its replicas and its name together, and returns
only after the log is fsynced. After `kill -9` at any moment a video is therefore either
fully there or absent; nothing committed is lost. (An append-only journal of our own
would need its own torn-write detection and compaction; SQLite has had both for decades,
ships with Python, and its index makes name lookups and search cheap.)

The commits of the upload path (a blob begun, a video committed) happen several times a
second under load, and an fsync waits 2-40 ms for a busy disk: on the event loop that
would stall every read the master relays meanwhile. `durably` runs such a transaction
without SQLite's own fsync and then fsyncs the write-ahead log in a worker thread before
it returns, so its caller (who answers the uploader only then) gets the same guarantee
while other requests go on. Every other write keeps `synchronous=FULL`.

Everything is also kept in memory (`videos`, `replicas`), loaded once at start-up, so
reads and the pure decisions in state.py never wait on the disk. Every write goes to
SQLite first, then to memory.

Deleting is the one thing that cannot be undone, so the index remembers which blobs it
owns and no longer wants (`ownership`, blob_ownership.py): a blob id is pending before its
first byte is written, then committed here or retired, and only retired blobs are ever
deleted from datanodes.

The schema carries its version in `PRAGMA user_version`; an index written by an older
release is migrated in place at start-up, one transaction per step (schema.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from myyoutube import videotext
from myyoutube.master.blob_ownership import BlobOwnership
from myyoutube.master.catalogue import Catalogue
from myyoutube.master.jobs import DONE, Job
from myyoutube.master.jobstore import JobStore, load_renditions, rendition_entry
from myyoutube.master.recovery_index import RecoveryIndex
from myyoutube.master.schema import migrate
from myyoutube.master.state import Replica
from myyoutube.master.upload_sessions import SessionTable
from myyoutube.master.users import Users
from myyoutube.permissions import ADMIN_USER, PUBLIC

# A video record's fields kept in columns (of videos; size and sha256 of blobs); the rest
# (duration, size in pixels, codec...) is kept as JSON in `extra`.
_COLUMNS = frozenset(
    {"name", "blob_id", "size", "sha256", "content_type", "uploaded_at", "poster_blob_id"}
    | {"title", "description", "views", "owner", "visibility"}
)


T = TypeVar("T")


class NameTaken(Exception):
    pass


@dataclass(frozen=True)
class StoredBlob:
    """A blob every listed node confirmed: what the index records for it."""

    blob_id: str
    size: int
    sha256: str
    nodes: list[str]


class Index:
    def __init__(self, path: Path, now: float) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        # Migration 2 gives existing videos their titles with this.
        self._db.create_function("default_title", 1, videotext.default_title, deterministic=True)
        migrate(self._db, self._transaction)
        self.videos: dict[str, dict] = {}
        self.replicas: dict[str, Replica] = {}
        # Bumped by every change to `replicas`: lets the repair planner skip its walk over
        # every blob when neither the replicas nor the nodes changed since its last look.
        self.replica_changes = 0
        # Bytes each owner has stored, kept with `videos`: every request on someone's
        # behalf asks it (their quota, permissions.User), and summing 100,000 videos took
        # ~4 ms of the event loop each time.
        self._stored_by_owner: dict[str, int] = {}
        self._load()
        self.ownership = BlobOwnership(self._db, self._transaction, self.replicas)
        load_renditions(self._db, self.videos)
        self.jobs = JobStore(self._db, self._transaction)
        self.catalogue = Catalogue(self._db, self.videos, self._transaction)
        self.users = Users(self._db, self._transaction)
        self.upload_sessions = SessionTable(self._db, self._transaction)
        self.recovery = RecoveryIndex(self._db, self._transaction)
        self.ownership.retire_interrupted_writes(now)
        self.ownership.prune_retired(now)

    def _load(self) -> None:
        for blob_id, size, sha256 in self._db.execute("SELECT blob_id, size, sha256 FROM blobs"):
            self.replicas[blob_id] = Replica(size, sha256, {})
        for blob_id, node, added_at in self._db.execute("SELECT blob_id, node, added_at FROM replicas"):
            self.replicas[blob_id].nodes[node] = added_at
        query = (
            "SELECT v.name, v.blob_id, b.size, b.sha256, v.content_type, v.uploaded_at,"
            " v.extra, v.poster_blob_id, v.title, v.description, v.views, v.owner, v.visibility"
            " FROM videos v JOIN blobs b USING (blob_id)"
        )
        for row in self._db.execute(query):
            (
                name,
                blob_id,
                size,
                sha256,
                content_type,
                uploaded_at,
                extra,
                poster,
                title,
                description,
                views,
                owner,
                visibility,
            ) = row
            self.videos[name] = dict(
                json.loads(extra),
                name=name,
                blob_id=blob_id,
                size=size,
                sha256=sha256,
                content_type=content_type,
                uploaded_at=uploaded_at,
                poster_blob_id=poster,
                title=title,
                description=description,
                views=views,
                owner=owner,
                visibility=visibility,
            )
            self._count_stored(self.videos[name], +1)

    def _count_stored(self, video: dict, sign: int) -> None:
        owner = video["owner"]
        stored = self._stored_by_owner.get(owner, 0) + sign * video["size"]
        if stored:
            self._stored_by_owner[owner] = stored
        else:
            self._stored_by_owner.pop(owner, None)

    def close(self) -> None:
        self.catalogue.flush_views()
        self._db.close()

    async def durably(self, write: Callable[[], T]) -> T:
        """Run `write` (one of this index's transactions) without SQLite's fsync at commit,
        then fsync the write-ahead log in a worker thread: once this returns the write is
        as durable as under synchronous=FULL, and the event loop never waited on the disk.
        (In WAL mode FULL differs from NORMAL only by that fsync of the log at commit.)"""
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            result = write()
        finally:
            self._db.execute("PRAGMA synchronous=FULL")
        await asyncio.to_thread(_sync_log, Path(f"{self.path}-wal"))
        return result

    def commit_video(
        self, video: dict, blobs: list[StoredBlob], now: float, jobs: list[Job] | None = None
    ) -> None:
        """Make a fully replicated video (and its poster blob) visible, atomically and durably.

        `blobs` holds the video's blob and, if `video["poster_blob_id"]`, the poster's. The
        title is the one in `video`, else made from the name; the view count starts at 0.
        `jobs` (its transcode jobs) are committed with it.
        """
        video = dict(
            video,
            title=video.get("title") or videotext.default_title(video["name"]),
            description=video.get("description", ""),
            views=0,
            owner=video.get("owner", ADMIN_USER),
            visibility=video.get("visibility", PUBLIC),
        )
        extra = json.dumps({k: v for k, v in video.items() if k not in _COLUMNS})
        try:
            with self._transaction():
                for blob in blobs:
                    self._insert_blob(blob, now)
                    self.ownership.mark_committed(blob.blob_id)
                self._db.execute(
                    "INSERT INTO videos (name, blob_id, content_type, uploaded_at, extra,"
                    " poster_blob_id, title, description, owner, visibility)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        video["name"],
                        video["blob_id"],
                        video["content_type"],
                        video["uploaded_at"],
                        extra,
                        video.get("poster_blob_id"),
                        video["title"],
                        video["description"],
                        video["owner"],
                        video["visibility"],
                    ),
                )
                self.jobs.insert(jobs or [])
        except sqlite3.IntegrityError as exc:
            raise NameTaken(video["name"]) from exc
        for blob in blobs:
            self.replicas[blob.blob_id] = Replica(blob.size, blob.sha256, {n: now for n in blob.nodes})
        self.replica_changes += 1
        self.jobs.remember_all(jobs or [])
        video["renditions"] = []
        self.videos[video["name"]] = video
        self._count_stored(video, +1)

    def commit_rendition(
        self, job: Job, blob: StoredBlob, fragment_index: str, bandwidth: int, now: float
    ) -> None:
        """A job's rendition is stored: its blob, its row and the job's end, atomically.
        `job` is the job as it ends (DONE); the video must still exist."""
        assert job.state == DONE, "a rendition ends its job"
        index = json.loads(fragment_index)
        width, height = int(index["width"]), int(index["height"])
        with self._transaction():
            self._insert_blob(blob, now)
            self.ownership.mark_committed(blob.blob_id)
            self._db.execute(
                "INSERT INTO renditions (blob_id, video, height, width, bandwidth, fragment_index)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (blob.blob_id, job.video, height, width, bandwidth, fragment_index),
            )
            self.jobs.write(job)
        self.replicas[blob.blob_id] = Replica(blob.size, blob.sha256, {n: now for n in blob.nodes})
        self.replica_changes += 1
        self.jobs.update_in_memory(job)
        renditions = self.videos[job.video]["renditions"]
        renditions.append(rendition_entry(height, width, bandwidth, blob.blob_id))
        renditions.sort(key=lambda rendition: rendition["height"])

    def _insert_blob(self, blob: StoredBlob, now: float) -> None:
        self._db.execute(
            "INSERT INTO blobs (blob_id, size, sha256) VALUES (?, ?, ?)",
            (blob.blob_id, blob.size, blob.sha256),
        )
        self._db.executemany(
            "INSERT INTO replicas (blob_id, node, added_at) VALUES (?, ?, ?)",
            [(blob.blob_id, node, now) for node in blob.nodes],
        )

    def commit_blob(self, blob: StoredBlob, now: float) -> None:
        """Make a fully replicated blob that is no video's part (an index snapshot) ours."""
        with self._transaction():
            self._insert_blob(blob, now)
            self.ownership.mark_committed(blob.blob_id)
        self.replicas[blob.blob_id] = Replica(blob.size, blob.sha256, {n: now for n in blob.nodes})
        self.replica_changes += 1

    def retire_blob(self, blob_id: str, now: float) -> None:
        """Give up a blob committed by commit_blob: its copies are deleted everywhere."""
        with self._transaction():
            self._db.execute("DELETE FROM blobs WHERE blob_id = ?", (blob_id,))
            self.ownership.retire([blob_id], now)
        self.replicas.pop(blob_id, None)
        self.ownership.remember_retired([blob_id])
        self.replica_changes += 1

    def delete_video(self, name: str, now: float) -> dict | None:
        """Forget a video and retire its blobs at once; datanodes drop the bytes on their
        next report."""
        video = self.videos.get(name)
        if video is None:
            return None
        blob_ids = [b for b in (video["blob_id"], video.get("poster_blob_id")) if b]
        blob_ids += [rendition["blob_id"] for rendition in video["renditions"]]
        with self._transaction():
            self.jobs.forget_video(name)
            self._db.execute("DELETE FROM videos WHERE name = ?", (name,))
            self._db.executemany("DELETE FROM blobs WHERE blob_id = ?", [(b,) for b in blob_ids])
            self.ownership.retire(blob_ids, now)
        del self.videos[name]
        self._count_stored(video, -1)
        for blob_id in blob_ids:
            self.replicas.pop(blob_id, None)
        self.ownership.remember_retired(blob_ids)
        self.replica_changes += 1
        return video

    def set_visibility(self, name: str, visibility: str) -> dict:
        with self._transaction():
            self._db.execute("UPDATE videos SET visibility = ? WHERE name = ?", (visibility, name))
        self.videos[name]["visibility"] = visibility
        return self.videos[name]

    def stored_bytes_of(self, owner: str) -> int:
        """Bytes of video `owner` has stored (one copy each: what its quota counts)."""
        return self._stored_by_owner.get(owner, 0)

    def add_replica(self, blob_id: str, node: str, now: float) -> None:
        if blob_id not in self.replicas or node in self.replicas[blob_id].nodes:
            return
        with self._transaction():
            self._db.execute(
                "INSERT INTO replicas (blob_id, node, added_at) VALUES (?, ?, ?)", (blob_id, node, now)
            )
        self.replicas[blob_id].nodes[node] = now
        self.replica_changes += 1

    def remove_replica(self, blob_id: str, node: str) -> None:
        if blob_id not in self.replicas or node not in self.replicas[blob_id].nodes:
            return
        with self._transaction():
            self._db.execute("DELETE FROM replicas WHERE blob_id = ? AND node = ?", (blob_id, node))
        del self.replicas[blob_id].nodes[node]
        self.replica_changes += 1

    def node_moved(self, node_id: str, address: str, now: float) -> str | None:
        """Record that node `node_id` is at `address` now. If it was known at another
        address, its replicas move to the new one (one transaction) and the old address is
        returned; None otherwise."""
        row = self._db.execute("SELECT address FROM nodes WHERE node_id = ?", (node_id,)).fetchone()
        old = row[0] if row else None
        with self._transaction():
            self._db.execute(
                "INSERT INTO nodes (node_id, address, seen_at) VALUES (?, ?, ?) ON CONFLICT (node_id) "
                "DO UPDATE SET address = excluded.address, seen_at = excluded.seen_at",
                (node_id, address, now),
            )
            if old is not None and old != address:
                self._db.execute("DELETE FROM replicas WHERE node = ?", (address,))
                self._db.execute("UPDATE replicas SET node = ? WHERE node = ?", (address, old))
        if old is None or old == address:
            return None
        for replica in self.replicas.values():
            replica.nodes.pop(address, None)
            added_at = replica.nodes.pop(old, None)
            if added_at is not None:
                replica.nodes[address] = added_at
        self.replica_changes += 1
        return old

    def _transaction(self):
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error (the sqlite3 module's own
    transaction handling is off so that each commit is exactly one fsynced transaction)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, value, traceback) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")


def _sync_log(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return  # no log: a checkpoint moved everything into the database, and fsynced it
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)
