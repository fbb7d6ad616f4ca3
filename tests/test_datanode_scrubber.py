"""The background scrubber (datanode/scrubber.py), over a real blob store on disk."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

from harness import wait_until
from myyoutube.datanode import scrubber as scrubber_module
from myyoutube.datanode.scrubber import SCRUB_TIMES_FILE, Scrubber
from myyoutube.datanode.store import BlobStore

BLOB = "0123456789abcdef0123456789abcdef"
DATA = random.Random(3).randbytes(300_000)


async def stored(tmp_path) -> BlobStore:
    store = BlobStore(tmp_path / "blobs", capacity_bytes=None)
    writer = store.open_writer(BLOB)
    await writer.write(DATA)
    await writer.finish()
    return store


async def test_a_blob_whose_checksums_are_lost_is_reported(tmp_path):
    """A blob whose .crc file is gone can never be read: the scrubber reports it, as it
    does a rotten one, so the master re-makes the copy. It used to pass over it as if the
    blob had been deleted, and the master counted an unreadable copy as a good one."""
    store = await stored(tmp_path)
    (tmp_path / "blobs" / f"{BLOB}.crc").unlink()
    reported: list[str] = []
    await Scrubber(store, 100 * 1024 * 1024, 1.0, reported.append)._scrub(BLOB)
    assert reported == [BLOB]


async def test_a_blob_deleted_while_scrubbed_is_not_reported(tmp_path):
    """A blob deleted (by the master's word) before the scrubber reads it is no finding."""
    store = await stored(tmp_path)
    await store.delete(BLOB)
    reported: list[str] = []
    await Scrubber(store, 100 * 1024 * 1024, 1.0, reported.append)._scrub(BLOB)
    assert reported == []


async def test_a_blob_written_here_waits_an_interval_and_one_found_on_the_disk_is_walked_first(tmp_path):
    """A blob this node wrote was checksummed as it went to the disk: the scrubber leaves it
    for an interval instead of reading every upload back at once, on every replica. The
    same blob found on the disk by a node restarted with no saved schedule (the node was
    killed before saving it) has no such history: due at once."""
    store = BlobStore(tmp_path / "blobs", capacity_bytes=None)
    scrubber = Scrubber(store, 100 * 1024 * 1024, 3600.0, lambda blob_id: None)
    writer = store.open_writer(BLOB)
    await writer.write(DATA)
    await writer.finish()
    assert scrubber.schedule.next_blob(set(store.blobs()), time.time(), 3600.0) is None

    restarted = BlobStore(tmp_path / "blobs", capacity_bytes=None)
    rescrubber = Scrubber(restarted, 100 * 1024 * 1024, 3600.0, lambda blob_id: None)
    assert rescrubber.schedule.next_blob(set(restarted.blobs()), time.time(), 3600.0) == BLOB


async def test_a_restarted_node_goes_on_with_the_walk_where_it_stopped(tmp_path):
    """The schedule outlives the process: a node stopped (its scrubber task cancelled)
    and started again walks first the blobs it had not verified yet, instead of starting
    afresh in id order, which on a node restarted more often than a walk takes would
    never reach the blobs late in that order."""
    store = BlobStore(tmp_path / "blobs", capacity_bytes=None)
    first, second = sorted(("a" * 32, "b" * 32))
    for blob_id in (first, second):
        writer = store.open_writer(blob_id)
        await writer.write(DATA)
        await writer.finish()
    found = BlobStore(tmp_path / "blobs", capacity_bytes=None)  # as at a start: never verified
    # Paced at a blob a second, so the node stops while the second one is being read.
    scrubber = Scrubber(found, len(DATA), 3600.0, lambda blob_id: None)
    walk = asyncio.create_task(scrubber.run_forever())
    await wait_until(lambda: first in scrubber.schedule.verified_at, "the first blob verified", 10)
    walk.cancel()  # the node stops before the second blob's turn
    with contextlib.suppress(asyncio.CancelledError):
        await walk
    assert second not in scrubber.schedule.verified_at

    restarted = BlobStore(tmp_path / "blobs", capacity_bytes=None)
    rescrubber = Scrubber(restarted, 100 * 1024 * 1024, 3600.0, lambda blob_id: None)
    assert rescrubber.schedule.next_blob(set(restarted.blobs()), time.time(), 3600.0) == second


async def test_the_schedule_is_saved_while_the_walk_goes_on(tmp_path, monkeypatch):
    """A node killed without a chance to save (SIGKILL, a power cut) loses at most
    SAVE_EVERY_S of its walk: the schedule is also saved as the walk goes."""
    monkeypatch.setattr(scrubber_module, "SAVE_EVERY_S", 0.0)
    store = BlobStore(tmp_path / "blobs", capacity_bytes=None)
    writer = store.open_writer(BLOB)
    await writer.write(DATA)
    await writer.finish()
    scrubber = Scrubber(
        BlobStore(store.root, capacity_bytes=None), 100 * 1024 * 1024, 3600.0, lambda blob_id: None
    )
    walk = asyncio.create_task(scrubber.run_forever())
    try:
        path = store.root / SCRUB_TIMES_FILE
        await wait_until(lambda: path.exists() and BLOB in path.read_text(), "the schedule saved", 10)
    finally:
        walk.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await walk


async def test_a_damaged_schedule_file_makes_every_blob_due(tmp_path):
    """A schedule file that cannot be read as one (damaged by a crash, or written by another
    release) is ignored: every blob is due, as before the file existed, and the node starts."""
    store = BlobStore(tmp_path / "blobs", capacity_bytes=None)
    writer = store.open_writer(BLOB)
    await writer.write(DATA)
    await writer.finish()
    (store.root / SCRUB_TIMES_FILE).write_bytes(b"\x00garbage\nnot a schedule")
    scrubber = Scrubber(
        BlobStore(store.root, capacity_bytes=None), 100 * 1024 * 1024, 3600.0, lambda blob_id: None
    )
    assert scrubber.schedule.next_blob({BLOB}, time.time(), 3600.0) == BLOB
