"""Tests for myyoutube.master_streams: an upload's bytes leave in whole frames.

What a user would notice if this broke: uploads a sixth slower, because every datanode of
the chain gathers pieces of its checksum blocks (three or four copies of each byte) when
the frames it is sent are not whole blocks; or uploads over a slow network cut off by the
master, which heard nothing while a whole frame gathered.

A real served listener on 127.0.0.1 in this process stands in for the master's end of
the connection and records the frames it receives; no mocks.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import types
from collections.abc import Awaitable, Callable

import pytest

from myyoutube import links, master_streams, protocol
from myyoutube.master.uploads import UPLOAD_STALL_TIMEOUT_S
from myyoutube.master_streams import Upload
from myyoutube.pool import ConnectionPool
from myyoutube.protocol import CHUNK_BYTES, Chunk, End, Ok
from myyoutube.stream import FrameStream
from myyoutube.web.pace import MIN_UPLOAD_BYTES_PER_S

HOST = "127.0.0.1"


class Recorder:
    """Takes an upload as the master would (chunks until End) and answers Ok with the
    size it counted; keeps each chunk as received."""

    def __init__(self, clock=lambda: 0.0) -> None:
        self.chunks: list[bytes] = []
        self.clock = clock
        self.arrived_at: list[float] = []  # by `clock`, of each chunk

    async def __call__(self, conn: FrameStream, request: protocol.Message) -> None:
        while not isinstance(frame := await conn.read_expected(Chunk, End, timeout=5), End):
            self.chunks.append(bytes(frame.data))
            self.arrived_at.append(self.clock())
        await conn.write_frame(Ok({"upload": {"size": frame.size}}))


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    """The upload's clock, standing still until the test moves it (`clock[0] += s`): the
    pieces of a test come quicker than HOLD_AT_MOST_S, however busy the machine running
    it, unless the test says otherwise."""
    now = [0.0]
    monkeypatch.setattr(
        master_streams, "time", types.SimpleNamespace(monotonic=lambda: now[0]), raising=False
    )
    return now


async def upload_to(recorder: Recorder, send: Callable[[Upload], Awaitable[None]], offset: int = 0) -> dict:
    """An upload (to `offset` of its blob) to `recorder` serving on a real listener:
    `send` writes its bytes; the answer to finish()."""
    server = await links.serve_connections(recorder, HOST, 0, None, 4, {})
    await server.start_serving()
    port = server.sockets[0].getsockname()[1]
    pool = ConnectionPool(lambda: links.connect(HOST, port, None, "master"))
    try:
        lease = await pool.acquire()
        await lease.connection.write_frame(Ok({}))  # the opening request
        upload = Upload(pool, lease, answer=Ok, offset=offset)
        await send(upload)
        return await upload.finish()
    finally:
        pool.close()
        server.close()


def writing(pieces: list[bytes]) -> Callable[[Upload], Awaitable[None]]:
    """A `send` that writes `pieces` one after another."""

    async def send(upload: Upload) -> None:
        for piece in pieces:
            await upload.write(piece)

    return send


async def test_pieces_of_any_size_go_out_as_whole_frames(clock):
    """Pieces of the sizes a web reads from a form (a few bytes, more than a frame, exactly
    a frame) reach the master as frames of exactly CHUNK_BYTES but the last, in order, and
    the size at the end counts every byte."""
    recorder = Recorder()
    rng = random.Random(8)
    sizes = [4096, 70_000, CHUNK_BYTES, 3 * CHUNK_BYTES + 5, 1, CHUNK_BYTES - 1, 99_999]
    pieces = [rng.randbytes(size) for size in sizes]
    answer = await upload_to(recorder, writing(pieces))
    total = sum(sizes)
    assert answer == {"size": total}
    assert b"".join(recorder.chunks) == b"".join(pieces)
    assert [len(chunk) for chunk in recorder.chunks] == [CHUNK_BYTES] * (total // CHUNK_BYTES) + [
        total % CHUNK_BYTES
    ]


async def test_a_slow_upload_never_leaves_the_master_waiting_for_a_frame(clock):
    """An upload at the slowest rate the web admits (pace.MIN_UPLOAD_BYTES_PER_S, in the
    small pieces such a network delivers) is not held back for want of a whole frame:
    the master hears from it far more often than its UPLOAD_STALL_TIMEOUT_S, after which
    it would give the upload up. A clock of the test's stands in for the minutes."""
    recorder = Recorder(clock=lambda: clock[0])
    piece = random.Random(9).randbytes(int(MIN_UPLOAD_BYTES_PER_S))  # a second's worth
    seconds = int(2 * UPLOAD_STALL_TIMEOUT_S)

    async def send(upload: Upload) -> None:
        for _ in range(seconds):
            clock[0] += 1.0
            await upload.write(piece)
            await asyncio.sleep(0.005)  # a frame sent reaches the master meanwhile

    answer = await upload_to(recorder, send)
    assert answer == {"size": seconds * len(piece)}
    assert b"".join(recorder.chunks) == piece * seconds
    heard = [0.0, *recorder.arrived_at]
    assert max(later - earlier for earlier, later in itertools.pairwise(heard)) < UPLOAD_STALL_TIMEOUT_S / 10


