"""`myyoutube admin backup FILE`: save a consistent copy of the master's index.

Theory of operation
-------------------
The copy comes from GET /api/admin/backup (web/backup.py) and is written to `FILE.part`
in a worker thread, chunk by chunk. Only a complete download that SQLite itself finds
intact (`PRAGMA quick_check`) is fsynced and renamed to FILE, so FILE is either a usable
backup or absent. FILE is readable by its owner only (0600), whatever the umask: it
holds password hashes and sessions; `myyoutube-master --restore FILE` (or `myyoutube-cluster
--restore FILE`) starts a master from it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import stat
from pathlib import Path
from typing import BinaryIO

from myyoutube.webclient import Api, ToolError

# Pieces read from the response and written at a time.
READ_BYTES = 256 * 1024
# What GET /api/admin/backup answers with (web/backup.py).
BACKUP_TYPE = "application/vnd.sqlite3"
# The saved backup is its owner's alone, as the index it copies is on the master.
PRIVATE_FILE_MODE = 0o600


async def save_backup(api: Api, target: Path, force: bool) -> dict:
    """Download the index into `target`; its path, size and sha256. A target that cannot
    be written (a folder, a full disk) is a ToolError naming it; nothing is left behind."""
    if str(target) == "-":
        # It would be a file named "-", which --restore then reads as standard input.
        raise ToolError("- (standard output) is not offered; name the file to save the backup in")
    if await asyncio.to_thread(target.is_dir):
        raise ToolError(f"{target} is a folder; name the file to save the backup in")
    if await asyncio.to_thread(lambda: target.exists() and not target.is_file()):
        raise ToolError(f"{target} is not a regular file; name another file to save the backup in")
    if await asyncio.to_thread(target.exists) and not force:
        raise ToolError(f"{target} already exists; use --force to replace it")
    part = target.with_name(target.name + ".part")
    digest, size = hashlib.sha256(), 0
    try:
        file = await asyncio.to_thread(_create_private, part)
    except OSError as exc:
        # Named as the operator wrote it: FILE.part is this command's own detail.
        raise ToolError(f"cannot save the backup to {target}: {exc.strerror or exc}") from None
    try:
        async with api.call("GET", "/api/admin/backup") as response:
            if response.content_type != BACKUP_TYPE:  # another server's page, not "damaged"
                raise ToolError(
                    f"{api.url} sent {response.content_type}, not the index MyYoutube sends "
                    f"({BACKUP_TYPE}); is it MyYoutube? Nothing was saved"
                )
            async for piece in response.content.iter_chunked(READ_BYTES):
                digest.update(piece)
                size += len(piece)
                await asyncio.to_thread(file.write, piece)
        await asyncio.to_thread(_publish, file, part, target)
    except BaseException as exc:
        await asyncio.to_thread(_discard, file, part)
        if isinstance(exc, OSError):
            raise ToolError(f"cannot save the backup to {target}: {exc.strerror or exc}") from None
        raise
    return {"path": str(target), "size": size, "sha256": digest.hexdigest()}


def _create_private(part: Path) -> BinaryIO:
    """FILE.part, opened for writing and readable by its owner only (0600) whatever the
    umask: the index holds every account's password hash and sessions."""
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    if stat.S_ISREG(os.fstat(fd).st_mode):  # a leftover FILE.part keeps its mode otherwise
        os.fchmod(fd, PRIVATE_FILE_MODE)
    return os.fdopen(fd, "wb")


def _publish(file, part: Path, target: Path) -> None:
    file.flush()
    os.fsync(file.fileno())
    file.close()
    try:
        with sqlite3.connect(f"file:{part}?mode=ro", uri=True) as db:
            intact = db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        db.close()
    except sqlite3.Error:
        intact = False
    if not intact:
        raise ToolError(
            "the backup arrived damaged (SQLite's quick_check fails); nothing was saved, try again"
        )
    os.replace(part, target)


def _discard(file, part: Path) -> None:
    file.close()
    part.unlink(missing_ok=True)
