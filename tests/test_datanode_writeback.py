"""Tests for myyoutube.datanode.writeback: a blob's bytes head for the disk as they come,
and leave the page cache once there.

What a user would notice if this broke: an upload that ends with a long wait while its
datanodes' final fsync writes the whole video at once (a quarter of a 128 MiB upload's
time on the test machine), instead of a short one for the last few MiB; and uploads that
fill the page cache with copies nobody reads, pushing out the videos being watched (and,
on the test machine, uploads at 60 instead of 100 MB/s).

How it is seen: the kernel's flags of the file's cached pages (/proc/kpageflags, for
root) say which are still dirty. Linux writes dirty pages back on its own only after 30 s
(or past gigabytes of them), so without writeback started early every page written in the
test stays dirty for longer than the test waits. mincore(2) says which pages of a file
are in the page cache at all, without bringing any in.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import mmap
import os
import random
import struct
import time
from pathlib import Path

import pytest

import page_cache
from myyoutube.datanode import writeback
from myyoutube.datanode.blob_writer import BLOCK_BYTES
from myyoutube.datanode.open_blobs import OpenBlobs
from myyoutube.datanode.store import BlobStore, StoreError
from myyoutube.datanode.writeback import WRITEBACK_AFTER_BYTES, Writeback, next_stretch
from page_cache import require_real_disk

BLOB = "0123456789abcdef0123456789abcdef"
# Three and a half stretches: three are started early, the last half waits for fsync.
WRITTEN_BYTES = 3 * WRITEBACK_AFTER_BYTES + WRITEBACK_AFTER_BYTES // 2


def test_a_stretch_is_started_once_enough_is_written():
    """Nothing is started before WRITEBACK_AFTER_BYTES are written past the last start;
    then all of them at once, from where the last one ended."""
    assert next_stretch(0, WRITEBACK_AFTER_BYTES - 1) is None
    assert next_stretch(0, WRITEBACK_AFTER_BYTES) == (0, WRITEBACK_AFTER_BYTES)
    assert next_stretch(100, 100 + 3 * WRITEBACK_AFTER_BYTES) == (100, 3 * WRITEBACK_AFTER_BYTES)
    assert next_stretch(5 * WRITEBACK_AFTER_BYTES, 5 * WRITEBACK_AFTER_BYTES + 7) is None


# /proc/self/pagemap: a u64 per virtual page; bit 63 says present, bits 0-54 the page
# frame. /proc/kpageflags: a u64 per page frame; bit 4 is the kernel's PG_dirty (cleared
# when the page's writeback is submitted). Both give frames to root only.
_PRESENT = 1 << 63
_FRAME_MASK = (1 << 55) - 1
_DIRTY = 1 << 4


def dirty_bytes(fd: int) -> int:
    """How many of the cached bytes of the file open as `fd` are dirty (not yet sent to
    the disk), read from the kernel's page flags without disturbing them. fsync or fadvise
    would start the very writeback looked for, and so would closing the file's last handle:
    ext4 flushes a file that was truncated to zero (as a new open blob is) when a handle of
    it is released. So the caller keeps `fd` open while it polls, and the mapping is
    read-only."""
    libc, page = page_cache.libc(), mmap.PAGESIZE
    size = os.fstat(fd).st_size
    address = page_cache.map_read_only(libc, fd, size)
    try:
        pages = (size + page - 1) // page
        for number in range(pages):
            ctypes.string_at(address + number * page, 1)  # map each page (a read dirties nothing)
        entries = struct.unpack(f"={pages}Q", _read_at("/proc/self/pagemap", address // page * 8, pages * 8))
    finally:
        libc.munmap(address, size)
    dirty = 0
    for entry in entries:
        assert entry & _PRESENT and entry & _FRAME_MASK, "root reads page frames"
        (flags,) = struct.unpack("=Q", _read_at("/proc/kpageflags", (entry & _FRAME_MASK) * 8, 8))
        dirty += page if flags & _DIRTY else 0
    return dirty


def _read_at(path: str, offset: int, length: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)


def dirty_bytes_settle(path: Path, at_most: int) -> int:
    """Poll until no more than `at_most` of the file's bytes are dirty, for up to 10 s
    (writeback is submitted asynchronously); the last count."""
    fd = os.open(path, os.O_RDONLY)
    try:
        deadline = time.monotonic() + 10
        while (dirty := dirty_bytes(fd)) > at_most and time.monotonic() < deadline:
            time.sleep(0.1)
        return dirty
    finally:
        os.close(fd)


@pytest.fixture
def on_disk(tmp_path) -> Path:
    """A folder on a real disk, where writes have a writeback to start and a page cache to
    leave."""
    return require_real_disk(tmp_path)


@pytest.fixture
def disk_folder(on_disk) -> Path:
    """`on_disk`, for a test that reads page flags."""
    if os.geteuid() != 0:
        pytest.skip("page flags (/proc/kpageflags) are root's to read")
    return on_disk


def write_through_writeback(fd: int, seed: int) -> Writeback:
    """WRITTEN_BYTES of random bytes written to `fd` in 1 MiB writes, each followed by
    the Writeback's advance, as a datanode's disk thread does; the Writeback."""
    writeback = Writeback(fd, 0)
    block = random.Random(seed).randbytes(1024 * 1024)
    for _ in range(WRITTEN_BYTES // len(block)):
        os.write(fd, block)
        writeback.advance(len(block))
    return writeback


def test_writeback_starts_behind_the_writes(disk_folder):
    """Bytes written through a Writeback leave the dirty set within seconds, but the
    last stretch shorter than WRITEBACK_AFTER_BYTES, which waits for the fsync."""
    path = disk_folder / "file"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        write_through_writeback(fd, seed=1)
    finally:
        os.close(fd)
    assert dirty_bytes_settle(path, at_most=WRITEBACK_AFTER_BYTES) <= WRITEBACK_AFTER_BYTES


async def test_an_upload_to_an_open_blob_heads_for_the_disk_as_it_comes(disk_folder):
    """An upload's copy on a datanode (an open blob, appended in chunks) is on its way to
    the disk before the append finishes: only its last stretch is dirty."""
    blobs = OpenBlobs(BlobStore(disk_folder, capacity_bytes=None))
    appender = await blobs.appender(BLOB, 0)
    chunk = random.Random(2).randbytes(BLOCK_BYTES)
    for _ in range(WRITTEN_BYTES // BLOCK_BYTES):
        await appender.write(chunk)
    await appender._writes.flush()  # every batch handed to the disk thread is written
    path = blobs._path(BLOB, ".open")
    held = await asyncio.to_thread(dirty_bytes_settle, path, WRITEBACK_AFTER_BYTES)
    await appender.abandon()
    assert held <= WRITEBACK_AFTER_BYTES


async def test_a_replica_copy_heads_for_the_disk_as_it_comes(disk_folder):
    """A blob written whole (a repair copy, a rendition) is on its way to the disk
    before its writer finishes: only its last stretch is dirty."""
    store = BlobStore(disk_folder, capacity_bytes=None)
    writer = store.open_writer(BLOB)
    chunk = random.Random(3).randbytes(BLOCK_BYTES)
    for _ in range(WRITTEN_BYTES // BLOCK_BYTES):
        await writer.write(chunk)
    await writer._writes.flush()
    path = store._path(BLOB, ".blob.part")
    held = await asyncio.to_thread(dirty_bytes_settle, path, WRITEBACK_AFTER_BYTES)
    await writer.abort()
    assert held <= WRITEBACK_AFTER_BYTES


def test_written_stretches_leave_the_page_cache_behind_the_writes(on_disk):
    """Of a file written through a Writeback, only the stretch on its way to the disk and
    the unstarted tail stay cached while writes go on, and nothing once fsync() returns."""
    path = on_disk / "file"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        writeback = write_through_writeback(fd, seed=4)
        assert page_cache.cached_bytes(path) <= WRITTEN_BYTES - 2 * WRITEBACK_AFTER_BYTES
        writeback.fsync()
        assert page_cache.cached_bytes(path) == 0
    finally:
        os.close(fd)


async def test_an_upload_to_an_open_blob_leaves_the_page_cache_once_durable(on_disk):
    """An upload's copy on a datanode takes no room in the page cache once it is
    confirmed; an append after it (a resumed upload) drops its own bytes too."""
    blobs = OpenBlobs(BlobStore(on_disk, capacity_bytes=None))
    chunk = random.Random(5).randbytes(BLOCK_BYTES)
    for offset in (0, WRITTEN_BYTES):
        appender = await blobs.appender(BLOB, offset)
        for _ in range(WRITTEN_BYTES // BLOCK_BYTES):
            await appender.write(chunk)
        await appender.finish()
        assert page_cache.cached_bytes(blobs._path(BLOB, ".open")) == 0


async def test_a_replica_copy_leaves_the_page_cache_once_durable(on_disk):
    """A blob written whole (a repair copy, a rendition) takes no room in the page cache
    once published."""
    store = BlobStore(on_disk, capacity_bytes=None)
    writer = store.open_writer(BLOB)
    chunk = random.Random(6).randbytes(BLOCK_BYTES)
    for _ in range(WRITTEN_BYTES // BLOCK_BYTES):
        await writer.write(chunk)
    await writer.finish()
    assert page_cache.cached_bytes(store._path(BLOB, ".blob")) == 0


async def test_an_append_the_disk_failed_to_write_is_never_confirmed(tmp_path, monkeypatch):
    """A write the disk failed, found by the wait for a stretch's writeback, fails the
    append, and its finish too (as a chain write parking its copy calls it): the bytes
    are never confirmed as durable. Linux reports such a failure to an open file once, to
    whichever call waits first, and its fsync then succeeds; here the disk fails every
    wait and fsync succeeds, as it would after that report."""

    def failing_disk(fd: int, offset: int, length: int, flags: int) -> int:
        if flags == writeback._SYNC_FILE_RANGE_WRITE:
            return 0  # started; the failure shows when it is waited for
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(writeback, "_sync_file_range", failing_disk)
    blobs = OpenBlobs(BlobStore(tmp_path, capacity_bytes=None))
    appender = await blobs.appender(BLOB, 0)
    chunk = random.Random(7).randbytes(BLOCK_BYTES)
    with pytest.raises(OSError) as failed:
        for _ in range(WRITTEN_BYTES // BLOCK_BYTES):
            await appender.write(chunk)
        await appender.finish()
    assert failed.value.errno == errno.EIO
    with pytest.raises(OSError):
        await appender.finish()
    await appender.abandon()
    with pytest.raises(StoreError):
        blobs._checksums(BLOB)  # no confirmed length at all