async def test_after_a_short_frame_sent_early_the_frames_end_on_block_boundaries_again(clock):
    """An upload that paused past HOLD_AT_MOST_S (a network hiccup) sends what it held as
    a short frame; the next frame then completes that block, and those after it are whole
    blocks again, so the datanodes take the rest of the upload a block per frame."""
    recorder = Recorder()
    rng = random.Random(10)
    pieces = [rng.randbytes(size) for size in (CHUNK_BYTES + 1000, 5000, 3 * CHUNK_BYTES, 77)]

    async def send(upload: Upload) -> None:
        await upload.write(pieces[0])
        clock[0] += 2 * master_streams.HOLD_AT_MOST_S  # the hiccup
        await writing(pieces[1:])(upload)

    await upload_to(recorder, send)
    assert b"".join(recorder.chunks) == b"".join(pieces)
    ends = list(itertools.accumulate(len(chunk) for chunk in recorder.chunks))
    assert ends == [
        CHUNK_BYTES,
        CHUNK_BYTES + 6000,
        2 * CHUNK_BYTES,
        3 * CHUNK_BYTES,
        4 * CHUNK_BYTES,
        4 * CHUNK_BYTES + 6077,
    ]


async def test_an_append_inside_a_block_first_completes_that_block(clock):
    """An append to a resumable upload at an offset inside a block (a PATCH resumed where
    the last one stopped) sends first what completes that block, then whole blocks."""
    recorder = Recorder()
    data = random.Random(11).randbytes(3 * CHUNK_BYTES)
    await upload_to(recorder, writing([data]), offset=5 * CHUNK_BYTES + 1000)
    assert b"".join(recorder.chunks) == data
    assert [len(chunk) for chunk in recorder.chunks] == [CHUNK_BYTES - 1000, CHUNK_BYTES, CHUNK_BYTES, 1000]


async def test_an_upload_whose_master_went_away_fails_as_unreachable(clock):
    """A master that dies mid-upload (its connection ends) fails the upload's next write
    with the connection's loss, which the web answers 503 "try again shortly": not with a
    protocol error (a 500 "something went wrong on our side"), as chaos.py found when the
    web saw the master's end of the connection close before it sent its next frame."""

    async def dies_after_one_chunk(conn: FrameStream, request: protocol.Message) -> None:
        await conn.read_expected(Chunk, timeout=5)
        conn.abort()  # as the kernel ends the connections of a killed process

    server = await links.serve_connections(dies_after_one_chunk, HOST, 0, None, 4, {})
    await server.start_serving()
    pool = ConnectionPool(lambda: links.connect(HOST, server.sockets[0].getsockname()[1], None, "master"))
    try:
        lease = await pool.acquire()
        await lease.connection.write_frame(Ok({}))  # the opening request
        upload = Upload(pool, lease, answer=Ok)
        await upload.write(bytes(CHUNK_BYTES))
        for _ in range(500):  # until the upload has seen its master's end close
            if upload._answer.done():
                break
            await asyncio.sleep(0.01)
        with pytest.raises(ConnectionError):
            await upload.write(bytes(CHUNK_BYTES))
    finally:
        pool.close()
        server.close()
