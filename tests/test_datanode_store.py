"""Tests for myyoutube.datanode.store: blob files with per-block CRC32C, on a real tmp disk."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import shutil
import struct
import threading
from pathlib import Path

import google_crc32c
import pytest

from harness import small_disk
from myyoutube.datanode.blob_writer import BLOCK_BYTES
from myyoutube.datanode.store import (
    BlobStore,
    CorruptBlob,
    StoreError,
    check_blob_id,
)

BLOB = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"
DATA = random.Random(7).randbytes(3 * BLOCK_BYTES + 12_345)


async def write_blob(store: BlobStore, blob_id: str, data: bytes, seed: int = 1) -> tuple[int, str]:
    """Write `data` in odd-sized pieces (1 byte up to over a block) and finish."""
    rng = random.Random(seed)
    writer = store.open_writer(blob_id)
    position = 0
    while position < len(data):
        step = rng.choice([1, 7, 4093, 65_537, BLOCK_BYTES - 1, BLOCK_BYTES, BLOCK_BYTES + 3])
        await writer.write(data[position : position + step])
        position += step
    return await writer.finish()


async def read_all(store: BlobStore, blob_id: str, offset: int, length: int) -> bytes:
    return b"".join([piece async for piece in store.read(blob_id, offset, length)])


async def intact(store: BlobStore, blob_id: str) -> bool:
    """Read the whole blob as the scrubber does: False if any block fails its CRC."""
    try:
        await read_all(store, blob_id, 0, store.size(blob_id))
    except CorruptBlob:
        return False
    return True


def snapshot(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "blobs"


# --- write and read -------------------------------------------------------------------------


async def test_write_in_odd_pieces_then_read_everything(root):
    """Bytes written in odd-sized pieces read back whole, and finish reports size and sha256."""
    store = BlobStore(root, capacity_bytes=None)
    size, sha256 = await write_blob(store, BLOB, DATA)
    assert (size, sha256) == (len(DATA), hashlib.sha256(DATA).hexdigest())
    assert store.blobs() == {BLOB: len(DATA)}
    assert store.size(BLOB) == len(DATA)
    assert await read_all(store, BLOB, 0, len(DATA)) == DATA
    assert sorted(os.listdir(root)) == [f"{BLOB}.blob", f"{BLOB}.crc"]


@pytest.mark.parametrize(
    "offset, length",
    [
        (0, 0),  # empty at the start
        (len(DATA), 0),  # empty at the exact end
        (BLOCK_BYTES, 0),  # empty on a block boundary
        (0, 1),
        (len(DATA) - 1, 1),  # the very last byte
        (BLOCK_BYTES - 1, 2),  # two bytes straddling a boundary
        (BLOCK_BYTES, BLOCK_BYTES),  # exactly one whole block
        (BLOCK_BYTES - 5, BLOCK_BYTES + 10),  # crossing two boundaries
        (100, 3 * BLOCK_BYTES),  # crossing three boundaries into the tail block
        (3 * BLOCK_BYTES, 12_345),  # exactly the partial tail block
        (2 * BLOCK_BYTES + 17, len(DATA) - 2 * BLOCK_BYTES - 17),  # up to the exact end
    ],
)
async def test_read_any_range(root, offset, length):
    """Every range, across block boundaries, empty or ending exactly at the end, reads back exactly."""
    store = BlobStore(root, capacity_bytes=None)
    await write_blob(store, BLOB, DATA)
    assert await read_all(store, BLOB, offset, length) == DATA[offset : offset + length]


async def test_read_random_ranges(root):
    """Fifty random ranges all read back the matching slice."""
    store = BlobStore(root, capacity_bytes=None)
    await write_blob(store, BLOB, DATA, seed=3)
    rng = random.Random(11)
    for _ in range(50):
        offset = rng.randrange(len(DATA) + 1)
        length = rng.randrange(len(DATA) - offset + 1)
        assert await read_all(store, BLOB, offset, length) == DATA[offset : offset + length]


async def test_read_yields_at_most_one_block_per_piece(root):
    """A read yields one piece per block touched, none larger than BLOCK_BYTES."""
    store = BlobStore(root, capacity_bytes=None)
    await write_blob(store, BLOB, DATA)
    pieces = [piece async for piece in store.read(BLOB, 10, len(DATA) - 10)]
    assert [len(p) for p in pieces] == [BLOCK_BYTES - 10, BLOCK_BYTES, BLOCK_BYTES, 12_345]


@pytest.mark.parametrize("offset, length", [(-1, 5), (0, -1), (0, len(DATA) + 1), (len(DATA), 1)])
async def test_read_outside_the_blob_is_refused(root, offset, length):
    """A range outside the blob raises StoreError('bad_request')."""
    store = BlobStore(root, capacity_bytes=None)
    await write_blob(store, BLOB, DATA)
    with pytest.raises(StoreError) as caught:
        await read_all(store, BLOB, offset, length)
    assert caught.value.code == "bad_request"


async def test_read_of_missing_blob_is_not_found(root):
    """Reading a well-formed id that is not stored raises StoreError('not_found')."""
    store = BlobStore(root, capacity_bytes=None)
    with pytest.raises(StoreError) as caught:
        await read_all(store, OTHER, 0, 0)
    assert caught.value.code == "not_found"


async def test_crc_file_holds_one_crc32c_per_block(root):
    """The .crc file is 4 bytes per BLOCK_BYTES block (partial tail included), each the block's CRC32C."""
    store = BlobStore(root, capacity_bytes=None)
    await write_blob(store, BLOB, DATA)
    crc = (root / f"{BLOB}.crc").read_bytes()
    blocks = [DATA[i : i + BLOCK_BYTES] for i in range(0, len(DATA), BLOCK_BYTES)]
    assert len(blocks) == 4 and len(crc) == 16
    assert crc == b"".join(struct.pack("!I", google_crc32c.value(block)) for block in blocks)


