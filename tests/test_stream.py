"""Tests for myyoutube.stream over real loopback sockets: frames, timeouts, bad peers.

Links here are plain TCP (no certificates), as a development cluster's are; TLS and the
admission limits are tested in test_links.py.
"""

from __future__ import annotations

import asyncio
import struct
import time

import pytest

from myyoutube import links, protocol, stream
from myyoutube.protocol import Chunk, End, Error, Ok
from myyoutube.stream import ConnectionClosed, FrameStream, RequestFailed

HOST = "127.0.0.1"


def port_of(server: links.Listener) -> int:
    return server.sockets[0].getsockname()[1]


async def start_served(handler, max_connections: int = 8) -> links.Listener:
    server = await links.serve_connections(handler, HOST, 0, None, max_connections, {})
    await server.start_serving()
    return server


async def stop(server: links.Listener) -> None:
    server.close()
    await server.wait_closed()


async def echo(conn: FrameStream, request: protocol.Message) -> None:
    """Answer every request frame with the same frame."""
    await conn.write_frame(request)


async def read_until_closed(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Everything the server sends until it closes or resets the connection."""
    received = b""
    async with asyncio.timeout(timeout):
        while True:
            try:
                piece = await reader.read(65536)
            except ConnectionResetError:
                return received
            if not piece:
                return received
            received += piece


# --- serving ------------------------------------------------------------------------------------


async def test_serve_connections_runs_the_handler_per_request():
    """A client gets each request frame echoed by the served handler."""
    server = await start_served(echo)
    try:
        client = await links.connect(HOST, port_of(server), None, "master")
        await client.write_frame(Ok({"n": 1}))
        assert await client.read_frame(timeout=3) == Ok({"n": 1})
        await client.write_frame(Chunk(b"\x00" * 1000))
        assert await client.read_frame(timeout=3) == Chunk(b"\x00" * 1000)
        await client.close()
    finally:
        await stop(server)


async def test_garbage_closes_only_that_connection():
    """Garbage from one peer closes its connection; other peers keep being served."""
    server = await start_served(echo)
    port = port_of(server)
    try:
        before = await links.connect(HOST, port, None, "master")
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(struct.pack("!IBI", 2**31, 6, 0) + b"garbage")  # over MAX_FRAME_BYTES
        assert await read_until_closed(reader, 3.0) == b""
        writer.close()

        await before.write_frame(Ok({"still": "served"}))
        assert await before.read_frame(timeout=3) == Ok({"still": "served"})
        after = await links.connect(HOST, port, None, "master")
        await after.write_frame(End(size=3, sha256="abc"))
        assert await after.read_frame(timeout=3) == End(size=3, sha256="abc")
        await before.close()
        await after.close()
    finally:
        await stop(server)


async def test_a_handler_defect_ends_its_link_with_one_traceback_per_kind(caplog):
    """A handler that raises what it should not (a defect a peer's request can trigger)
    ends that link only: the server goes on serving, and requests that trigger it in a
    loop log one traceback, not one each (a flood must not fill the log's disk)."""

    async def flawed(conn: FrameStream, request: protocol.Message) -> None:
        if isinstance(request, Ok) and request.info.get("flaw"):
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        await conn.write_frame(request)

    server = await start_served(flawed)
    try:
        with caplog.at_level("ERROR", logger="myyoutube.links"):
            for _ in range(5):
                client = await links.connect(HOST, port_of(server), None, "master")
                await client.write_frame(Ok({"flaw": True}))
                with pytest.raises(ConnectionClosed):
                    await client.read_frame(timeout=3)
                await client.close()
        after = await links.connect(HOST, port_of(server), None, "master")
        await after.write_frame(Ok({"flaw": False}))
        assert await after.read_frame(timeout=3) == Ok({"flaw": False})
        await after.close()
    finally:
        await stop(server)
    defects = [record for record in caplog.records if record.levelname == "ERROR"]
    assert len(defects) == 1 and "Ok request(s) failed in this server" in defects[0].getMessage()
    assert "OverflowError" in caplog.text  # the traceback, for whoever fixes it


async def test_client_sees_connection_closed_when_server_ends_it():
    """read_frame raises ConnectionClosed when the peer closes the socket."""

    async def hang_up(conn: FrameStream, request: protocol.Message) -> None:
        raise ConnectionClosed("the handler gives up on this peer")

    server = await start_served(hang_up)
    try:
        client = await links.connect(HOST, port_of(server), None, "master")
        await client.write_frame(Ok({}))
        with pytest.raises(ConnectionClosed):
            await client.read_frame(timeout=3)
        await client.close()
    finally:
        await stop(server)


async def test_read_frame_times_out_on_a_silent_peer():
    """read_frame raises TimeoutError when an authenticated peer sends nothing within `timeout`."""

    async def silent(conn: FrameStream, request: protocol.Message) -> None:
        await conn.read_frame(timeout=5)  # says nothing; ends when the client goes away

    server = await start_served(silent)
    try:
        client = await links.connect(HOST, port_of(server), None, "master")
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await client.read_frame(timeout=0.1)
        assert time.monotonic() - started < 1.0
        client.abort()
    finally:
        await stop(server)


async def test_read_expected_raises_request_failed_on_error_frame():
    """An Error answer makes read_expected raise RequestFailed carrying its code and message."""

    async def refuse(conn: FrameStream, request: protocol.Message) -> None:
        await conn.write_frame(Error("not_found", "no video named cat.mp4"))

    server = await start_served(refuse)
    try:
        client = await links.connect(HOST, port_of(server), None, "master")
        await client.write_frame(Ok({}))
        with pytest.raises(RequestFailed) as caught:
            await client.read_expected(Ok, End, timeout=3)
        assert caught.value.code == "not_found"
        assert caught.value.message == "no video named cat.mp4"
        assert str(caught.value) == "no video named cat.mp4"
        await client.close()
    finally:
        await stop(server)


async def test_read_expected_rejects_an_unexpected_kind():
    """A message of a kind not asked for makes read_expected raise RemoteProtocolError."""

    async def answer_chunk(conn: FrameStream, request: protocol.Message) -> None:
        await conn.write_frame(Chunk(b"abc"))

    server = await start_served(answer_chunk)
    try:
        client = await links.connect(HOST, port_of(server), None, "master")
        await client.write_frame(Ok({}))
        with pytest.raises(protocol.RemoteProtocolError, match="expected Ok/End, got Chunk"):
            await client.read_expected(Ok, End, timeout=3)
        await client.close()
    finally:
        await stop(server)


async def test_keepalives_reset_the_silence_timer_and_are_never_returned():
    """A peer that works longer than the reader's silence limit but runs `keepalive` is
    not taken for dead, and the reader only ever sees the real answer."""

    async def slow_but_alive(conn: FrameStream, request: protocol.Message) -> None:
        async with conn.keepalive():
            await asyncio.sleep(stream.KEEPALIVE_S * 4)
        await conn.write_frame(Ok({"after": "work"}))

    server = await start_served(slow_but_alive)
    try:
        client = await links.connect(HOST, port_of(server), None, "master")
        await client.write_frame(Ok({}))
        answer = await client.read_frame(timeout=stream.KEEPALIVE_S * 2)
        assert answer == Ok({"after": "work"})
        assert client.frames_received >= 3  # keepalives arrived and were swallowed
        await client.close()
    finally:
        await stop(server)


async def test_one_connection_serves_many_requests():
    """The server reads request after request on one connection (what pooling relies on)."""
    server = await start_served(echo)
    try:
        client = await links.connect(HOST, port_of(server), None, "master")
        for n in range(20):
            await client.write_frame(Ok({"n": n}))
            assert await client.read_frame(timeout=3) == Ok({"n": n})
        await client.close()
    finally:
        await stop(server)


# --- hostile payloads ---------------------------------------------------------------------


async def test_deeply_nested_meta_closes_only_that_connection():
    """A frame whose JSON meta nests 100,000 levels deep is a protocol error for that
    connection (no crash, no RecursionError escaping); other connections are unaffected."""
    server = await start_served(echo)
    port = port_of(server)
    try:
        survivor = await links.connect(HOST, port, None, "master")
        reader, writer = await asyncio.open_connection(HOST, port)
        meta = b"[" * 100_000
        writer.write(struct.pack("!IBI", 5 + len(meta), Ok.TYPE, len(meta)) + meta)
        assert await read_until_closed(reader, 3.0) == b""
        writer.close()
        await survivor.write_frame(Ok({"still": "served"}))
        assert await survivor.read_frame(timeout=3) == Ok({"still": "served"})
        await survivor.close()
    finally:
        await stop(server)


async def test_a_reader_that_lags_stops_the_sender_within_a_bounded_window():
    """A peer that sends chunk after chunk to a reader that takes none is stopped by
    backpressure (its drain times out) after a bounded number of bytes, and every chunk
    then arrives intact and in order once the reader reads."""
    sent: list[int] = []
    stalled = asyncio.Event()

    async def flood(conn: FrameStream, request: protocol.Message) -> None:
        for number in range(400):  # 100 MiB if nothing pushed back
            try:
                await conn.write_chunk(bytes([number % 256]) * protocol.CHUNK_BYTES, timeout=0.5)
            except TimeoutError:
                stalled.set()
                return
            sent.append(number)

    server = await start_served(flood)
    try:
        client = await links.connect(HOST, port_of(server), None, "master")
        await client.write_frame(Ok({}))
        async with asyncio.timeout(10):
            await stalled.wait()
        # Socket buffers (256 KiB each way), the transport's buffer and one chunk's worth
        # of decoded frames: a few MiB at most, nowhere near the 100 MiB offered.
        assert len(sent) * protocol.CHUNK_BYTES < 8 * 1024 * 1024
        for number in range(len(sent)):
            assert await client.read_frame(timeout=3) == Chunk(bytes([number % 256]) * protocol.CHUNK_BYTES)
        client.abort()
    finally:
        await stop(server)
