"""Blobs kept open for reading: a file descriptor and the checksums of recently read blobs.

Theory of operation
-------------------
A player seeking through a video asks many short ranges of one blob. Opening the blob
and its checksum file for each range costs two opens, a read and a hop to a worker
thread, which is most of what a 64 KiB answer costs a datanode. So the store keeps the
last OPEN_READ_HANDLES blobs it read open (least recently used goes first), with their
checksums in memory (4 bytes per 256 KiB block: 16 KiB for a GiB).

A handle must never outlive the file it was opened on: the store drops it whenever its
record of that blob changes (BlobStore._record: published, deleted, found changed by a
rescan), and a handle opened while any record changed is used for its own read only and
not kept, since the blob may have been replaced meanwhile. Reads share a handle through
pread, which has no file position; a handle dropped while reads use it is closed by the
last of them (`users`).

Blocks are read on the event loop when the page cache has them: preadv with RWF_NOWAIT
returns them at once or fails with EAGAIN, and only then does the read hop to a worker
thread, where waiting on the disk stalls no one. Where the kernel or file system does
not support RWF_NOWAIT, every block goes to the worker thread, as before.

A block that must come from the disk is usually the first of many: blobs leave the page
cache once written (writeback.py), so a stream of a new video reads from the disk. The
kernel's own readahead goes a few hundred KiB ahead, one trip per block; so a miss also
asks the kernel (posix_fadvise WILLNEED, which queues the reads and returns) for what the
read still wants, up to READ_AHEAD_BYTES, and the blocks after it are then found cached.
"""

from __future__ import annotations

import errno
import mmap
import os
import time
from collections import OrderedDict
from collections.abc import Callable

# Blobs kept open for reads. Each costs one file descriptor and its checksums; a node
# serves a few hot videos at a time, and the fd budget is shared with client
# connections (admission.py keeps headroom), so a small number covers the hot set.
OPEN_READ_HANDLES = 64

# How far past a block missing from the page cache a read asks the disk for at once. A
# few tens of ms of a disk's sequential reading: the stream's next blocks are then cached
# when asked for, while a viewer who stops early has cost the disk little.
READ_AHEAD_BYTES = 8 * 1024 * 1024

# What preadv(RWF_NOWAIT) raises when the kernel or file system cannot do it at all
# (as opposed to EAGAIN: "not in the page cache right now").
_NOWAIT_UNSUPPORTED = (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS)


class ReadHandle:
    """An open blob: its descriptor, the CRC32C of every block, and who is reading it."""

    __slots__ = ("crcs", "dropped", "fd", "used_at", "users")

    def __init__(self, fd: int, crcs: bytes) -> None:
        self.fd = fd
        self.crcs = crcs
        self.users = 0
        self.dropped = False
        self.used_at = time.monotonic()  # when a reader last took it

    def for_one_read(self) -> ReadHandle:
        """Taken by one reader only, and closed when that reader lets go."""
        self.users, self.dropped = 1, True
        return self


