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
on the disk at start-up with no saved verification are walked first.
The schedule is saved to SCRUB_TIMES_FILE in the node's folder every SAVE_EVERY_S and when
the node stops, and read back when it starts. Without it every restart began the walk
afresh in blob-id order, so on a node restarted more often than a walk takes (a few
terabytes at the default rate take days) the blobs late in that order were never verified.
The file is a hint: lost or damaged, those blobs are simply due at once.
A corrupt blob, or one still held that cannot be read at all (its checksums lost), is
handed to `on_corrupt`; the next heartbeat reports it to the master, which deletes the
bad copy and re-replicates from a good one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from myyoutube.datanode.state import ScrubSchedule, pace_delay_s
from myyoutube.datanode.store import BlobStore, CorruptBlob, StoreError

log = logging.getLogger(__name__)

# With nothing due for scrubbing, look again after this long.
IDLE_POLL_S = 1.0

# The schedule, in the node's folder (the store's scan looks only at `.blob` files, and a
# `.part` left by a crash is removed at start like any other).
SCRUB_TIMES_FILE = "scrub-times"

# Save the schedule at most this often: a crash then repeats at most this much of the walk
# (~1.5 GB at the default rate), while writing it costs ~0.1 s of CPU per 100,000 blobs.
SAVE_EVERY_S = 300.0


class Scrubber:
    def __init__(
        self, store: BlobStore, bytes_per_s: int, interval_s: float, on_corrupt: Callable[[str], None]
    ) -> None:
        self.store = store
        self.bytes_per_s = bytes_per_s
        self.interval_s = interval_s
        self.on_corrupt = on_corrupt
        self._times_path = store.root / SCRUB_TIMES_FILE
        self.schedule = load_schedule(self._times_path, time.time())
        self._saved_at = time.monotonic()
        store.on_written = self.written

    def written(self, blob_id: str) -> None:
        """A blob published by this node's own write: not due for an interval."""
        self.schedule.verified(blob_id, time.time())

    async def run_forever(self) -> None:
        """Verify due blobs one after another, for ever; the schedule is saved now and
        then, and once more when the task is cancelled (the node stops)."""
        try:
            while True:
                blob_id = self.schedule.next_blob(set(self.store.blobs()), time.time(), self.interval_s)
                if blob_id is None:
                    await asyncio.sleep(IDLE_POLL_S)
                else:
                    await self._scrub(blob_id)
                    self.schedule.verified(blob_id, time.time())
                if time.monotonic() - self._saved_at >= SAVE_EVERY_S:
                    self._saved_at = time.monotonic()
                    # Encoded in the thread from a copy (a few ms to take), which the
                    # loop's new verifications do not change under it.
                    copy = ScrubSchedule(dict(self.schedule.verified_at))
                    await asyncio.to_thread(save_schedule, self._times_path, copy)
        finally:
            # Blocking, at stop only: ~0.1 s per 100,000 blobs, and the loop is winding down.
            save_schedule(self._times_path, self.schedule)

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


def load_schedule(path: Path, now: float) -> ScrubSchedule:
    """The schedule saved at `path`, or an empty one (every blob due) if there is none."""
    try:
        return ScrubSchedule.decode(path.read_bytes(), now)
    except FileNotFoundError:
        return ScrubSchedule()
    except OSError as exc:
        log.warning("scrubber: cannot read %s (%s); every blob is due", path, exc.strerror or exc)
        return ScrubSchedule()


def save_schedule(path: Path, schedule: ScrubSchedule) -> None:
    """Replace the file at `path` with the schedule (a new file renamed over it, so a crash
    leaves the old one or the new one). Not fsynced: the file is a hint, and if a crash
    leaves it empty or damaged the walk only starts over. A failure is logged, never
    raised: a full disk must not stop the scrubber."""
    part = path.with_name(path.name + ".part")
    try:
        part.write_bytes(schedule.encode())
        os.replace(part, path)
    except OSError as exc:
        log.warning("scrubber: cannot save %s (%s)", path, exc.strerror or exc)
