"""Tests for myyoutube.batched_writes: chunks reach the file whole and in order, in batches."""

from __future__ import annotations

import random
import threading

import pytest

from myyoutube.batched_writes import BatchedWriter


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