async def test_exact_multiple_of_block_has_no_extra_crc(root):
    """A blob of exactly two blocks has an 8-byte .crc file."""
    store = BlobStore(root, capacity_bytes=None)
    data = DATA[: 2 * BLOCK_BYTES]
    await write_blob(store, BLOB, data)
    assert (root / f"{BLOB}.crc").stat().st_size == 8
    assert await read_all(store, BLOB, BLOCK_BYTES - 1, BLOCK_BYTES + 1) == data[BLOCK_BYTES - 1 :]


async def test_empty_blob(root):
    """A blob with no bytes finishes with size 0, an empty .crc, and reads back empty."""
    store = BlobStore(root, capacity_bytes=None)
    size, sha256 = await store.open_writer(BLOB).finish()
    assert (size, sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert (root / f"{BLOB}.crc").read_bytes() == b""
    assert await read_all(store, BLOB, 0, 0) == b""
    assert await intact(store, BLOB) is True


# --- corruption -----------------------------------------------------------------------------


async def test_flipped_byte_makes_read_raise_corrupt_blob(root):
    """A flipped byte in block 1 of the .blob file makes reads of block 1 raise CorruptBlob."""
    store = BlobStore(root, capacity_bytes=None)
    await write_blob(store, BLOB, DATA)
    path = root / f"{BLOB}.blob"
    raw = bytearray(path.read_bytes())
    raw[BLOCK_BYTES + 1000] ^= 0x01
    path.write_bytes(raw)

    assert await read_all(store, BLOB, 0, BLOCK_BYTES) == DATA[:BLOCK_BYTES]  # block 0 is fine
    with pytest.raises(CorruptBlob) as caught:
        await read_all(store, BLOB, BLOCK_BYTES + 5, 10)
    assert caught.value.code == "corrupt"
    assert caught.value.blob_id == BLOB
    assert "block 1" in str(caught.value)
    assert await intact(store, BLOB) is False


async def test_intact_blob_reads_through_whole(root):
    """A blob whose every block matches its CRC reads through whole (what the scrubber does)."""
    store = BlobStore(root, capacity_bytes=None)
    await write_blob(store, BLOB, DATA)
    assert await intact(store, BLOB) is True


async def test_truncated_crc_file_is_corruption(root):
    """A .crc file missing the last block's checksum makes reading that block raise CorruptBlob."""
    store = BlobStore(root, capacity_bytes=None)
    await write_blob(store, BLOB, DATA)
    crc_path = root / f"{BLOB}.crc"
    crc_path.write_bytes(crc_path.read_bytes()[:-4])
    with pytest.raises(CorruptBlob):
        await read_all(store, BLOB, len(DATA) - 1, 1)
    assert await intact(store, BLOB) is False


async def test_truncated_blob_file_is_corruption(root):
    """A .blob file cut short fails verification instead of returning short data."""
    store = BlobStore(root, capacity_bytes=None)
    await write_blob(store, BLOB, DATA)
    path = root / f"{BLOB}.blob"
    path.write_bytes(path.read_bytes()[:-100])
    assert await intact(store, BLOB) is False


# --- start-up and rescans ---------------------------------------------------------------------


async def test_part_leftovers_removed_at_start_up(root):
    """.part files from an interrupted write are deleted when the store opens; others stay."""
    root.mkdir(parents=True)
    (root / f"{BLOB}.blob.part").write_bytes(b"half")
    (root / f"{BLOB}.crc.part").write_bytes(b"ha")
    (root / "notes.txt").write_bytes(b"keep")
    store = BlobStore(root, capacity_bytes=None)
    assert sorted(os.listdir(root)) == ["notes.txt"]
    assert store.blobs() == {}


async def test_reopen_finds_existing_blobs_with_sizes(root):
    """A new BlobStore on the same folder lists the blobs already there, with sizes, readable."""
    store = BlobStore(root, capacity_bytes=None)
    await write_blob(store, BLOB, DATA)
    await write_blob(store, OTHER, b"tiny")
    (root / "README").write_text("not a blob")
    (root / ("A" * 32 + ".blob")).write_bytes(b"uppercase is not ours")

    reopened = BlobStore(root, capacity_bytes=None)
    assert reopened.blobs() == {BLOB: len(DATA), OTHER: 4}
    assert reopened.used_bytes == len(DATA) + 4
    assert await read_all(reopened, OTHER, 0, 4) == b"tiny"
    assert await intact(reopened, BLOB) is True


async def test_rescan_drops_a_blob_deleted_by_hand(root):
    """rescan() reports what is really on disk: a hand-deleted blob disappears from blobs()."""
    store = BlobStore(root, capacity_bytes=None)
    await write_blob(store, BLOB, b"abc")
    await write_blob(store, OTHER, b"defg")
    (root / f"{BLOB}.blob").unlink()
    assert store.rescan() == {OTHER: 4}
    assert store.blobs() == {OTHER: 4}


async def test_a_blob_deleted_while_a_rescan_lists_the_folder_costs_only_that_blob(root, monkeypatch):
    """A blob deleted after the rescan listed the folder but before it looked at the file
    (a delete beside the scan, as bench/chaos.py hit) is simply gone: the rest are still
    held. It used to make the whole rescan "no replicas held", so the node forgot every
    blob it had and the master began copying them all elsewhere."""
    store = BlobStore(root, capacity_bytes=None)
    blob_ids = [f"{number:032x}" for number in range(20)]
    for blob_id in blob_ids:
        await write_blob(store, blob_id, b"abc")
    real_scandir = os.scandir

    class DeleteOnceListed:
        """The real listing, with one blob file deleted once the listing is under way."""

        def __init__(self, path):
            self.entries = list(real_scandir(path))  # the names, as one getdents read them

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            return False

        def __iter__(self):
            for position, entry in enumerate(self.entries):
                if position == 0:
                    victim = next(e for e in self.entries[1:] if e.name.endswith(".blob"))
                    os.unlink(victim.path)
                yield entry

    monkeypatch.setattr(os, "scandir", DeleteOnceListed)
    held = store.rescan()
    assert len(held) == len(blob_ids) - 1 and set(held) < set(blob_ids)


async def test_rescan_of_vanished_folder_is_empty_and_not_recreated(root):
    """If the folder disappears, rescan() reports no blobs and does not re-create the folder."""
    store = BlobStore(root, capacity_bytes=None)
    await write_blob(store, BLOB, b"abc")
    for name in os.listdir(root):
        (root / name).unlink()
    root.rmdir()
    assert store.rescan() == {}
    assert not root.exists()


def recording(store: BlobStore) -> list[tuple[str, int | None]]:
    """Every change the store announces through on_change, in order."""
    changes: list[tuple[str, int | None]] = []
    store.on_change = lambda blob_id, size: changes.append((blob_id, size))
    return changes


async def test_changes_are_announced_as_they_happen(root):
    """A finished write and a delete are announced once each; deleting a missing blob or
    aborting a write announces nothing; used_bytes follows."""
    store = BlobStore(root, capacity_bytes=None)
    changes = recording(store)
    await write_blob(store, BLOB, b"abc")
    writer = store.open_writer(OTHER)
    await writer.write(b"never finished")
    await writer.abort()
    assert store.used_bytes == 3
    await store.delete(BLOB)
    await store.delete(BLOB)
    assert changes == [(BLOB, 3), (BLOB, None)] and store.used_bytes == 0


async def test_rescan_announces_what_changed_behind_our_back(root):
    """A rescan announces blobs deleted, added or resized by hand, and nothing else."""
    store = BlobStore(root, capacity_bytes=None)
    await write_blob(store, BLOB, b"abc")
    await write_blob(store, OTHER, b"defg")
    changes = recording(store)
    (root / f"{BLOB}.blob").unlink()
    (root / f"{OTHER}.blob").write_bytes(b"de")
    third = "ab" * 16
    (root / f"{third}.blob").write_bytes(b"12345")
    await store.rescan_in_thread()
    assert sorted(changes, key=str) == sorted([(BLOB, None), (OTHER, 2), (third, 5)], key=str)
    assert store.used_bytes == 7
    changes.clear()
    await store.rescan_in_thread()
    assert changes == []


async def test_changes_made_during_a_rescan_are_not_undone_by_it(root, monkeypatch):
    """A blob published or deleted while the folder is being read keeps what its writer or
    deleter recorded, although the scan saw the folder before the change."""
    store = BlobStore(root, capacity_bytes=None)
    await write_blob(store, OTHER, b"old")
    scan, changed = store._scan, threading.Event()

    def scan_before_the_changes() -> dict[str, int]:
        seen = scan()  # holds OTHER, not BLOB
        changed.wait(timeout=10)
        return seen

    monkeypatch.setattr(store, "_scan", scan_before_the_changes)
    rescan = asyncio.ensure_future(store.rescan_in_thread())
    await asyncio.sleep(0)  # the scan is running in its thread
    await write_blob(store, BLOB, b"new")
    await store.delete(OTHER)
    changed.set()
    await rescan
    assert store.blobs() == {BLOB: 3} and store.used_bytes == 3


async def test_delete_removes_files_and_tolerates_missing(root):
    """delete() removes both files, forgets the blob, and succeeds again when already gone."""
    store = BlobStore(root, capacity_bytes=None)
    await write_blob(store, BLOB, b"abc")
    await store.delete(BLOB)
    assert os.listdir(root) == [] and store.blobs() == {}
    await store.delete(BLOB)
    with pytest.raises(StoreError) as caught:
        store.size(BLOB)
    assert caught.value.code == "not_found"


async def test_open_writer_for_existing_blob_refused(root):
    """Opening a writer for a blob already stored raises StoreError('exists')."""
    store = BlobStore(root, capacity_bytes=None)
    await write_blob(store, BLOB, b"abc")
    with pytest.raises(StoreError) as caught:
        store.open_writer(BLOB)
    assert caught.value.code == "exists"


async def test_second_writer_for_same_blob_refused_with_store_error(root):
    """A second concurrent writer for one blob id raises StoreError and the first still finishes."""
    store = BlobStore(root, capacity_bytes=None)
    first = store.open_writer(BLOB)
    await first.write(b"first")
    with pytest.raises(StoreError):
        store.open_writer(BLOB)
    assert await first.finish() == (5, hashlib.sha256(b"first").hexdigest())
    assert await read_all(store, BLOB, 0, 5) == b"first"


# --- malformed ids --------------------------------------------------------------------------

BAD_IDS = [
    "../x",
    "../" + "a" * 29,  # 32 characters, but a path
    "a" * 15 + "/" + "a" * 16,
    "A" * 32,  # uppercase
    "0123456789ABCDEF0123456789abcdef",
    "a" * 31,  # too short
    "a" * 33,  # too long
    "a" * 32 + "\n",  # trailing newline ($ would allow it)
    "g" * 32,  # not hex
    "",
]


@pytest.mark.parametrize("blob_id", BAD_IDS)
async def test_malformed_blob_ids_refused_before_touching_disk(tmp_path, blob_id):
    """Every operation on a malformed id raises StoreError('bad_request') and creates no file."""
    store = BlobStore(tmp_path / "blobs", capacity_bytes=None)
    before = snapshot(tmp_path)
    for attempt in (
        lambda: check_blob_id(blob_id),
        lambda: store.open_writer(blob_id),
        lambda: store.size(blob_id),
    ):
        with pytest.raises(StoreError) as caught:
            attempt()
        assert caught.value.code == "bad_request"
    with pytest.raises(StoreError) as caught:
        await read_all(store, blob_id, 0, 0)
    assert caught.value.code == "bad_request"
    with pytest.raises(StoreError) as caught:
        await store.delete(blob_id)
    assert caught.value.code == "bad_request"
    assert snapshot(tmp_path) == before


# --- capacity -------------------------------------------------------------------------------


async def test_write_past_capacity_is_no_space_and_abort_leaves_nothing(root):
    """Writing past capacity_bytes raises StoreError('no_space'); abort removes the part files."""
    store = BlobStore(root, capacity_bytes=1000)
    writer = store.open_writer(BLOB)
    await writer.write(b"x" * 600)
    assert store.used_bytes == 600
    with pytest.raises(StoreError) as caught:
        await writer.write(b"y" * 401)
    assert caught.value.code == "no_space"
    assert writer.size == 600
    await writer.abort()
    assert os.listdir(root) == []
    assert store.used_bytes == 0 and store.blobs() == {}


async def test_write_up_to_exact_capacity_succeeds(root):
    """A blob filling capacity_bytes exactly is accepted, and then nothing more fits."""
    store = BlobStore(root, capacity_bytes=1000)
    await write_blob(store, BLOB, b"z" * 1000)
    assert store.used_bytes == 1000 and store.capacity_bytes == 1000
    writer = store.open_writer(OTHER)
    with pytest.raises(StoreError) as caught:
        await writer.write(b"!")
    assert caught.value.code == "no_space"
    await writer.abort()
    assert sorted(os.listdir(root)) == [f"{BLOB}.blob", f"{BLOB}.crc"]


async def test_concurrent_writers_share_the_capacity(root):
    """Bytes reserved by one unfinished writer count against another's room."""
    store = BlobStore(root, capacity_bytes=1000)
    first, second = store.open_writer(BLOB), store.open_writer(OTHER)
    await first.write(b"a" * 700)
    with pytest.raises(StoreError) as caught:
        await second.write(b"b" * 301)
    assert caught.value.code == "no_space"
    await second.write(b"b" * 300)
    assert store.used_bytes == 1000
    await first.finish()
    await second.abort()
    assert store.used_bytes == 700 and store.blobs() == {BLOB: 700}


async def test_capacity_defaults_to_disk_room(root):
    """Without a configured capacity, capacity is stored bytes plus the disk's free space."""
    store = BlobStore(root, capacity_bytes=None)
    await write_blob(store, BLOB, b"abc")
    free = os.statvfs(root).f_bavail * os.statvfs(root).f_frsize
    assert abs(store.capacity_bytes - (3 + free)) < 64 * 1024 * 1024  # free space moves a little


async def test_without_a_capacity_a_write_may_fill_the_disk(tmp_path):
    """Without a configured capacity, a write may use all of the disk's free space. The
    bytes a write in progress has reserved were counted twice (as used, and as gone from
    the free space), so a datanode refused a blob once it had written about half of the
    room it had: 37 MB into a write with 71 MB free."""
    root = tmp_path / "small-disk"
    with small_disk(root, "8m"):
        store = BlobStore(root, capacity_bytes=None)
        free = shutil.disk_usage(root).free
        data = random.Random(3).randbytes(free * 3 // 4)  # well past half, short of full
        size, _ = await write_blob(store, BLOB, data)
        assert size == len(data) and await read_all(store, BLOB, 0, size) == data
