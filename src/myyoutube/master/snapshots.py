"""Index snapshots: a consistent copy of the index, kept as a replicated blob.

Theory of operation
-------------------
Sidecars (sidecars.py) describe every video, but not what only the index holds: accounts,
password hashes, tokens, view counts, retired blobs. So every `--snapshot-interval` and
at a clean stop the master copies its whole index with SQLite's online backup API and
stores the copy like any blob, on `replication` datanodes, with an `index-snapshot`
sidecar giving its time, size and sha256. The last SNAPSHOTS_KEPT are kept; older ones
are retired through the normal path (their copies are deleted at the holders' next
heartbeats). A recovering master (recovery.py) loads the newest intact one and applies
the sidecars newer than it.

The copy is made by a connection of its own in a worker thread: in WAL mode it reads
one consistent state of the index while the master goes on writing, and the backup's
single step copies every page under that one read. View counts still in memory are
flushed first so the copy has them.

A master that knows no video while the datanodes hold blobs it does not know (an emptied
data directory), or before every datanode's full report is in, takes no snapshot: its
empty index would otherwise become the newest snapshot and hide the real one (and its
accounts) from a later recovery.

The snapshot's sidecar row is recorded before its blob is committed: a master killed
in between leaves a row whose blob is retired at its next start (a write in progress),
and such rows are forgotten at the next snapshot.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import aiofiles

from myyoutube.formatting import agreeing, counted
from myyoutube.master import blob_writers, sidecars, transfer
from myyoutube.master.index import StoredBlob
from myyoutube.protocol import CHUNK_BYTES

if TYPE_CHECKING:
    from myyoutube.master.server import Master

log = logging.getLogger(__name__)

# Ten minutes bounds what a lost disk costs to what sidecars do not carry (accounts
# created, sessions, views) while a snapshot of a 100,000-video index (~100 MB, a few
# seconds of backup and replication) stays a small fraction of the master's time.
DEFAULT_SNAPSHOT_INTERVAL_S = 600.0

# Snapshots kept: the newest may be damaged on every holder (a disk lying about a
# write), so one or two older ones remain to fall back on.
SNAPSHOTS_KEPT = 3

# At a clean stop the snapshot may wait this long for the datanodes; an operator's
# stop (SIGTERM) is followed by SIGKILL some seconds later.
STOP_SNAPSHOT_TIMEOUT_S = 8.0

# Where the copy is written before it is streamed to the datanodes (removed after).
SNAPSHOT_PART = "snapshot.part"


def copy_index(source: Path, target: Path) -> None:
    """Blocking: a consistent copy of the index at `source` as a single file at `target`
    (rollback journal, so the file alone is the database)."""
    target.unlink(missing_ok=True)
    reader = sqlite3.connect(source)
    try:
        copy = sqlite3.connect(target)
        try:
            reader.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")
        finally:
            copy.close()
    finally:
        reader.close()


def file_digest(path: Path) -> tuple[int, str]:
    """Blocking: (size, sha256 hex) of a file."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as file:
        while piece := file.read(CHUNK_BYTES):
            digest.update(piece)
            size += len(piece)
    return size, digest.hexdigest()


def knows_the_cluster(master: Master) -> bool:
    """False for a master with an empty index that faces datanodes full of unknown blobs,
    or cannot tell yet (a node's full report is not in)."""
    if master.index.videos:
        return True
    reported = all(node.reports.has_full for node in master.state.nodes.values())
    return reported and not any(master.control.orphans.values())


