"""Resumable upload sessions in the master's index (table `upload_sessions`).

Theory of operation
-------------------
A session is what a tus upload URL names: an open blob on its replicas, the name it will
be committed under, its owner, the declared length, the confirmed offset (bytes every
listed replica has fsynced) and when it expires. It is written to SQLite at creation and
after every append, before the uploader hears the new offset, so a master that restarts
(or a web front end other than the one that began it) carries on from the same byte.
Sessions are mirrored in memory like the rest of the index.

The session's blob id is recorded pending (index.ownership.begin_blob) when the session is made,
and is not retired at start-up while its session lives: a master restart does not end an
upload. `replicas` are the nodes holding the confirmed bytes; `former` are nodes that held
some once (lost and replaced), whose leftovers are deleted when the session ends.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field


@dataclass
class Session:
    upload_id: str
    blob_id: str
    name: str
    owner: str
    visibility: str
    title: str
    length: int
    offset: int
    replicas: list[str]
    former: list[str]
    created_at: float
    expires_at: float
    # Held while the session is appended to, read back or finished: one at a time.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, compare=False, repr=False)

    def public(self) -> dict:
        """What the web front end is told (internal addresses stay inside)."""
        return {
            "id": self.upload_id,
            "name": self.name,
            "title": self.title,
            "visibility": self.visibility,
            "length": self.length,
            "offset": self.offset,
            "expires_at": self.expires_at,
        }


_FIELDS = (
    "upload_id, blob_id, name, owner, visibility, title, length, offset, replicas, former,"
    " created_at, expires_at"
)


class SessionTable:
    """The sessions in the index, mirrored in `sessions` (id -> Session)."""

    def __init__(
        self, db: sqlite3.Connection, transaction: Callable[[], AbstractContextManager[None]]
    ) -> None:
        self._db, self._transaction = db, transaction
        self.sessions: dict[str, Session] = {}
        for row in db.execute(f"SELECT {_FIELDS} FROM upload_sessions"):
            values = list(row)
            values[8], values[9] = json.loads(values[8]), json.loads(values[9])
            session = Session(*values)
            self.sessions[session.upload_id] = session

    def add(self, session: Session) -> None:
        with self._transaction():
            self._db.execute(
                f"INSERT INTO upload_sessions ({_FIELDS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    session.upload_id,
                    session.blob_id,
                    session.name,
                    session.owner,
                    session.visibility,
                    session.title,
                    session.length,
                    session.offset,
                    json.dumps(session.replicas),
                    json.dumps(session.former),
                    session.created_at,
                    session.expires_at,
                ),
            )
        self.sessions[session.upload_id] = session

    def save(self, session: Session) -> None:
        """Write the session's offset, replicas and expiry (durably) after a change."""
        with self._transaction():
            self._db.execute(
                "UPDATE upload_sessions SET offset = ?, replicas = ?, former = ?, expires_at = ?"
                " WHERE upload_id = ?",
                (
                    session.offset,
                    json.dumps(session.replicas),
                    json.dumps(session.former),
                    session.expires_at,
                    session.upload_id,
                ),
            )

    def remove(self, upload_id: str) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM upload_sessions WHERE upload_id = ?", (upload_id,))
        self.sessions.pop(upload_id, None)
