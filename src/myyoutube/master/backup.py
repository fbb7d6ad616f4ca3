"""Operator backups: a consistent copy of the index streamed to an admin (BackupIndex).

Theory of operation
-------------------
`myyoutube admin backup FILE` reaches the web front end (an admin's route), which asks
the master with BackupIndex for the account. The master copies its index as snapshots
do (SQLite's online backup from a connection of its own, in a worker thread, after
flushing view counts), streams the copy as Chunk frames and ends with End carrying its
size and sha256, then removes it. `myyoutube-master --restore FILE` starts from such a
copy (recovery.restore).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiofiles

from myyoutube import permissions
from myyoutube.master import snapshots
from myyoutube.protocol import CHUNK_BYTES, BackupIndex, End, Error
from myyoutube.stream import FrameStream

if TYPE_CHECKING:
    from myyoutube.master.server import Master

log = logging.getLogger(__name__)

# The admin's client may be slow to take the file (a slow link); past this it is gone.
BACKUP_STALL_TIMEOUT_S = 120.0

# Each backup's copy of the index is written beside it under a name of its own (backups
# may run at once) before it is streamed, and removed after: PART_PREFIX + id + PART_SUFFIX.
PART_PREFIX, PART_SUFFIX = "backup-", ".part"


def remove_leftovers(data_dir: Path) -> None:
    """At start-up, the data directory locked: remove the copies that backups running when
    a master was killed left (as large as the index each; nothing else removes them)."""
    for part in data_dir.glob(f"{PART_PREFIX}*{PART_SUFFIX}"):
        part.unlink(missing_ok=True)
        log.info("removed %s, the copy of a backup a previous run of the master left", part.name)


def handlers(master: Master) -> dict[type, Callable[[FrameStream, Any], Awaitable[None]]]:
    async def backup(connection: FrameStream, request: BackupIndex) -> None:
        if not permissions.may_admin(master.accounts.user(request.user)):
            await connection.write_frame(Error("forbidden", "Only an admin may back up the index."))
            return
        master.index.catalogue.flush_views()
        part = master.index.path.with_name(f"{PART_PREFIX}{uuid.uuid4().hex}{PART_SUFFIX}")
        try:
            async with connection.keepalive():  # the copy of a large index takes a while
                await asyncio.to_thread(snapshots.copy_index, master.index.path, part)
            digest, size = hashlib.sha256(), 0
            async with aiofiles.open(part, "rb") as file:
                while piece := await file.read(CHUNK_BYTES):
                    digest.update(piece)
                    size += len(piece)
                    await connection.write_chunk(piece, timeout=BACKUP_STALL_TIMEOUT_S)
        finally:
            await asyncio.to_thread(part.unlink, missing_ok=True)
        log.info("index backup of %d bytes sent to %s", size, request.user)
        await connection.write_frame(End(size=size, sha256=digest.hexdigest()))

    return {BackupIndex: backup}
