"""The background scrubber: re-reads every blob at a bounded rate to find bitrot early.

Theory of operation
-------------------
Checksums are verified on every read, but a video nobody watches is never read, and a
replica that rotted silently would be found only when another replica has died too. The
scrubber walks the blobs, least recently verified first, reading each through the same
verifying path as viewers do, paced to `bytes_per_s` so it never competes with them. It
drops what it read from the page cache as it goes, unless viewers read that blob lately
(BlobStore.read's drop_behind), so that walking every blob does not push out the videos
being watched.
A blob this node has just written counts as verified then: its checksums were computed
from the bytes as they went to the disk, so reading it back at once would find nothing
and only compete with viewers for the disk (every upload, on every replica). Blobs found
on the disk at start-up have no such history and are walked first.
A corrupt blob, or one still held that cannot be read at all (its checksums lost), is
handed to `on_corrupt`; the next heartbeat reports it to the master, which deletes the
bad copy and re-replicates from a good one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from myyoutube.datanode.state import ScrubSchedule, pace_delay_s
from myyoutube.datanode.store import BlobStore, CorruptBlob, StoreError

log = logging.getLogger(__name__)

# With nothing due for scrubbing, look again after this long.
IDLE_POLL_S = 1.0


class Scrubber:
    def __init__(
        self, store: BlobStore, bytes_per_s: int, interval_s: float, on_corrupt: Callable[[str], None]
    ) -> None:
        self.store = store
        self.bytes_per_s = bytes_per_s
        self.interval_s = interval_s
        self.on_corrupt = on_corrupt
        self.schedule = ScrubSchedule()
        store.on_written = self.written

    def written(self, blob_id: str) -> None:
        """A blob published by this node's own write: not due for an interval."""
        self.schedule.verified(blob_id, time.monotonic())

    async def run_forever(self) -> None:
        while True:
            blob_id = self.schedule.next_blob(set(self.store.blobs()), time.monotonic(), self.interval_s)
            if blob_id is None:
                await asyncio.sleep(IDLE_POLL_S)
                continue
            await self._scrub(blob_id)
            self.schedule.verified(blob_id, time.monotonic())

    async def _scrub(self, blob_id: str) -> None:
        started_at, done = time.monotonic(), 0
        try:
            async for piece in self.store.read(
                blob_id, 0, self.store.size(blob_id), keep_open=False, drop_behind=True
            ):
                done += len(piece)
                await asyncio.sleep(pace_delay_s(done, started_at, time.monotonic(), self.bytes_per_s))
        except CorruptBlob:
            log.error("scrubber: blob %s is corrupt", blob_id)
            self.on_corrupt(blob_id)
        except (StoreError, OSError) as exc:
            # Deleted while we read it: nothing to verify any more. Still held, it cannot
            # be read (its checksums file lost, say): as useless as a rotten copy, and the
            # master would count it as a good one until a reader tripped over it.
            if self.store.holds(blob_id):
                log.error("scrubber: blob %s cannot be read (%s); reporting it corrupt", blob_id, exc)
                self.on_corrupt(blob_id)
        await asyncio.sleep(0)  # An empty blob must not make this loop spin without yielding.