class ReadHandles:
    """The open blobs, least recently used first."""

    def __init__(
        self, block_bytes: int, limit: int = OPEN_READ_HANDLES, close: Callable[[int], None] = os.close
    ) -> None:
        """`close`: how a descriptor no reader needs any more is closed."""
        assert limit > 0
        self._limit = limit
        self._close = close
        self._handles: OrderedDict[str, ReadHandle] = OrderedDict()
        # Bumped on every change of any blob's record, so an open that raced a change
        # is not kept (see the module docstring).
        self.changes = 0
        self.nowait_reads = hasattr(os, "RWF_NOWAIT")
        # Where blocks are read on the event loop: one at a time, copied out at once.
        # Page-aligned (an anonymous mapping), not a bytearray. A block in the page cache
        # starts on a page, and on this machine's AMD EPYC the kernel's copy to us runs
        # ~5x slower when the destination starts a few bytes into a page (16 or 8: slow;
        # 0 or 64: fast), which is where a large bytearray's bytes start, after
        # malloc's 16-byte header. Measured: 172 -> 34 us per cached 256 KiB block
        # (bench/block_read.py); and a 64 KiB seek reads a whole block to check its CRC.
        self._block = mmap.mmap(-1, block_bytes, flags=mmap.MAP_PRIVATE)

    def is_open(self, blob_id: str) -> bool:
        """Whether viewers read the blob lately (its handle is kept), without counting
        this question as a use."""
        return blob_id in self._handles

    def take(self, blob_id: str) -> ReadHandle | None:
        """The blob's open handle for one more reader, or None if it is not open."""
        handle = self._handles.get(blob_id)
        if handle is not None:
            self._handles.move_to_end(blob_id)
            handle.users += 1
            handle.used_at = time.monotonic()
        return handle

    def keep(self, blob_id: str, handle: ReadHandle, changes_when_opened: int) -> ReadHandle:
        """Register a freshly opened handle, taken by its reader; returns the handle that
        reader should use (an equal one another reader opened meanwhile, if any)."""
        if changes_when_opened != self.changes:
            return handle.for_one_read()  # the blob may have changed under the open
        existing = self.take(blob_id)
        if existing is not None:  # two first reads opened it at once: keep one
            self._close(handle.fd)
            return existing
        handle.users = 1
        self._handles[blob_id] = handle
        if len(self._handles) > self._limit:
            _, oldest = self._handles.popitem(last=False)
            self._retire(oldest)
        return handle

    def release(self, handle: ReadHandle) -> None:
        """A reader is done with `handle`."""
        handle.users -= 1
        if handle.dropped and handle.users == 0:
            self._close(handle.fd)

    def drop(self, blob_id: str) -> None:
        """The blob changed: never hand out its current handle again."""
        self.changes += 1
        handle = self._handles.pop(blob_id, None)
        if handle is not None:
            self._retire(handle)

    def drop_idle(self, unused_since: float) -> int:
        """Keep no handle that no reader took since `unused_since` (time.monotonic());
        how many are still kept."""
        while self._handles:
            oldest = next(iter(self._handles.values()))  # least recently used first
            if oldest.used_at >= unused_since:
                break
            self._handles.popitem(last=False)
            self._retire(oldest)
        return len(self._handles)

    def close_all(self) -> None:
        """Keep no handle any more (each is closed once its readers are done)."""
        while self._handles:
            _, handle = self._handles.popitem()
            self._retire(handle)

    def _retire(self, handle: ReadHandle) -> None:
        handle.dropped = True
        if handle.users == 0:
            self._close(handle.fd)

    def read_if_cached(self, fd: int, offset: int, length: int) -> bytes | None:
        """`length` bytes at `offset` if the page cache holds them all, without blocking;
        None if any would have to come from the disk."""
        if not self.nowait_reads:
            return None
        assert length <= len(self._block)
        buffer = memoryview(self._block)[:length]
        try:
            got = os.preadv(fd, [buffer], offset, os.RWF_NOWAIT)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno in _NOWAIT_UNSUPPORTED:
                self.nowait_reads = False
                return None
            raise
        # A short read means part of the block was not cached (or the file is shorter
        # than its record, which the blocking read then reports as corrupt).
        # bytes(): the CRC32C library takes only bytes, and the buffer is reused.
        return bytes(buffer) if got == length else None


def read_from_disk(fd: int, offset: int, length: int, wanted_to: int) -> bytes:
    """Blocking: `length` bytes at `offset`, after asking the kernel to read ahead what the
    reader wants up to offset `wanted_to` (at most READ_AHEAD_BYTES of it)."""
    ahead = min(READ_AHEAD_BYTES, wanted_to - offset)
    if ahead > length and hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, offset, ahead, os.POSIX_FADV_WILLNEED)
    return os.pread(fd, length, offset)
