"""Tests for myyoutube.master_streams: an upload's bytes leave in whole frames.

What a user would notice if this broke: uploads a sixth slower, because every datanode of
the chain gathers pieces of its checksum blocks (three or four copies of each byte) when
the frames it is sent are not whole blocks.

A real served listener on 127.0.0.1 in this process stands in for the master's end of
the connection and records the frames it receives; no mocks.
"""

from __future__ import annotations

import random

from myyoutube import links, protocol
from myyoutube.master_streams import Upload
from myyoutube.pool import ConnectionPool
from myyoutube.protocol import CHUNK_BYTES, Chunk, End, Ok
from myyoutube.stream import FrameStream

HOST = "127.0.0.1"


class Recorder:
    """Takes an upload as the master would (chunks until End) and answers Ok with the
    size it counted; keeps each chunk as received."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    async def __call__(self, conn: FrameStream, request: protocol.Message) -> None:
        while not isinstance(frame := await conn.read_expected(Chunk, End, timeout=5), End):
            self.chunks.append(bytes(frame.data))
        await conn.write_frame(Ok({"upload": {"size": frame.size}}))


async def test_pieces_of_any_size_go_out_as_whole_frames():
    """Pieces of the sizes a web reads from a form (a few bytes, more than a frame, exactly
    a frame) reach the master as frames of exactly CHUNK_BYTES but the last, in order, and
    the size at the end counts every byte."""
    recorder = Recorder()
    server = await links.serve_connections(recorder, HOST, 0, None, 4, {})
    await server.start_serving()
    port = server.sockets[0].getsockname()[1]
    pool = ConnectionPool(lambda: links.connect(HOST, port, None, "master"))
    rng = random.Random(8)
    sizes = [4096, 70_000, CHUNK_BYTES, 3 * CHUNK_BYTES + 5, 1, CHUNK_BYTES - 1, 99_999]
    pieces = [rng.randbytes(size) for size in sizes]
    try:
        lease = await pool.acquire()
        await lease.connection.write_frame(Ok({}))  # the opening request
        upload = Upload(pool, lease, answer=Ok)
        for piece in pieces:
            await upload.write(piece)
        answer = await upload.finish()
    finally:
        pool.close()
        server.close()
    total = sum(sizes)
    assert answer == {"size": total}
    assert b"".join(recorder.chunks) == b"".join(pieces)
    assert [len(chunk) for chunk in recorder.chunks] == [CHUNK_BYTES] * (total // CHUNK_BYTES) + [
        total % CHUNK_BYTES
    ]
