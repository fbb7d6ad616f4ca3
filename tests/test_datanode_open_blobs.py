"""Tests for myyoutube.datanode.open_blobs: appendable blobs on a real tmp disk."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import random
import time

import pytest

from myyoutube.datanode.blob_writer import BLOCK_BYTES
from myyoutube.datanode.open_blobs import ABANDONED_AFTER_S, OpenBlobs, abandoned_after_s
from myyoutube.datanode.store import BlobStore, CorruptBlob, StoreError

BLOB = "0123456789abcdef0123456789abcdef"
DATA = random.Random(3).randbytes(3 * BLOCK_BYTES + 777)


async def append(blobs: OpenBlobs, offset: int, data: bytes, pieces: int = 3) -> int:
    appender = await blobs.appender(BLOB, offset)
    step = max(1, len(data) // pieces)
    for start in range(0, len(data), step):
        await appender.write(data[start : start + step])
    return await appender.finish()


async def read_all(blobs: OpenBlobs, length: int) -> bytes:
    return b"".join([piece async for piece in blobs.read(BLOB, 0, length)])


@pytest.fixture
def blobs(tmp_path) -> OpenBlobs:
    return OpenBlobs(BlobStore(tmp_path, None))


async def test_appends_at_odd_offsets_read_back_and_seal_with_the_right_checksums(blobs, tmp_path):
    """Appends that end mid-block (the last block's CRC recomputed each time) read back
    verified, and sealing makes an ordinary blob the store reads and checks."""
    cuts = [0, 1000, BLOCK_BYTES - 1, BLOCK_BYTES + 5, 2 * BLOCK_BYTES, len(DATA)]
    for start, end in itertools.pairwise(cuts):
        assert await append(blobs, start, DATA[start:end]) == end
    assert await read_all(blobs, len(DATA)) == DATA
    size, sha256 = await blobs.seal(BLOB, len(DATA))
    assert (size, sha256) == (len(DATA), hashlib.sha256(DATA).hexdigest())
    assert not blobs.holds(BLOB)
    assert blobs.store.blobs() == {BLOB: len(DATA)}
    assert b"".join([p async for p in blobs.store.read(BLOB, 0, len(DATA))]) == DATA
    assert await blobs.seal(BLOB, len(DATA)) == (size, sha256)  # a repeated seal answers the same


async def test_unconfirmed_bytes_are_cut_off_by_the_next_append(blobs):
    """An append cut short (never finished) leaves bytes past the confirmed length; the next
    append at the confirmed offset drops them, and what is read is what was confirmed."""
    await append(blobs, 0, DATA[:5000])
    cut = await blobs.appender(BLOB, 5000)
    await cut.write(b"x" * 70_000)  # the connection broke here: no finish()
    cut.close()
    assert await read_all(blobs, 5000) == DATA[:5000]
    assert await append(blobs, 5000, DATA[5000:9000]) == 9000
    assert await read_all(blobs, 9000) == DATA[:9000]


async def test_a_resend_from_an_earlier_offset_rewrites_the_tail(blobs):
    """An append from before the confirmed end (a new replica's copy, a master that lost
    its last answer) rewrites from there, checksums included."""
    await append(blobs, 0, DATA[: BLOCK_BYTES + 100])
    await append(blobs, 10, DATA[10:2000])
    assert await read_all(blobs, 2000) == DATA[:2000]
    with pytest.raises(StoreError) as refused:
        await blobs.appender(BLOB, 2001)
    assert refused.value.code == "short"


async def test_a_rotten_tail_block_is_not_blessed_by_an_append(blobs, tmp_path):
    """A byte flipped on disk in the block an append would extend: the append is refused
    as corrupt instead of checksumming the rot."""
    await append(blobs, 0, DATA[:3000])
    path = tmp_path / f"{BLOB}.open"
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptBlob):
        await blobs.appender(BLOB, 3000)


async def test_delete_removes_every_file_and_a_wrong_size_is_not_sealed(blobs, tmp_path):
    """Sealing with another size than held is refused; delete leaves nothing behind."""
    await append(blobs, 0, DATA[:4000])
    with pytest.raises(StoreError):
        await blobs.seal(BLOB, 4001)
    await blobs.delete(BLOB)
    assert [p.name for p in tmp_path.iterdir()] == []


async def test_a_node_restarted_midway_seals_with_the_same_sha256(blobs, tmp_path):
    """The sha256 kept while appending is lost with the process: a restarted node (a new
    OpenBlobs on the same folder) hashes the bytes when sealing, and gets the same."""
    await append(blobs, 0, DATA[:100_000])
    restarted = OpenBlobs(BlobStore(tmp_path, None))
    await append(restarted, 100_000, DATA[100_000:])
    assert await restarted.seal(BLOB, len(DATA)) == (len(DATA), hashlib.sha256(DATA).hexdigest())


async def test_open_blobs_untouched_for_a_month_are_removed_by_the_node(blobs, tmp_path):
    """An upload that ended while this node was down leaves its open blob here, which no
    master will delete: the node removes it itself once it is far older than any expiry,
    and leaves a recent one alone."""
    await append(blobs, 0, DATA[:1000])
    assert await blobs.remove_abandoned(time.time()) == []
    old = time.time() - ABANDONED_AFTER_S - 60
    os.utime(tmp_path / f"{BLOB}.opencrc", (old, old))
    assert await blobs.remove_abandoned(time.time()) == [BLOB]
    assert [p.name for p in tmp_path.iterdir()] == []


async def test_an_open_blob_whose_first_append_never_finished_is_removed_too(blobs, tmp_path):
    """An upload whose first append was cut short (a tab closed during the first chunk)
    leaves bytes and no checksum file: once as old as an abandoned open blob, the node
    removes them too. Before, only checksum files were looked for, so such bytes stayed
    on the disk for good when the master's deletion missed the node (it was down then)."""
    cut = await blobs.appender(BLOB, 0)
    await cut.write(DATA[:70_000])  # the connection broke here: no finish()
    await cut.abandon()
    assert await blobs.remove_abandoned(time.time()) == []
    old = time.time() - ABANDONED_AFTER_S - 60
    os.utime(tmp_path / f"{BLOB}.open", (old, old))
    assert await blobs.remove_abandoned(time.time()) == [BLOB]
    assert [p.name for p in tmp_path.iterdir()] == []


async def test_once_the_master_said_its_expiry_open_blobs_go_after_two(blobs, tmp_path):
    """Told the master's upload expiry, the node removes an open blob untouched for two
    expiries (no session can hold it), except one `keep` names (a parked chain copy)."""
    assert abandoned_after_s(0.0) == ABANDONED_AFTER_S  # no master heard yet
    assert abandoned_after_s(3600.0) == 2 * 3600.0
    await append(blobs, 0, DATA[:1000])
    assert await blobs.remove_abandoned(time.time(), abandoned_after_s(3600.0)) == []
    old = time.time() - 2 * 3600.0 - 60
    os.utime(tmp_path / f"{BLOB}.opencrc", (old, old))
    assert await blobs.remove_abandoned(time.time(), abandoned_after_s(3600.0), {BLOB}.__contains__) == []
    assert await blobs.remove_abandoned(time.time(), abandoned_after_s(3600.0)) == [BLOB]
    assert [p.name for p in tmp_path.iterdir()] == []


async def test_a_delete_waits_for_the_append_running_on_its_blob(blobs, tmp_path):
    """A deletion that arrives while an append of the blob runs waits for it to end: the
    append's checksum file, written as it finishes, is not left behind by a deletion that
    ran under it (a terminated upload's copy outliving the 204)."""
    async with blobs.lock(BLOB):
        appender = await blobs.appender(BLOB, 0)
        await appender.write(DATA[:5000])
        deleting = asyncio.create_task(blobs.delete(BLOB))
        await asyncio.sleep(0.05)
        assert not deleting.done()
        assert await appender.finish() == 5000
    await deleting
    assert list(tmp_path.glob(f"{BLOB}*")) == []


async def test_no_lock_is_kept_for_a_blob_nobody_writes(blobs):
    """Every upload and rendition passes through an open blob's lock: once its appends and
    seal are done (or it is deleted), none is kept for it, so memory does not grow with
    the number of blobs ever written."""
    blob_ids = [f"{number:032x}" for number in range(20)]
    for number, blob_id in enumerate(blob_ids):
        async with blobs.lock(blob_id):
            appender = await blobs.appender(blob_id, 0)
            await appender.write(DATA[:1000])
            await appender.finish()
        if number % 2:
            await blobs.seal(blob_id, 1000)
        else:
            await blobs.delete(blob_id)
    assert [blob_id for blob_id in blob_ids if blobs.busy(blob_id)] == []
