"""Tests for myyoutube.datanode.read_handles: blobs kept open between reads, on a real tmp disk.

What a user would notice if these broke: a seek answered with the bytes of a video that
was deleted or replaced, or a datanode running out of file descriptors.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

import page_cache
from myyoutube.datanode.blob_writer import BLOCK_BYTES
from myyoutube.datanode.read_handles import OPEN_READ_HANDLES, READ_AHEAD_BYTES, read_from_disk
from myyoutube.datanode.store import BlobStore, CorruptBlob, StoreError

BLOB = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"
DATA = random.Random(3).randbytes(2 * BLOCK_BYTES + 999)


async def write_blob(store: BlobStore, blob_id: str, data: bytes) -> None:
    writer = store.open_writer(blob_id)
    await writer.write(data)
    await writer.finish()


async def read_all(store: BlobStore, blob_id: str, offset: int, length: int, keep_open: bool = True) -> bytes:
    return b"".join([piece async for piece in store.read(blob_id, offset, length, keep_open=keep_open)])


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs", capacity_bytes=None)


async def test_repeated_reads_keep_one_descriptor_open(store):
    """Many range reads of one blob return the right bytes and hold one descriptor, not one each."""
    await write_blob(store, BLOB, DATA)
    before = open_descriptors()
    rng = random.Random(1)
    for _ in range(50):
        offset = rng.randrange(len(DATA) - 65536)
        assert await read_all(store, BLOB, offset, 65536) == DATA[offset : offset + 65536]
    assert open_descriptors() == before + 1


async def test_a_replaced_blob_is_read_from_its_new_file(store):
    """A blob deleted and written again under the same id (a repair) is read with its new
    bytes: the descriptor of the old file is never used again, and is closed."""
    await write_blob(store, BLOB, DATA)
    assert await read_all(store, BLOB, 0, 100) == DATA[:100]
    before = open_descriptors()
    await store.delete(BLOB)
    with pytest.raises(StoreError):
        await read_all(store, BLOB, 0, 100)
    replacement = bytes(reversed(DATA))
    await write_blob(store, BLOB, replacement)
    assert await read_all(store, BLOB, 0, len(replacement)) == replacement
    assert open_descriptors() == before


async def test_delete_during_a_read_lets_it_finish_and_then_closes_the_file(store):
    """A read under way when its blob is deleted finishes with the right bytes (it holds
    the open file), later reads are refused, and no descriptor is left behind."""
    await write_blob(store, BLOB, DATA)
    before = open_descriptors()
    pieces = store.read(BLOB, 0, len(DATA))
    received = [await anext(pieces)]
    await store.delete(BLOB)
    received += [piece async for piece in pieces]
    assert b"".join(received) == DATA
    assert open_descriptors() == before
    with pytest.raises(StoreError, match="no blob"):
        await read_all(store, BLOB, 0, 1)


async def test_open_blobs_are_bounded(store):
    """Reading more blobs than OPEN_READ_HANDLES keeps at most that many open."""
    blob_ids = [f"{number:032x}" for number in range(OPEN_READ_HANDLES + 10)]
    for blob_id in blob_ids:
        await write_blob(store, blob_id, b"x" * 1000)
    before = open_descriptors()
    for blob_id in blob_ids:
        assert await read_all(store, blob_id, 0, 1000) == b"x" * 1000
    assert open_descriptors() == before + OPEN_READ_HANDLES


async def test_a_read_not_kept_open_checks_the_checksum_file_on_disk(store):
    """keep_open=False (the scrubber) leaves nothing open and checks the blocks against the
    .crc file as it is now, even when a kept handle remembers the old checksums."""
    await write_blob(store, BLOB, DATA)
    assert await read_all(store, BLOB, 0, len(DATA)) == DATA  # now kept open
    crc_path = store.root / f"{BLOB}.crc"
    crc_path.write_bytes(crc_path.read_bytes()[:-4])  # rot in the checksum file
    before = open_descriptors()
    with pytest.raises(CorruptBlob):
        await read_all(store, BLOB, 0, len(DATA), keep_open=False)
    assert open_descriptors() == before


async def test_reads_without_rwf_nowait_go_to_the_disk_thread_and_agree(store):
    """Where the kernel cannot read without blocking, every block is read in a worker
    thread and the bytes are the same."""
    await write_blob(store, BLOB, DATA)
    store._read_handles.nowait_reads = False
    assert await read_all(store, BLOB, 5, len(DATA) - 10) == DATA[5:-5]


async def test_rot_in_a_kept_blob_is_still_caught(store):
    """A byte flipped in the file of a blob kept open makes the next read of that block
    raise CorruptBlob: the open file is the file on disk, checked block by block."""
    await write_blob(store, BLOB, DATA)
    assert await read_all(store, BLOB, 0, 10) == DATA[:10]
    path = store.root / f"{BLOB}.blob"
    rotten = bytearray(path.read_bytes())  # rewritten in place: the same file, as rot is
    rotten[BLOCK_BYTES + 7] ^= 0xFF
    path.write_bytes(rotten)
    with pytest.raises(CorruptBlob):
        await read_all(store, BLOB, BLOCK_BYTES, 100)


def test_a_block_read_from_the_disk_has_the_disk_read_ahead(tmp_path):
    """A block that must come from the disk (as a new video's do: written blobs leave the
    page cache) asks the disk for what the read still wants, up to READ_AHEAD_BYTES: the
    blocks after it are then cached before the stream asks for them, instead of one trip
    each. (The kernel's own readahead alone brings ~1 MiB here.)"""
    path = page_cache.require_real_disk(tmp_path) / "blob"
    path.write_bytes(random.Random(7).randbytes(2 * READ_AHEAD_BYTES))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        assert page_cache.cached_bytes(path) == 0
        read_from_disk(fd, 0, BLOCK_BYTES, READ_AHEAD_BYTES)
        assert cached_soon(path, READ_AHEAD_BYTES) >= READ_AHEAD_BYTES
    finally:
        os.close(fd)


def cached_soon(path: Path, at_least: int) -> int:
    """Poll for up to 5 s (the disk reads what was queued within moments) until at least
    `at_least` bytes of the file are cached; the last count."""
    deadline = time.monotonic() + 5
    while (cached := page_cache.cached_bytes(path)) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
    return cached


async def test_a_walk_that_drops_behind_leaves_the_page_cache_as_it_found_it(tmp_path):
    """The scrubber's walk (drop_behind) over a blob nobody reads leaves none of it in the
    page cache, so walking every blob does not push out the videos being watched; over a
    blob a viewer read lately, it leaves it cached."""
    store = BlobStore(page_cache.require_real_disk(tmp_path), capacity_bytes=None)
    size = 2 * READ_AHEAD_BYTES
    for blob_id, data in ((BLOB, DATA), (OTHER, random.Random(9).randbytes(size))):
        await write_blob(store, blob_id, data)
    await read_all(store, BLOB, 0, len(DATA))  # a viewer: now cached
    for blob_id in (BLOB, OTHER):
        async for _ in store.read(blob_id, 0, store.size(blob_id), keep_open=False, drop_behind=True):
            pass
    assert page_cache.cached_bytes(store._path(OTHER, ".blob")) == 0
    # Dropping behind would leave none of BLOB; the kernel may still let go of a page of
    # its own accord (CI once found 128 of its 129 pages), so "most of it" is the claim.
    assert page_cache.cached_bytes(store._path(BLOB, ".blob")) > len(DATA) // 2


async def test_a_viewer_who_starts_during_a_walk_keeps_the_rest_cached(tmp_path):
    """A viewer who opens a blob while the scrubber walks it (a video watched right after
    its upload) keeps what the walk reads from then on in the page cache."""
    store = BlobStore(page_cache.require_real_disk(tmp_path), capacity_bytes=None)
    size = 2 * READ_AHEAD_BYTES
    await write_blob(store, OTHER, random.Random(12).randbytes(size))
    walk = store.read(OTHER, 0, size, keep_open=False, drop_behind=True)
    await anext(walk)
    await read_all(store, OTHER, 0, 1)  # the viewer's first range
    async for _ in walk:
        pass
    # Dropping behind would leave only the viewer's first block; the kernel may let go of a
    # page of its own accord (see above), so "most of it" is the claim.
    assert page_cache.cached_bytes(store._path(OTHER, ".blob")) > size // 2
