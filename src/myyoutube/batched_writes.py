"""Writing a stream of chunks to a file from the event loop: in batches, one in flight.

Theory of operation
-------------------
A file write may block (the disk, the kernel throttling dirty pages), so it goes to a
worker thread. A hop per chunk, awaited before the next chunk is read, puts every wait
for the disk (and every wait of the thread to get the GIL back from a busy event loop)
in the path of the stream: an upload of 128 MiB in 256 KiB chunks spent a second of its
two in its web's spool writes.

So chunks are collected into batches of `batch_bytes` and each batch is handed to the
thread in one hop, while the next batch fills: the loop only waits when a full batch is
ready and the previous one is still being written, i.e. when the disk is the limit. At
most two batches are held, and batches reach the file in order. The threads run at a
lower priority than the event loop (bulk_threads.py): a write is bulk work, a read is
someone waiting. `flush()` writes what is left and waits for all of it;
an error from the thread comes out of the next write() or flush().
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from myyoutube import bulk_threads

# Threads for batch writes, per process. Each writer keeps at most one batch in flight,
# so this is how many uploads (or open blobs) write at the same moment; more would only
# queue on the same disk.
BULK_WRITE_THREADS = 4


_BULK_WRITES = bulk_threads.pool("bulk-write", BULK_WRITE_THREADS)


class BatchedWriter:
    """Feeds `write_batch` (run in a worker thread) with batches of chunks, in order."""

    def __init__(self, write_batch: Callable[[list[bytes]], None], batch_bytes: int) -> None:
        assert batch_bytes > 0
        self._write_batch = write_batch
        self._batch_bytes = batch_bytes
        self._filling: list[bytes] = []
        self._filled = 0
        self._in_flight: asyncio.Future[None] | None = None

    async def write(self, data: bytes) -> None:
        self._filling.append(data)
        self._filled += len(data)
        if self._filled >= self._batch_bytes:
            await self._hand_over()

    async def flush(self) -> None:
        """Write everything given so far and wait until it is written."""
        if self._filling:
            await self._hand_over()
        await self._settle()

    async def _hand_over(self) -> None:
        await self._settle()  # one batch at a time, so they land in order
        batch, self._filling, self._filled = self._filling, [], 0
        self._in_flight = asyncio.get_running_loop().run_in_executor(_BULK_WRITES, self._write_batch, batch)

    async def _settle(self) -> None:
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            await in_flight

    async def abandon(self) -> None:
        """Drop what was not handed over and wait for the batch being written (a thread
        cannot be stopped midway; its file may be closed only after it)."""
        self._filling, self._filled = [], 0
        try:
            await self._settle()
        except OSError:
            pass  # the write is being given up anyway
