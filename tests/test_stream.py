"""Tests for myyoutube.stream over real loopback sockets: handshake, timeouts, bad peers."""

from __future__ import annotations

import asyncio
import struct
import time

import pytest

from myyoutube import protocol, stream
from myyoutube.protocol import Authenticate, Challenge, Chunk, End, Error, Ok, Welcome, encode
from myyoutube.stream import ConnectionClosed, FrameStream, RequestFailed

SECRET = b"cluster secret for tests"
HOST = "127.0.0.1"


def port_of(server: asyncio.Server) -> int:
    return server.sockets[0].getsockname()[1]


class AcceptServer:
    """A listener whose every connection goes through stream.accept; outcomes are recorded."""

    def __init__(self, secret: bytes, role: str = "master") -> None:
        self.secret, self.role = secret, role
        self.outcomes: asyncio.Queue = asyncio.Queue()
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> AcceptServer:
        self.server = await asyncio.start_server(self._on_connect, HOST, 0)
        self.port = port_of(self.server)
        return self

    async def _on_connect(self, reader, writer) -> None:
        try:
            result = await stream.accept(reader, writer, self.secret, self.role)
        except BaseException as exc:  # recorded so a test can see what escaped accept()
            writer.transport.abort()
            await self.outcomes.put(exc)
            return
        await self.outcomes.put(result)
        if result is not None:
            await result.close()

    async def outcome(self, timeout: float = 3.0):
        return await asyncio.wait_for(self.outcomes.get(), timeout)

    async def __aexit__(self, *exc_info) -> None:
        self.server.close()
        await self.server.wait_closed()


async def start_served(handler, secret: bytes = SECRET, max_connections: int = 8) -> asyncio.Server:
    server = await stream.serve_connections(handler, HOST, 0, secret, "master", max_connections)
    await server.start_serving()
    return server


async def stop(server: asyncio.Server) -> None:
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


