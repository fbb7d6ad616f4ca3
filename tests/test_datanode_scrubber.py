"""The background scrubber (datanode/scrubber.py), over a real blob store on disk."""

from __future__ import annotations

import random
import time

from myyoutube.datanode.scrubber import Scrubber
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
    same blob found on the disk by a restarted node has no such history: due at once."""
    store = BlobStore(tmp_path / "blobs", capacity_bytes=None)
    scrubber = Scrubber(store, 100 * 1024 * 1024, 3600.0, lambda blob_id: None)
    writer = store.open_writer(BLOB)
    await writer.write(DATA)
    await writer.finish()
    assert scrubber.schedule.next_blob(set(store.blobs()), time.monotonic(), 3600.0) is None

    restarted = BlobStore(tmp_path / "blobs", capacity_bytes=None)
    rescrubber = Scrubber(restarted, 100 * 1024 * 1024, 3600.0, lambda blob_id: None)
    assert rescrubber.schedule.next_blob(set(restarted.blobs()), time.monotonic(), 3600.0) == BLOB
