"""The chain writes a datanode holds: running, parked for a resume, or just sealed.

Theory of operation
-------------------
pipeline.py stores a chain write's copy as an open blob (open_blobs.py) and tells
`ChainWrites` where each one stands. While the write runs we keep its upstream
connection, so that a `ChainResumeBlob` can cut it (`take_over`: the write then parks at
once). A write whose upstream went away is *parked*: its copy is kept for PARKED_KEEP_S
for the master to resume, then deleted. A copy sealed a moment ago keeps its size and
sha256 for as long, in case the head was lost after End and the master resumes at the
very end. Registering with the master again deletes every parked copy (`drop_parked`):
a master that restarted never resumes the old process's chains.

The registry lives in memory, so a marker file beside each chain write's open blob
(MARKER_SUFFIX) lets the node delete, at start-up, the copies a previous run of it left
(`remove_leftovers`): nothing can resume those.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from myyoutube.datanode.open_blobs import OpenBlobs
from myyoutube.datanode.store import check_blob_id
from myyoutube.stream import FrameStream

log = logging.getLogger(__name__)

# How long a partial copy whose upstream went away waits for the master to resume it.
# A node parks when it notices its upstream gone: at once for a reset, after
# pipeline.UPSTREAM_SILENCE_S for a silent one, or when the master's resume cuts it; the master
# resumes within its --stall-timeout plus the time to open a chain. A minute is far
# above that with any sensible stall timeout, and short enough that the copy of a node
# dropped for good does not hold disk space for long.
PARKED_KEEP_S = 60.0

# A chain write's open blob has an empty `{blob_id}.chain` file beside it until it is
# sealed or deleted: a copy a previous run of the node left can never be resumed (the
# registry of resumable copies lives in memory), and this tells it apart from a
# resumable upload's open blob, which outlives restarts.
MARKER_SUFFIX = ".chain"


class ChainWrites:
    """The chain writes on this node: running (with their upstream connection), parked
    (a partial copy kept for a resume, with the timer that deletes it), or just sealed
    (size and sha256 remembered for PARKED_KEEP_S, in case the head is lost after End
    and the master resumes at the very end)."""

    def __init__(self, open_blobs: OpenBlobs) -> None:
        self._open_blobs = open_blobs
        self._running: dict[str, FrameStream] = {}
        self._parked: dict[str, asyncio.TimerHandle] = {}
        self._sealed: dict[str, tuple[int, str, asyncio.TimerHandle]] = {}
        self._expiring: set[asyncio.Task] = set()  # deletions under way (kept referenced)

    def _marker(self, blob_id: str) -> Path:
        return self._open_blobs.store.root / f"{check_blob_id(blob_id)}{MARKER_SUFFIX}"

    def remove_leftovers(self) -> list[str]:
        """At start-up (before serving): delete the copies of chain writes a previous run
        of this node left (nothing can resume them now); the blob ids."""
        removed = []
        for marker in self._open_blobs.store.root.glob(f"*{MARKER_SUFFIX}"):
            blob_id = marker.name.removesuffix(MARKER_SUFFIX)
            for suffix in (".open", ".opencrc", ".opencrc.new", MARKER_SUFFIX):
                (marker.parent / f"{blob_id}{suffix}").unlink(missing_ok=True)
            removed.append(blob_id)
        return removed

    async def mark(self, blob_id: str) -> None:
        """Note on disk that this open blob is a chain write's (see remove_leftovers)."""
        await asyncio.to_thread(self._marker(blob_id).touch)

    async def unmark(self, blob_id: str) -> None:
        await asyncio.to_thread(self._marker(blob_id).unlink, True)

    async def discard(self, blob_id: str) -> None:
        """Forget a chain write and delete its copy; the caller holds the blob's lock."""
        self.done(blob_id)
        await self._open_blobs.delete_locked(blob_id)
        await self.unmark(blob_id)

    def knows(self, blob_id: str) -> bool:
        return blob_id in self._running or blob_id in self._parked or blob_id in self._sealed

    def seal_of(self, blob_id: str) -> tuple[int, str] | None:
        """(size, sha256) of a chain copy sealed here a short while ago, or None."""
        sealed = self._sealed.get(blob_id)
        return None if sealed is None else sealed[:2]

    def sealed(self, blob_id: str, size: int, sha256: str) -> None:
        self.done(blob_id)
        timer = asyncio.get_running_loop().call_later(PARKED_KEEP_S, self._sealed.pop, blob_id, None)
        self._sealed[blob_id] = (size, sha256, timer)

    def is_parked(self, blob_id: str) -> bool:
        return blob_id in self._parked

    def take_over(self, blob_id: str) -> bool:
        """A resume is coming: cut the running write's upstream (it then parks); whether
        there is anything here to resume."""
        upstream = self._running.get(blob_id)
        if upstream is not None:
            upstream.abort()
        return self.knows(blob_id)

    def running(self, blob_id: str, upstream: FrameStream) -> None:
        self._forget_timer(blob_id)
        self._running[blob_id] = upstream

    def park(self, blob_id: str) -> None:
        self._running.pop(blob_id, None)
        self._forget_timer(blob_id)
        loop = asyncio.get_running_loop()
        self._parked[blob_id] = loop.call_later(PARKED_KEEP_S, self._expire, blob_id)

    def done(self, blob_id: str) -> None:
        self._running.pop(blob_id, None)
        self._forget_timer(blob_id)
        sealed = self._sealed.pop(blob_id, None)
        if sealed is not None:
            sealed[2].cancel()

    def _forget_timer(self, blob_id: str) -> None:
        timer = self._parked.pop(blob_id, None)
        if timer is not None:
            timer.cancel()

    def drop_parked(self) -> None:
        """Delete every parked copy now: we registered with the master again, most often
        because it restarted, and a new master process never resumes the old one's chains."""
        for blob_id in list(self._parked):
            self._forget_timer(blob_id)
            self._expire(blob_id, "the master restarted")

    async def _discard_expired(self, blob_id: str) -> None:
        async with self._open_blobs.lock(blob_id):
            await self.discard(blob_id)

    def _expire(self, blob_id: str, why: str = f"not resumed within {PARKED_KEEP_S:g}s") -> None:
        self._parked.pop(blob_id, None)
        log.info("partial chain copy of blob %s deleted: %s", blob_id, why)
        task = asyncio.get_running_loop().create_task(self._discard_expired(blob_id))
        self._expiring.add(task)
        task.add_done_callback(self._expiring.discard)
