"""Index files made offline: a restored backup, a loaded snapshot, a rebuilt index.

Theory of operation
-------------------
Recovery (recovery.py) and `--restore` write the master's index file before the master
opens it, with plain SQLite connections:

* `restore` copies an operator's backup (`myyoutube admin backup`) into the empty data
  directory, checked by SQLite (quick_check) and refused if a newer release wrote it.
* `read_snapshot` opens a snapshot's copy as an Index (which migrates it to this
  release's schema) and reads its records for rebuild.merge.
* `write_plan` writes the merged catalogue into that file in one transaction: records
  added or replaced, videos with no copy left removed, blobs no record names forgotten,
  replicas set to where the datanodes said the blobs are, the snapshot used recorded.

In both a backup and a snapshot, writes in progress at the copy (`pending_blobs`) are
forgotten before the Index opens it (`keep_pending_blobs`): a normal start retires them
(deletes their copies), but they may have been committed after the copy was made.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import time
from pathlib import Path

from myyoutube import service
from myyoutube.formatting import agreeing, counted
from myyoutube.master import rebuild
from myyoutube.master.index import _COLUMNS, Index
from myyoutube.master.schema import SCHEMA_VERSION, IndexTooNew

log = logging.getLogger(__name__)

INDEX_FILE = "index.sqlite3"
# The index being written by restore or recovery; renamed to INDEX_FILE when complete.
REBUILDING = "index.sqlite3.rebuilding"


def require_empty(data_dir: Path, flag: str) -> None:
    """Recovery and restore write a new index: never over an existing one."""
    entries = sorted(path.name for path in data_dir.iterdir())
    if entries:
        raise service.StartupError(
            f"{flag} needs an empty data directory, and {data_dir} holds {', '.join(entries[:5])}; "
            f"move its contents away (or choose another --data-dir) and try again"
        )


def restore(backup: Path, data_dir: Path) -> None:
    """Make a copy of an index backup (`myyoutube admin backup`) the index."""
    part = data_dir / REBUILDING
    try:
        shutil.copyfile(backup, part)
        with sqlite3.connect(part) as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("the copy is damaged (quick_check fails)")
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'videos'").fetchone() is None:
                raise sqlite3.DatabaseError("it is a database, but not a MyYoutube index")
        db.close()
        if version > SCHEMA_VERSION:
            raise IndexTooNew(f"it was written by a newer release (schema {version} > {SCHEMA_VERSION})")
        pending = keep_pending_blobs(part)
        part.rename(data_dir / INDEX_FILE)
    except (OSError, sqlite3.Error, IndexTooNew) as exc:
        part.unlink(missing_ok=True)
        # An OSError in words ("No such file or directory"), not "[Errno 2] ...: 'FILE'".
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise service.StartupError(f"cannot restore the index from {backup}: {reason}") from exc
    log.warning(
        "index restored from %s; %s in progress at the backup %s kept as orphans if their "
        "blobs exist; videos uploaded or edited after the backup are not in it (--recover would add "
        "them from the datanodes' sidecars)",
        backup,
        counted(pending, "write"),
        agreeing(pending, "is", "are"),
    )


def read_snapshot(path: Path, taken_at: float, snapshot_blob: str) -> rebuild.Snapshot:
    """Open the file of snapshot `snapshot_blob` as an index (migrated to this release's schema)
    and read its records. Writes in progress at the snapshot are forgotten first, not retired."""
    keep_pending_blobs(path)
    index = Index(path, time.time())
    try:
        versions = index.recovery.versions()
        users = frozenset(index.users.accounts)
        blobs = {blob_id: (r.size, r.sha256) for blob_id, r in index.replicas.items()}
        listed = frozenset(listed_id for listed_id, _ in index.recovery.snapshots()) | {snapshot_blob}
        return rebuild.Snapshot(taken_at, dict(index.videos), versions, blobs, users, listed)
    finally:
        index.close()


def keep_pending_blobs(path: Path) -> int:
    """Forget the writes an index file records as in progress, so that opening it does not
    retire (delete) them: they may have completed since it was copied. How many."""
    with sqlite3.connect(path) as db:
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'pending_blobs'").fetchone() is None:
            return 0
        forgotten = db.execute("DELETE FROM pending_blobs").rowcount
    db.close()
    return forgotten


def write_plan(
    path: Path,
    plan: rebuild.Plan,
    snapshot: rebuild.Snapshot | None,
    held: dict[str, list[str]],
    snapshot_sidecar: dict | None,
    now: float,
) -> None:
    """Make the index file at `path` hold the plan's catalogue, replicas where the blobs
    were found, and the snapshot used; one transaction, then a single file."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("BEGIN IMMEDIATE")
        old = snapshot.videos if snapshot else {}
        db.executemany("DELETE FROM videos WHERE name = ?", [(n,) for n in old if n not in plan.videos])
        blobs = dict(plan.blobs)
        if snapshot_sidecar is not None:
            blobs[snapshot_sidecar["blob_id"]] = (snapshot_sidecar["size"], snapshot_sidecar["sha256"])
            db.execute(
                "INSERT OR IGNORE INTO snapshots (blob_id, taken_at) VALUES (?, ?)",
                (snapshot_sidecar["blob_id"], snapshot_sidecar["taken_at"]),
            )
        db.executemany(
            "INSERT OR IGNORE INTO blobs (blob_id, size, sha256) VALUES (?, ?, ?)",
            [(b, size, sha) for b, (size, sha) in blobs.items()],
        )
        for name, record in plan.videos.items():
            if old.get(name) != record:
                _upsert(db, record, name in old)
            db.execute("UPDATE videos SET version = ? WHERE name = ?", (plan.versions[name], name))
        _forget_renditions(db, plan)
        stale = [row for row in db.execute("SELECT blob_id FROM snapshots") if row[0] not in held]
        db.executemany("DELETE FROM snapshots WHERE blob_id = ?", stale)  # older ones, gone since
        _forget_unnamed_blobs(db)
        db.execute("DELETE FROM replicas")
        db.executemany(
            "INSERT INTO replicas (blob_id, node, added_at) SELECT ?, ?, ? WHERE EXISTS"
            " (SELECT 1 FROM blobs WHERE blob_id = ?)",
            [(b, node, now, b) for b, nodes in held.items() for node in nodes],
        )
        db.execute("COMMIT")
        db.execute("PRAGMA journal_mode=DELETE")  # one file, to be renamed into place
    finally:
        db.close()


def _upsert(db: sqlite3.Connection, record: dict, exists: bool) -> None:
    # Split as Index.commit_video does: fields with a column, the rest JSON in `extra`
    # (renditions have a table of their own).
    extra = json.dumps({k: v for k, v in record.items() if k not in _COLUMNS and k != "renditions"})
    values = (
        record["blob_id"],
        record["content_type"],
        record["uploaded_at"],
        extra,
        record.get("poster_blob_id"),
        record["title"],
        record["description"],
        record["views"],
        record["owner"],
        record["visibility"],
        record["name"],
    )
    if exists:
        db.execute(
            "UPDATE videos SET blob_id = ?, content_type = ?, uploaded_at = ?, extra = ?, poster_blob_id = ?,"
            " title = ?, description = ?, views = ?, owner = ?, visibility = ? WHERE name = ?",
            values,
        )
    else:
        db.execute(
            "INSERT INTO videos (blob_id, content_type, uploaded_at, extra, poster_blob_id, title,"
            " description, views, owner, visibility, name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            values,
        )


def _forget_renditions(db: sqlite3.Connection, plan: rebuild.Plan) -> None:
    """Renditions and transcode jobs of videos gone, and of videos whose renditions are
    to be made again (without jobs, the master's transcode backlog takes them)."""
    db.execute("DELETE FROM renditions WHERE video NOT IN (SELECT name FROM videos)")
    db.execute("DELETE FROM transcode_jobs WHERE video NOT IN (SELECT name FROM videos)")
    db.executemany("DELETE FROM renditions WHERE video = ?", [(n,) for n in plan.renditions_remade])
    db.executemany("DELETE FROM transcode_jobs WHERE video = ?", [(n,) for n in plan.renditions_remade])


def _forget_unnamed_blobs(db: sqlite3.Connection) -> None:
    """Blobs no video, rendition or snapshot names any more (a dropped video's, a
    replaced part's)."""
    db.execute(
        "DELETE FROM blobs WHERE blob_id NOT IN (SELECT blob_id FROM videos)"
        " AND blob_id NOT IN (SELECT poster_blob_id FROM videos WHERE poster_blob_id IS NOT NULL)"
        " AND blob_id NOT IN (SELECT blob_id FROM renditions)"
        " AND blob_id NOT IN (SELECT blob_id FROM snapshots)"
    )
