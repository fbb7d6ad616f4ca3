"""Which blobs the master owns and no longer wants: the only ones it ever deletes.

Theory of operation
-------------------
Deleting is the one thing that cannot be undone, so the index remembers which blobs it
*owns and no longer wants*: a blob id is recorded as pending before its first byte is
written (`begin_blob`), becomes a committed blob (index.py, `mark_committed` in the same
transaction), or is retired (an aborted upload, a deleted video, a write in progress
when the master died). Only retired blobs are ever deleted from datanodes. A blob a
datanode reports that this index never allocated is an orphan: kept, counted, and left
for recovery or an operator's explicit purge (`retire_orphans`). So a master started on
an empty or restored data directory cannot wipe the cluster.

Both lists live in the index's SQLite file (pending_blobs, retired_blobs), written in
the index's transactions; the retired ids are also kept in memory (`retired`), for the
reconciliation of every block report. Ids newly retired are handed out once
(`take_newly_retired`), for the master to order their deletion, and retired ids are
forgotten after RETIRED_KEEP_S, which bounds the table and the set.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager

from myyoutube.master.state import Replica

# A retired blob id is remembered this long: a datanode that comes back after longer
# still holds the copy, which is then an orphan (kept until an operator purges it).
# HDFS forgets invalidated blocks once sent; a month covers any repair or holiday.
RETIRED_KEEP_S = 30 * 24 * 3600.0


class BlobOwnership:
    """Pending and retired blob ids, in the index and (retired ones) in memory.
    `committed` is the index's own map of committed blobs (blob id -> Replica)."""

    def __init__(
        self,
        db: sqlite3.Connection,
        transaction: Callable[[], AbstractContextManager[None]],
        committed: dict[str, Replica],
    ) -> None:
        self._db, self._transaction = db, transaction
        self._committed = committed
        self.retired: set[str] = {row[0] for row in db.execute("SELECT blob_id FROM retired_blobs")}
        self._newly_retired: list[str] = []  # retired since take_newly_retired() last ran

    def retire_interrupted_writes(self, now: float) -> None:
        """Writes pending when the last master stopped died with it: their partial or
        complete copies are ours to delete. A resumable upload's blob is not: its session
        outlives the master."""
        pending = [
            row[0]
            for row in self._db.execute(
                "SELECT blob_id FROM pending_blobs WHERE blob_id NOT IN (SELECT blob_id FROM upload_sessions)"
            )
        ]
        if pending:
            with self._transaction():
                self.retire(pending, now)
            self.remember_retired(pending)

    def prune_retired(self, now: float) -> None:
        """Forget retired ids older than RETIRED_KEEP_S (bounds the table and the set)."""
        cutoff = now - RETIRED_KEEP_S
        old = [
            row[0]
            for row in self._db.execute("SELECT blob_id FROM retired_blobs WHERE retired_at < ?", (cutoff,))
        ]
        if old:
            with self._transaction():
                self._db.execute("DELETE FROM retired_blobs WHERE retired_at < ?", (cutoff,))
            self.retired.difference_update(old)

    def begin_blob(self, blob_id: str, now: float) -> None:
        """Record that `blob_id` is about to be written, before its first byte is: if the
        master dies meanwhile, the next one knows the copies are its own to delete."""
        with self._transaction():
            self._db.execute("INSERT INTO pending_blobs (blob_id, started_at) VALUES (?, ?)", (blob_id, now))

    def mark_committed(self, blob_id: str) -> None:
        """Inside the transaction that commits the blob: it is no longer pending."""
        self._db.execute("DELETE FROM pending_blobs WHERE blob_id = ?", (blob_id,))

    def is_committed(self, blob_id: str) -> bool:
        return blob_id in self._committed

    def abandon_blobs(self, blob_ids: list[str], now: float) -> None:
        """Writes that will not be committed: their copies are to be deleted."""
        abandoned = [b for b in blob_ids if not self.is_committed(b)]
        with self._transaction():
            self.retire(abandoned, now)
        self.remember_retired(abandoned)

    def retire_orphans(self, blob_ids: list[str], now: float) -> list[str]:
        """An operator's purge: unknown blobs become ours to delete. Returns those retired
        (a blob committed or retired meanwhile is left as it is)."""
        chosen = sorted({b for b in blob_ids if b not in self._committed and b not in self.retired})
        with self._transaction():
            self.retire(chosen, now)
        self.remember_retired(chosen)
        return chosen

    def retire(self, blob_ids: list[str], now: float) -> None:
        """Inside a transaction: move ids from pending (if there) to retired."""
        self._db.executemany("DELETE FROM pending_blobs WHERE blob_id = ?", [(b,) for b in blob_ids])
        self._db.executemany(
            "INSERT OR IGNORE INTO retired_blobs (blob_id, retired_at) VALUES (?, ?)",
            [(b, now) for b in blob_ids],
        )

    def remember_retired(self, blob_ids: list[str]) -> None:
        """After the transaction that retired them committed: the ids in memory too."""
        self.retired.update(blob_ids)
        self._newly_retired.extend(blob_ids)

    def take_newly_retired(self) -> list[str]:
        """Blob ids retired since the last call: the master orders their deletion on every
        node that reported them (a heartbeat's delta never mentions an unchanged blob)."""
        taken, self._newly_retired = self._newly_retired, []
        return taken
