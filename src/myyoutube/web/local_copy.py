"""A web process's own copy of a resumable upload's bytes, to spare reading them back.

Theory of operation
-------------------
The bytes of a resumable upload live in the cluster, and at its end the web reads them
back into its spool to probe the file (resumable.py). Usually, though, one web process
received every PATCH of the upload in order: it then writes each PATCH's bytes to a file
in the spool folder as it relays them, and at the end moves that file into place instead
of reading the upload back through the master.

The file must hold exactly the upload's confirmed bytes. An append starts it only at
offset 0 or where the file ends; an append that is not confirmed cuts it back (a copy of
no byte is removed); a file of any other length (the upload went on through another web
process meanwhile) is dropped, and the end falls back to reading the bytes back. Copies
of uploads that were never finished here (expired, finished through another process) are
removed once older than STALE_AFTER_S, whenever a new upload starts. The copy only
spares work: when the web's own disk refuses it (full, read-only), it is dropped and the
upload goes on, read back at its end like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import IO

from myyoutube.batched_writes import BatchedWriter
from myyoutube.quietlog import QuietLog
from myyoutube.web.common import SPOOL_BATCH_BYTES

quiet = QuietLog(logging.getLogger(__name__))

PREFIX = "myyoutube-tus-"

# The master's default --upload-expiry: a copy untouched this long belongs to an upload
# that is gone (or will be read back, if it was finished through another process).
STALE_AFTER_S = 24 * 3600.0


class LocalCopy:
    def __init__(self, spool_dir: Path | None, upload_id: str) -> None:
        self.path = Path(spool_dir or tempfile.gettempdir()) / f"{PREFIX}{upload_id}"
        self._file: IO[bytes] | None = None
        self._writes: BatchedWriter | None = None  # while _file is open
        self._started_at = 0  # the offset the current append started at

    async def start(self, offset: int) -> None:
        """Copy the append about to start at `offset`, if the copy ends there (or if it
        is the first); otherwise drop the copy."""
        try:
            self._file = await asyncio.to_thread(self._open_at, offset)
        except OSError as exc:
            await self._lost(exc)
            return
        if self._file is not None:
            self._writes = BatchedWriter(self._file.writelines, SPOOL_BATCH_BYTES)
            self._started_at = offset
        if offset == 0:
            await asyncio.to_thread(_remove_stale, self.path.parent, time.time())

    def _open_at(self, offset: int) -> IO[bytes] | None:
        try:
            size: int | None = self.path.stat().st_size
        except FileNotFoundError:
            size = None
        if offset != 0 and size != offset:
            self.path.unlink(missing_ok=True)
            return None
        file = open(self.path, "r+b" if size is not None else "wb")  # noqa: SIM115 (closed in end())
        file.truncate(offset)
        file.seek(offset)
        return file

    async def write(self, data: bytes) -> None:
        if self._writes is not None:
            try:
                await self._writes.write(data)  # an earlier batch's error comes out here
            except OSError as exc:
                await self._lost(exc)

    async def _lost(self, exc: OSError) -> None:
        """The web's own disk refused the copy: drop it, and let the upload go on."""
        quiet.warning("a resumable upload's local copy %s is dropped: %s", self.path, exc.strerror or exc)
        file, self._file, writes, self._writes = self._file, None, self._writes, None
        try:
            if writes is not None:
                await writes.abandon()  # the file may be closed only after its batch
            if file is not None:
                with contextlib.suppress(OSError):  # a full disk fails the close's flush too
                    await asyncio.to_thread(file.close)
        finally:
            with contextlib.suppress(OSError):
                await self.discard()

    async def end(self, confirmed: int) -> None:
        """The append ended with `confirmed` bytes held by the cluster: keep exactly those.
        With none confirmed the file is removed: an empty one stayed behind a first append
        refused (413 past the upload's length), for a day, or for good if the refusal ended
        the upload too (a creation's body); the next append at 0 makes the copy again."""
        file, writes = self._file, self._writes
        if file is None or writes is None:
            return
        try:
            if confirmed > self._started_at:
                await writes.flush()
            else:
                await writes.abandon()  # none of this append is kept: no need to write it
        except OSError as exc:
            await self._lost(exc)
            return
        except BaseException:
            # Cancelled midway, maybe with a batch still being written by a thread, which
            # a close here would race. The file closes when that batch lets go of it (the
            # last reference), and its size, no longer what the cluster confirmed, makes
            # the next append (or the end) drop it.
            self._file = self._writes = None
            raise
        self._file, self._writes = None, None
        try:
            await asyncio.to_thread(_cut_and_close, file, confirmed)
        except OSError as exc:
            # The file's own buffer could not be flushed (a full disk): it is closed
            # all the same (_cut_and_close), and dropped like any refused copy.
            await self._lost(exc)
            return
        if confirmed == 0:
            await self.discard()

    async def take(self, length: int, into: Path) -> bool:
        """Move the copy to `into` if it holds all `length` bytes; whether it did."""

        def move() -> bool:
            try:
                if self.path.stat().st_size != length:
                    return False
                os.replace(self.path, into)
            except OSError:
                return False
            return True

        return await asyncio.to_thread(move)

    async def discard(self) -> None:
        # In a worker thread: freeing the blocks of a large file takes a while.
        await asyncio.to_thread(self.path.unlink, missing_ok=True)


def _cut_and_close(file: IO[bytes], confirmed: int) -> None:
    try:
        file.truncate(confirmed)
    finally:
        file.close()


def _remove_stale(folder: Path, now: float) -> None:
    for path in folder.glob(f"{PREFIX}*"):
        try:
            if now - path.stat().st_mtime > STALE_AFTER_S:
                path.unlink()
        except OSError:
            pass  # removed by another process meanwhile