async def raw_handshake(port: int, secret: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Do the client half of the handshake by hand, leaving a raw socket pair."""
    reader, writer = await asyncio.open_connection(HOST, port)
    decoder = protocol.FrameDecoder()
    decoder.feed(await reader.readexactly(decoder.bytes_needed()))
    decoder.feed(await reader.readexactly(decoder.bytes_needed()))
    challenge = decoder.next_frame()
    assert isinstance(challenge, Challenge)
    writer.write(
        encode(Authenticate(role="web", mac=stream._mac(secret, "client", challenge.nonce), nonce="n" * 32))
    )
    decoder.feed(await reader.readexactly(decoder.bytes_needed()))
    decoder.feed(await reader.readexactly(decoder.bytes_needed()))
    assert decoder.next_frame() == Welcome(mac=stream._mac(secret, "server", "n" * 32))
    return reader, writer


# --- handshake ------------------------------------------------------------------------------


async def test_handshake_with_equal_secrets_authenticates_both_sides():
    """With the same secret, connect returns a stream and accept returns one too."""
    async with AcceptServer(SECRET, role="datanode") as listener:
        client = await stream.connect(HOST, listener.port, SECRET, "master")
        try:
            server_side = await listener.outcome()
            assert isinstance(server_side, FrameStream)
            assert server_side.peer.startswith("127.0.0.1:")
            assert client.peer == f"127.0.0.1:{listener.port}"
        finally:
            await client.close()


async def test_handshake_with_different_secrets_fails_on_both_sides():
    """With different secrets, accept returns None and connect raises."""
    async with AcceptServer(SECRET) as listener:
        with pytest.raises((ConnectionError, protocol.ProtocolError)):
            await stream.connect(HOST, listener.port, b"another secret", "web")
        assert await listener.outcome() is None


async def test_client_rejects_server_that_does_not_know_the_secret():
    """connect raises RemoteProtocolError when the server's Welcome mac is wrong (mutual proof)."""

    async def impostor(reader, writer):
        conn = FrameStream(reader, writer)
        await conn.write_frame(Challenge(nonce="abc", role="master"))
        hello = await conn.read_expected(Authenticate)
        await conn.write_frame(Welcome(mac=stream._mac(b"wrong secret", "server", hello.nonce)))
        await read_until_closed(reader, 3.0)
        writer.close()

    server = await asyncio.start_server(impostor, HOST, 0)
    try:
        with pytest.raises(protocol.RemoteProtocolError, match="does not know the cluster secret"):
            await stream.connect(HOST, port_of(server), SECRET, "web")
    finally:
        await stop(server)


async def test_authenticate_mac_is_bound_to_the_nonce():
    """A mac computed over a different nonce than the server's challenge is rejected."""
    async with AcceptServer(SECRET) as listener:
        reader, writer = await asyncio.open_connection(HOST, listener.port)
        conn = FrameStream(reader, writer)
        challenge = await conn.read_expected(Challenge)
        assert challenge.role == "master" and len(challenge.nonce) == 32
        await conn.write_frame(
            Authenticate(role="web", mac=stream._mac(SECRET, "client", "replayed"), nonce="x")
        )
        assert await listener.outcome() is None
        assert await read_until_closed(reader, 3.0) == b""
        writer.close()


async def test_silent_peer_dropped_after_handshake_timeout(monkeypatch):
    """A peer that connects and sends nothing is dropped after HANDSHAKE_TIMEOUT_S."""
    monkeypatch.setattr(stream, "HANDSHAKE_TIMEOUT_S", 0.2)
    async with AcceptServer(SECRET) as listener:
        started = time.monotonic()
        reader, writer = await asyncio.open_connection(HOST, listener.port)
        received = await read_until_closed(reader, 3.0)
        elapsed = time.monotonic() - started
        writer.close()
        assert await listener.outcome() is None
        # It got its Challenge, then the connection ended about 0.2 s later.
        decoder = protocol.FrameDecoder()
        decoder.feed(received)
        assert isinstance(decoder.next_frame(), Challenge)
        assert 0.15 <= elapsed < 2.0


async def test_peer_sending_wrong_message_in_handshake_is_rejected():
    """A peer answering the Challenge with anything but Authenticate gets None from accept."""
    async with AcceptServer(SECRET) as listener:
        reader, writer = await asyncio.open_connection(HOST, listener.port)
        conn = FrameStream(reader, writer)
        await conn.read_expected(Challenge)
        await conn.write_frame(Ok({}))
        assert await listener.outcome() is None
        writer.close()


# --- serving ------------------------------------------------------------------------------------


async def test_serve_connections_runs_handler_after_handshake():
    """An authenticated client gets its frames echoed by the served handler."""
    server = await start_served(echo)
    try:
        client = await stream.connect(HOST, port_of(server), SECRET, "web")
        await client.write_frame(Ok({"n": 1}))
        assert await client.read_frame(timeout=3) == Ok({"n": 1})
        await client.write_frame(Chunk(b"\x00" * 1000))
        assert await client.read_frame(timeout=3) == Chunk(b"\x00" * 1000)
        await client.close()
    finally:
        await stop(server)


async def test_garbage_after_handshake_closes_only_that_connection():
    """Garbage from one authenticated peer closes its connection; other peers keep being served."""
    server = await start_served(echo)
    port = port_of(server)
    try:
        before = await stream.connect(HOST, port, SECRET, "web")
        reader, writer = await raw_handshake(port, SECRET)
        writer.write(struct.pack("!IBI", 2**31, 6, 0) + b"garbage")  # over MAX_FRAME_BYTES
        assert await read_until_closed(reader, 3.0) == b""
        writer.close()

        await before.write_frame(Ok({"still": "served"}))
        assert await before.read_frame(timeout=3) == Ok({"still": "served"})
        after = await stream.connect(HOST, port, SECRET, "web")
        await after.write_frame(End(size=3, sha256="abc"))
        assert await after.read_frame(timeout=3) == End(size=3, sha256="abc")
        await before.close()
        await after.close()
    finally:
        await stop(server)


async def test_client_sees_connection_closed_when_server_ends_it():
    """read_frame raises ConnectionClosed when the peer closes the socket."""

    async def hang_up(conn: FrameStream, request: protocol.Message) -> None:
        raise ConnectionClosed("the handler gives up on this peer")

    server = await start_served(hang_up)
    try:
        client = await stream.connect(HOST, port_of(server), SECRET, "web")
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
        client = await stream.connect(HOST, port_of(server), SECRET, "web")
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
        client = await stream.connect(HOST, port_of(server), SECRET, "web")
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
        client = await stream.connect(HOST, port_of(server), SECRET, "web")
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
        client = await stream.connect(HOST, port_of(server), SECRET, "web")
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
        client = await stream.connect(HOST, port_of(server), SECRET, "web")
        for n in range(20):
            await client.write_frame(Ok({"n": n}))
            assert await client.read_frame(timeout=3) == Ok({"n": n})
        await client.close()
    finally:
        await stop(server)


# --- hostile payloads found by review ---------------------------------------------------


async def test_non_ascii_mac_is_rejected_not_crashing():
    """An Authenticate whose mac holds non-ASCII characters makes accept return None."""
    async with AcceptServer(SECRET) as listener:
        reader, writer = await asyncio.open_connection(HOST, listener.port)
        conn = FrameStream(reader, writer)
        await conn.read_expected(Challenge)
        await conn.write_frame(Authenticate(role="web", mac="\u00e9" * 64, nonce="x"))
        outcome = await listener.outcome()
        writer.close()
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is None


async def test_unauthenticated_deeply_nested_meta_is_rejected():
    """A pre-authentication frame with deeply nested JSON meta makes accept return None."""
    async with AcceptServer(SECRET) as listener:
        reader, writer = await asyncio.open_connection(HOST, listener.port)
        conn = FrameStream(reader, writer)
        await conn.read_expected(Challenge)
        meta = b"[" * 100_000
        writer.write(struct.pack("!IBI", 5 + len(meta), Authenticate.TYPE, len(meta)) + meta)
        outcome = await listener.outcome()
        writer.close()
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is None
