"""A blob's trip to the disk while its bytes still arrive, and its exit from the page cache.

Theory of operation
-------------------
Linux writes dirty pages back on its own only once they pass `dirty_background_ratio` of
the memory (10 %: gigabytes on a server) or are 30 s old. A blob received at network speed
therefore sits whole in the page cache, and the fsync that makes it durable at the end
waits for all of it to reach the disk, with the network idle meanwhile: on this project's
two-core test machine that final fsync was a quarter of a 128 MiB upload's time.

So a `Writeback` follows what a writer has written and, every WRITEBACK_AFTER_BYTES, asks
the kernel to start writing that stretch (sync_file_range with SYNC_FILE_RANGE_WRITE,
which queues the pages and returns without waiting). The disk then works while the next
bytes arrive, and the final fsync waits for the tail only; HDFS's datanodes do the same
("sync behind writes"). It changes no guarantee: durability still comes from fsync alone.

Then it drops what is on the disk from the page cache ("drop behind writes", HDFS again):
once a stretch is started, the one before it is waited for (it had a stretch's time to
reach the disk) and let go (posix_fadvise DONTNEED), and `fsync()` lets go of the rest.
Why: a datanode's copy of an upload is rarely read soon (the web probes its own spool, and
viewers are served from one replica of three), so keeping it only pushes the videos being
watched out of the cache; and copying into pages just freed is far cheaper than growing
the cache into memory not touched before. On the test machine (a virtual machine, where a
page's first touch costs a trip to the host) 512 MiB uploads went from 60-73 to 94 MB/s
in alternated runs, with each datanode's CPU down by a third or more. Reading such a blob
later costs a disk read, once.
A wait is where a failed write shows: the kernel reports it to an open file once, so the
fsync after it would succeed. `advance` raises it, and `fsync()` raises it again.

Where a call does not exist (not Linux) or fails (a filesystem that refuses it), nothing
is started early or dropped and fsync does all the work, as it did before. `next_stretch`
is the pure decision; `advance` and `fsync` are called from the writer's disk thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import sys
from collections.abc import Callable

# How many written bytes make a stretch worth sending to the disk. Big enough that the
# call (a system call per stretch) costs nothing next to the copy, and that the disk gets
# long sequential writes; small enough that the final fsync waits for little: 8 MiB is
# ~7 ms of this machine's disk. Measured over three 128 MiB uploads: 106 MB/s without,
# 124 MB/s at 4 MiB, 131 MB/s at 16 MiB.
WRITEBACK_AFTER_BYTES = 8 * 1024 * 1024

# linux/fs.h: start writing the dirty pages of the range, without waiting for them; with
# both waits, return once every page of the range that was dirty is on the disk.
_SYNC_FILE_RANGE_WRITE = 2
_SYNC_FILE_RANGE_WRITE_AND_WAIT = 1 | 2 | 4


def next_stretch(started_to: int, written_to: int) -> tuple[int, int] | None:
    """The (offset, length) to start writing back, given the offset up to which writeback
    was started and the offset up to which bytes are written; None while the unstarted
    part is shorter than WRITEBACK_AFTER_BYTES."""
    if written_to - started_to < WRITEBACK_AFTER_BYTES:
        return None
    return started_to, written_to - started_to


def _find_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return None  # a libc without it (or none found): fsync does all the work
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int
    return call


# ctypes lets go of the GIL during the call, so the event loop runs beside it.
_sync_file_range = _find_sync_file_range()


def drop_cached(fd: int, offset: int, length: int) -> None:
    """Let go of the file's cached pages in the range (length 0: to the end). Only clean
    pages go, so it never loses a byte; a refusal only means they stay cached."""
    if hasattr(os, "posix_fadvise"):
        try:
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass


class Writeback:
    """Starts writeback behind one file's writes and drops what reached the disk from the
    page cache: `advance(n)` after writing n bytes, `fsync()` to end."""

    def __init__(self, fd: int, offset: int) -> None:
        self._fd = fd
        self._first = offset  # bytes before the first write are not this writer's
        self._started_to = offset
        self._written_to = offset
        self._enabled = _sync_file_range is not None
        # The stretch whose writeback was started last, still cached: waited for and
        # dropped when the next one starts, so the disk has a stretch's time to write it.
        self._in_flight: tuple[int, int] | None = None
        self._failed = 0  # the errno of a failed write a wait reported, which fsync may not

    def advance(self, written: int) -> None:
        """Count `written` more bytes; when a stretch is due, start its writeback and
        drop the one before it."""
        self._written_to += written
        stretch = next_stretch(self._started_to, self._written_to) if self._enabled else None
        if stretch is None:
            return
        assert _sync_file_range is not None  # _enabled says so
        if _sync_file_range(self._fd, *stretch, _SYNC_FILE_RANGE_WRITE) != 0:
            # EINVAL or ESPIPE from a filesystem that cannot: not an error, since fsync
            # still makes the bytes durable; stop asking for this file.
            self._enabled = False
            return
        self._started_to = self._written_to
        if self._in_flight is not None:
            if _sync_file_range(self._fd, *self._in_flight, _SYNC_FILE_RANGE_WRITE_AND_WAIT) != 0:
                # The wait reports a write the disk failed (EIO, ENOSPC) to this open file
                # once, and the kernel then tells its fsync nothing of it: kept, raised
                # now and by fsync(), or the bytes would be confirmed as durable.
                self._failed = ctypes.get_errno() or errno.EIO
                self._enabled, self._in_flight = False, None
                raise self._failure()
            drop_cached(self._fd, *self._in_flight)
        self._in_flight = stretch

    def _failure(self) -> OSError:
        return OSError(self._failed, f"writing back the file failed: {os.strerror(self._failed)}")

    def fsync(self) -> None:
        """Make the file durable (os.fsync; its errors are the caller's, and so is a
        failed write found by `advance`), then drop what this writer wrote from the page
        cache."""
        os.fsync(self._fd)
        if self._failed:
            raise self._failure()
        drop_cached(self._fd, self._first, 0)
        self._in_flight = None
