"""The index's schema and its migrations: how an index written by any release becomes current.

Theory of operation
-------------------
The schema carries its version in `PRAGMA user_version`. `_SCHEMA_V0` is the first
release's schema (version 0); each later version is one step of `_MIGRATIONS`, applied in
order. An index written by an older release is migrated in place at start-up, one
transaction per step, and a fresh index runs every step, so old and new indexes end up
identical. A step is never edited once released: a change to the schema is a new step
appended to the list. An index newer than this release is refused (`IndexTooNew`) rather
than opened.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

# The schema of the first release (user_version 0). Later versions are _MIGRATIONS applied
# in order; a fresh index runs all of them, so old and new indexes end up identical.
_SCHEMA_V0 = """
CREATE TABLE IF NOT EXISTS blobs (
    blob_id TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS replicas (
    blob_id TEXT NOT NULL REFERENCES blobs(blob_id) ON DELETE CASCADE,
    node TEXT NOT NULL,
    added_at REAL NOT NULL,
    PRIMARY KEY (blob_id, node)
);
CREATE TABLE IF NOT EXISTS videos (
    name TEXT PRIMARY KEY,
    blob_id TEXT NOT NULL REFERENCES blobs(blob_id),
    content_type TEXT NOT NULL,
    uploaded_at REAL NOT NULL,
    extra TEXT NOT NULL DEFAULT '{}',
    poster_blob_id TEXT REFERENCES blobs(blob_id)
);
"""

_MIGRATIONS = [
    # 1: blob ids the index allocated but has not committed (a write in progress), and
    # blob ids it retired (to be deleted wherever they turn up).
    """
    CREATE TABLE pending_blobs (blob_id TEXT PRIMARY KEY, started_at REAL NOT NULL);
    CREATE TABLE retired_blobs (blob_id TEXT PRIMARY KEY, retired_at REAL NOT NULL);
    CREATE INDEX retired_blobs_by_time ON retired_blobs (retired_at);
    """,
    # 2: the catalogue. Videos get a title (existing ones from their file name, through the
    # default_title function registered on the connection), a description and a view
    # count, and an INTEGER PRIMARY KEY: the search index refers to videos by row id, and
    # only an explicit integer key is kept by VACUUM. SQLite cannot add a primary key to a
    # table, so the table is rebuilt. duration_s is computed from the stored details so a
    # listing can sort by it (0 when unknown). The title collates NOCASE so "apple" and
    # "Banana" sort as a person expects (ASCII letters only; others by code point).
    # Each sort order gets an index on (key, name), its keyset; videos_fts is the FTS5 search
    # index over title, description and name, read from the videos table (external content)
    # and kept in step with it by triggers; prefix indexes of 1 to 3 characters make a short
    # prefix ("ho"*) one lookup instead of a merge of every word that starts with it.
    """
    CREATE TABLE videos_v2 (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        blob_id TEXT NOT NULL REFERENCES blobs(blob_id),
        content_type TEXT NOT NULL,
        uploaded_at REAL NOT NULL,
        extra TEXT NOT NULL DEFAULT '{}',
        poster_blob_id TEXT REFERENCES blobs(blob_id),
        title TEXT NOT NULL COLLATE NOCASE,
        description TEXT NOT NULL DEFAULT '',
        views INTEGER NOT NULL DEFAULT 0,
        duration_s REAL GENERATED ALWAYS AS (coalesce(json_extract(extra, '$.duration_s'), 0.0)) VIRTUAL
    );
    INSERT INTO videos_v2 (name, blob_id, content_type, uploaded_at, extra, poster_blob_id, title)
        SELECT name, blob_id, content_type, uploaded_at, extra, poster_blob_id, default_title(name)
        FROM videos ORDER BY uploaded_at, name;
    DROP TABLE videos;
    ALTER TABLE videos_v2 RENAME TO videos;
    CREATE INDEX videos_by_upload ON videos (uploaded_at, name);
    CREATE INDEX videos_by_title ON videos (title, name);
    CREATE INDEX videos_by_duration ON videos (duration_s, name);
    CREATE INDEX videos_by_views ON videos (views, name);
    CREATE VIRTUAL TABLE videos_fts USING fts5(
        title, description, name,
        content = 'videos', content_rowid = 'id',
        tokenize = 'unicode61 remove_diacritics 2', prefix = '1 2 3'
    );
    CREATE TRIGGER videos_fts_insert AFTER INSERT ON videos BEGIN
        INSERT INTO videos_fts (rowid, title, description, name)
            VALUES (new.id, new.title, new.description, new.name);
    END;
    CREATE TRIGGER videos_fts_delete AFTER DELETE ON videos BEGIN
        INSERT INTO videos_fts (videos_fts, rowid, title, description, name)
            VALUES ('delete', old.id, old.title, old.description, old.name);
    END;
    CREATE TRIGGER videos_fts_update AFTER UPDATE OF title, description, name ON videos BEGIN
        INSERT INTO videos_fts (videos_fts, rowid, title, description, name)
            VALUES ('delete', old.id, old.title, old.description, old.name);
        INSERT INTO videos_fts (rowid, title, description, name)
            VALUES (new.id, new.title, new.description, new.name);
    END;
    INSERT INTO videos_fts (videos_fts) VALUES ('rebuild');
    """,
    # 3: datanodes by their stable id, and the address each was last seen at (replicas
    # are listed by address; when a node comes back at another, they move with it).
    """
    CREATE TABLE nodes (node_id TEXT PRIMARY KEY, address TEXT NOT NULL, seen_at REAL NOT NULL);
    """,
    # 4: accounts (master/users.py). Users with an Argon2id hash, a role and a quota (NULL:
    # the master's default); tokens by the SHA-256 of the token, never the token itself.
    # Every video gets an owner and a visibility: those stored before accounts existed
    # belong to the first admin and stay public, as they were.
    """
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL,
        quota_bytes INTEGER,
        created_at REAL NOT NULL
    );
    CREATE TABLE tokens (
        digest TEXT PRIMARY KEY,
        user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_used REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX tokens_by_user ON tokens (user);
    ALTER TABLE videos ADD COLUMN owner TEXT NOT NULL DEFAULT 'admin';
    ALTER TABLE videos ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public';
    CREATE INDEX videos_by_owner ON videos (owner);
    """,
    # 5: transcoding (master/jobs.py). One job per rung of a video's ladder, with its
    # lease and retries; one rendition per finished job, each its own blob (so a blob's
    # kind is known: a video's blob_id is its original, poster_blob_id its poster, a
    # renditions row a rendition of that height), with the fragment index the HLS
    # playlists are made from (kept here, not in memory: a few KB to 100 KB each).
    """
    CREATE TABLE transcode_jobs (
        job_id TEXT PRIMARY KEY,
        video TEXT NOT NULL,
        rung TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        node TEXT,
        lease_until REAL NOT NULL,
        not_before REAL NOT NULL,
        failure TEXT,
        created_at REAL NOT NULL
    );
    CREATE INDEX transcode_jobs_by_video ON transcode_jobs (video);
    CREATE TABLE renditions (
        blob_id TEXT PRIMARY KEY REFERENCES blobs(blob_id),
        video TEXT NOT NULL,
        height INTEGER NOT NULL,
        width INTEGER NOT NULL,
        bandwidth INTEGER NOT NULL,
        fragment_index TEXT NOT NULL
    );
    CREATE INDEX renditions_by_video ON renditions (video, height);
    """,
    # 6: resumable upload sessions (upload_sessions.py). The name is UNIQUE: a session
    # reserves it until it is committed, terminated or expires. replicas and former are
    # JSON lists of datanode addresses.
    """
    CREATE TABLE upload_sessions (
        upload_id TEXT PRIMARY KEY,
        blob_id TEXT NOT NULL,
        name TEXT NOT NULL UNIQUE,
        owner TEXT NOT NULL,
        visibility TEXT NOT NULL,
        title TEXT NOT NULL,
        length INTEGER NOT NULL,
        offset INTEGER NOT NULL,
        replicas TEXT NOT NULL,
        former TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX upload_sessions_by_expiry ON upload_sessions (expires_at);
    """,
    # 7: recovery (issue 15; recovery_index.py). Each video's record has a version, bumped
    # by every change its blobs' sidecars carry; sidecars_due names the videos whose
    # sidecars are behind, filled by triggers in the same transaction as the change, so a
    # crash cannot lose one (existing videos are all due: they have none yet); a new
    # rendition changes its video's record too. snapshots lists the index-snapshot blobs
    # kept; the blob indexes find the video of a blob.
    """
    ALTER TABLE videos ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    CREATE TABLE sidecars_due (name TEXT PRIMARY KEY);
    CREATE TABLE snapshots (blob_id TEXT PRIMARY KEY, taken_at REAL NOT NULL);
    CREATE INDEX videos_by_blob ON videos (blob_id);
    CREATE INDEX videos_by_poster ON videos (poster_blob_id);
    CREATE TRIGGER videos_sidecars_insert AFTER INSERT ON videos BEGIN
        INSERT OR IGNORE INTO sidecars_due (name) VALUES (new.name);
    END;
    CREATE TRIGGER videos_sidecars_update
        AFTER UPDATE OF name, blob_id, content_type, uploaded_at, extra, poster_blob_id, title,
            description, owner, visibility ON videos BEGIN
        UPDATE videos SET version = version + 1 WHERE id = new.id;
        INSERT OR IGNORE INTO sidecars_due (name) VALUES (new.name);
    END;
    CREATE TRIGGER videos_sidecars_delete AFTER DELETE ON videos BEGIN
        DELETE FROM sidecars_due WHERE name = old.name;
    END;
    CREATE TRIGGER renditions_sidecars_insert AFTER INSERT ON renditions BEGIN
        UPDATE videos SET version = version + 1 WHERE name = new.video;
        INSERT OR IGNORE INTO sidecars_due (name) VALUES (new.video);
    END;
    INSERT INTO sidecars_due (name) SELECT name FROM videos;
    """,
]
SCHEMA_VERSION = len(_MIGRATIONS)


class IndexTooNew(Exception):
    """The index was written by a newer release; opening it could corrupt it."""


def migrate(db: sqlite3.Connection, transaction: Callable) -> None:
    """Bring the index at `db` to SCHEMA_VERSION, one `transaction()` per step; refuse
    one written by a newer release."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise IndexTooNew(
            f"the index has schema version {version}, newer than this release's "
            f"{SCHEMA_VERSION}; run the newer MyYoutube or restore a backup"
        )
    db.executescript(_SCHEMA_V0)
    for step in range(version, SCHEMA_VERSION):
        with transaction():
            for statement in _statements(_MIGRATIONS[step]):
                db.execute(statement)
            # PRAGMA takes no parameters; the value is our own integer.
            db.execute(f"PRAGMA user_version = {step + 1}")


def _statements(script: str) -> list[str]:
    """The SQL statements of a script, split at the semicolons that end one (not those
    inside a trigger's body: sqlite3.complete_statement knows the difference)."""
    statements, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending)
            pending = ""
    return statements