async def take(master: Master) -> str | None:
    """Snapshot the index into a new replicated blob; its id, or None if skipped."""
    if not knows_the_cluster(master):
        log.warning(
            "no index snapshot taken: this index knows no video while the datanodes hold unknown blobs"
        )
        return None
    alive = master.state.alive_count(time.time())
    if alive < master.min_replicas:
        # Expected, not a failure: a master started alone (--restore, a first start)
        # stops before any datanode joined.
        log.warning(
            "no index snapshot taken: %s %s up and %s to store it",
            counted(alive, "datanode"),
            agreeing(alive, "is", "are"),
            transfer.needed(master.min_replicas),
        )
        return None
    log.info("taking an index snapshot")
    master.index.catalogue.flush_views()
    part = master.index.path.with_name(SNAPSHOT_PART)
    taken_at = time.time()
    try:
        await asyncio.to_thread(copy_index, master.index.path, part)
        size, sha256 = await asyncio.to_thread(file_digest, part)
        blob_id = uuid.uuid4().hex
        # Listed before it is stored, so that a master dying in between leaves no blob
        # that _keep_newest does not know of; but a store that failed is no snapshot:
        # its row would be named the last snapshot on /status, one more per failed try.
        master.index.recovery.add_snapshot(blob_id, taken_at)
        try:
            await _store(master, part, sidecars.snapshot_sidecar(blob_id, taken_at, size, sha256))
        except BaseException:
            master.index.recovery.drop_snapshots([blob_id])
            raise
    finally:
        part.unlink(missing_ok=True)
    _keep_newest(master)
    log.info("index snapshot %s taken (%d bytes)", blob_id, size)
    return blob_id


async def _store(master: Master, path: Path, sidecar: dict) -> None:
    """Write the file as a blob on fresh replicas and commit it (as uploads do)."""
    blob_id = sidecar["blob_id"]
    fanout = transfer.ReplicaFanout(blob_id, master.min_replicas, master.pools, master.stall_s, sidecar)
    master.index.ownership.begin_blob(blob_id, time.time())
    master.in_flight.add(blob_id)
    try:
        await blob_writers.open_replicas(master, fanout)
        async with aiofiles.open(path, "rb") as file:
            while piece := await file.read(CHUNK_BYTES):
                await fanout.write(piece)
        nodes = await fanout.finish(sidecar["size"], sidecar["sha256"])
        master.index.commit_blob(StoredBlob(blob_id, sidecar["size"], sidecar["sha256"], nodes), time.time())
    except BaseException:
        master.index.ownership.abandon_blobs([blob_id], time.time())
        await fanout.abort()
        raise
    finally:
        master.in_flight.discard(blob_id)


def _keep_newest(master: Master) -> None:
    """Retire all but the SNAPSHOTS_KEPT newest snapshots; forget rows of lost ones."""
    rows = master.index.recovery.snapshots()
    lost = [blob_id for blob_id, _ in rows if blob_id not in master.index.replicas]
    kept = [blob_id for blob_id, _ in rows if blob_id in master.index.replicas]
    old = kept[:-SNAPSHOTS_KEPT]
    for blob_id in old:
        master.index.retire_blob(blob_id, time.time())
    if lost or old:
        master.index.recovery.drop_snapshots(lost + old)


async def snapshot_forever(master: Master, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        await take_logging_failure(master)


async def take_logging_failure(master: Master) -> None:
    """take(), with a failure logged rather than raised: the master runs on without it."""
    try:
        await take(master)
    except (transfer.ReplicationFailed, OSError, sqlite3.Error) as exc:
        log.error("%s", failure_sentence(exc, master.min_replicas))


def failure_sentence(exc: Exception, min_replicas: int) -> str:
    """The log line for a snapshot that failed. A replication failure's own sentence is
    written for an uploader ("could store the video ... try again shortly (the master's
    log says why)"), which in the master's log misnamed what failed and pointed at itself;
    the lines above it (one per replica dropped) say why each datanode refused."""
    if isinstance(exc, transfer.ReplicationFailed):
        why = (
            "the datanodes are out of space"
            if exc.code == "no_space"
            else "the warnings above say why each refused"
        )
        stored = f"fewer than {counted(min_replicas, 'datanode')} could store it ({why})"
    else:
        stored = f"the index could not be copied ({exc})"
    return (
        f"index snapshot failed: {stored}; the previous snapshot stays the newest, "
        "the one a --recover would load"
    )


async def take_at_stop(master: Master) -> None:
    """A last snapshot as the master stops cleanly, bounded by STOP_SNAPSHOT_TIMEOUT_S."""
    try:
        async with asyncio.timeout(STOP_SNAPSHOT_TIMEOUT_S):
            await take_logging_failure(master)
    except TimeoutError:
        log.error("index snapshot at stop gave up after %gs", STOP_SNAPSHOT_TIMEOUT_S)
