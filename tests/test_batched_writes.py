"""Tests for myyoutube.batched_writes: chunks reach the file whole and in order, in batches."""

from __future__ import annotations

import os
import random
import sys
import threading

import pytest

from myyoutube.batched_writes import BatchedWriter
from myyoutube.bulk_threads import BULK_NICE


async def test_chunks_arrive_in_order_in_few_batches():
    """Many small chunks written through a BatchedWriter arrive whole and in order, with
    one worker-thread call per batch rather than one per chunk."""
    rng = random.Random(5)
    chunks = [rng.randbytes(rng.randrange(1, 70_000)) for _ in range(300)]
    calls = []
    received: list[bytes] = []

    def write_batch(batch: list[bytes]) -> None:
        calls.append(threading.current_thread() is not threading.main_thread())
        received.extend(batch)

    writes = BatchedWriter(write_batch, 1024 * 1024)
    for chunk in chunks:
        await writes.write(chunk)
    await writes.flush()
    assert b"".join(received) == b"".join(chunks)
    assert all(calls)  # every batch was written off the event loop's thread
    assert len(calls) <= sum(map(len, chunks)) // (1024 * 1024) + 1


async def test_a_failed_write_comes_out_of_the_next_call(tmp_path):
    """A disk error in the worker thread is raised to the writer (at the next write or
    at flush), never lost."""

    def failing(batch: list[bytes]) -> None:
        raise OSError(28, "No space left on device")

    writes = BatchedWriter(failing, 10)
    await writes.write(b"x" * 10)  # handed over; fails in the thread
    with pytest.raises(OSError, match="No space"):
        await writes.flush()


@pytest.mark.skipif(sys.platform != "linux", reason="a nice value per thread is Linux's")
async def test_batches_are_written_below_the_event_loops_priority():
    """Batches are written by threads niced below the event loop's (uploads are bulk work;
    a viewer's range read waits), and the event loop's own priority is left as it was."""
    loop_nice = os.getpriority(os.PRIO_PROCESS, 0)
    nice_seen = []

    def write_batch(batch: list[bytes]) -> None:
        nice_seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    writes = BatchedWriter(write_batch, 1)
    await writes.write(b"x")
    await writes.flush()
    assert nice_seen == [min(loop_nice + BULK_NICE, 19)]
    assert os.getpriority(os.PRIO_PROCESS, 0) == loop_nice
