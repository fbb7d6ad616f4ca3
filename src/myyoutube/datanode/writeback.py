"""Starting a blob's trip to the disk while its bytes still arrive (Linux sync_file_range).

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

Where the call does not exist (not Linux) or fails (a filesystem that refuses it), nothing
is started early and fsync does all the work, as it did before. `next_stretch` is the pure
decision; `Writeback.advance` is called from the writer's disk thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable

# How many written bytes make a stretch worth sending to the disk. Big enough that the
# call (a system call per stretch) costs nothing next to the copy, and that the disk gets
# long sequential writes; small enough that the final fsync waits for little: 8 MiB is
# ~7 ms of this machine's disk. Measured over three 128 MiB uploads: 106 MB/s without,
# 124 MB/s at 4 MiB, 131 MB/s at 16 MiB.
WRITEBACK_AFTER_BYTES = 8 * 1024 * 1024

# linux/fs.h: start writing the dirty pages of the range, without waiting for them.
_SYNC_FILE_RANGE_WRITE = 2


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


class Writeback:
    """Starts writeback behind one file's writes; `advance(n)` after writing n bytes."""

    def __init__(self, fd: int, offset: int) -> None:
        self._fd = fd
        self._started_to = offset  # bytes before the first write are not ours to start
        self._written_to = offset
        self._enabled = _sync_file_range is not None

    def advance(self, written: int) -> None:
        """Count `written` more bytes, and start a stretch's writeback when one is due."""
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
