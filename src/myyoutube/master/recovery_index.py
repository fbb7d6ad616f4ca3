"""The index's tables for recovery: record versions, sidecars behind, snapshots kept.

Theory of operation
-------------------
The index's recovery migration gives every video a `version`, bumped by a trigger whenever a field a
sidecar carries changes, and lists in `sidecars_due` every video whose blobs' sidecars
have not yet been brought up to date (also by triggers, in the change's own transaction).
sidecars.py delivers them through the heartbeats and calls `delivered` once every
holder has its copy. `snapshots` lists the index-snapshot blobs kept (snapshots.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager


class RecoveryIndex:
    def __init__(
        self, db: sqlite3.Connection, transaction: Callable[[], AbstractContextManager[None]]
    ) -> None:
        self._db = db
        self._transaction = transaction

    # --- sidecars -----------------------------------------------------------------------

    def due(self) -> list[str]:
        """Videos whose sidecars are behind their record."""
        return [row[0] for row in self._db.execute("SELECT name FROM sidecars_due ORDER BY name")]

    def behind(self) -> int:
        """How many videos' sidecars are behind their record."""
        return self._db.execute("SELECT count(*) FROM sidecars_due").fetchone()[0]

    def due_versions(self) -> list[tuple[str, int]]:
        """(name, record version) of every video whose sidecars are behind."""
        return self._db.execute(
            "SELECT d.name, v.version FROM sidecars_due d JOIN videos v ON v.name = d.name ORDER BY d.name"
        ).fetchall()

    def changes(self) -> int:
        """Rows changed through the index's connection so far: when it has not moved,
        nothing can have become due."""
        return self._db.total_changes

    def delivered(self, delivered: list[tuple[str, int]]) -> None:
        """Every holder of these videos' blobs has their sidecars of this record version
        (name, version). A video changed since stays due; one deleted is no longer."""
        with self._transaction():
            self._db.executemany(
                "DELETE FROM sidecars_due WHERE name = ?"
                " AND coalesce((SELECT version FROM videos WHERE name = ?), ?) = ?",
                [(name, name, version, version) for name, version in delivered],
            )

    def version(self, name: str) -> int | None:
        row = self._db.execute("SELECT version FROM videos WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def versions(self) -> dict[str, int]:
        """Every video's record version, by name."""
        return dict(self._db.execute("SELECT name, version FROM videos").fetchall())

    def video_of_blob(self, blob_id: str) -> str | None:
        """The name of the video this blob is a part of, if any."""
        row = self._db.execute(
            "SELECT name FROM videos WHERE blob_id = ? UNION SELECT name FROM videos WHERE poster_blob_id = ?"
            " UNION SELECT video FROM renditions WHERE blob_id = ?",
            (blob_id, blob_id, blob_id),
        ).fetchone()
        return row[0] if row else None

    # --- snapshots ----------------------------------------------------------------------

    def snapshots(self) -> list[tuple[str, float]]:
        """(blob id, taken at) of the snapshots kept, oldest first."""
        return self._db.execute(
            "SELECT blob_id, taken_at FROM snapshots ORDER BY taken_at, blob_id"
        ).fetchall()

    def add_snapshot(self, blob_id: str, taken_at: float) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO snapshots (blob_id, taken_at) VALUES (?, ?)", (blob_id, taken_at)
            )

    def drop_snapshots(self, blob_ids: list[str]) -> None:
        with self._transaction():
            self._db.executemany("DELETE FROM snapshots WHERE blob_id = ?", [(b,) for b in blob_ids])
