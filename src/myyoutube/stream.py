"""The one place where protocol frames meet asyncio sockets.

Theory of operation
-------------------
`FrameStream` wraps an asyncio (reader, writer) pair and a sans-IO `FrameDecoder`. Reading
asks the decoder how many bytes the current frame still needs and reads exactly that, so
the decoder's length checks run before a large body is accepted and nothing past the
current frame is buffered. Writing encodes a frame and waits for the transport to drain,
which is how backpressure travels from a slow reader back to the sender at every hop.

Every connection starts with a mutual HMAC challenge-response over the cluster secret
(`accept` on the server side, `connect` on the client side); no command is read before the
peer proved it knows the secret. Every wait has a deadline, so a peer that stops talking
costs a bounded amount of time, never a task forever.

Connections are long-lived: a server reads one request after another on each connection
(`serve_connections`), and clients keep idle connections in a pool (pool.py), so a request
costs no new TCP connection and no handshake. A handler that returns leaves its connection
at a frame boundary, ready for the next request; one that raises closes it.

Silence is how a dead or frozen peer shows itself, and `read_frame`'s timeout measures
exactly that: the time since the peer's last frame. A peer that is busy but healthy (a
datanode waiting on its disk, a master failing over to another replica) runs `keepalive`
around the work, which sends a `Keepalive` frame whenever it has sent nothing for
KEEPALIVE_S, so the receiver's silence limit can be a second or two without false alarms.
Readers never see Keepalive frames; they only reset the silence timer.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar, overload

from myyoutube import protocol
from myyoutube.protocol import Authenticate, Challenge, Error, Keepalive, Message, Welcome

log = logging.getLogger(__name__)

# A peer must finish the handshake within this time; a socket that connects and sends
# nothing must not hold a slot for long.
HANDSHAKE_TIMEOUT_S = 5.0

# The longest a healthy peer may take to answer a request that has no keepalives (a
# stat, a listing, a delete): it answers from memory within milliseconds when it works.
PEER_TIMEOUT_S = 10.0

# A peer in the middle of a request sends a frame (data or Keepalive) at least this often.
# Small next to the stall limits below, so one late timer tick never looks like a stall.
KEEPALIVE_S = 0.5

# Default silence, in the middle of a request, after which a peer is taken for frozen or
# partitioned and the work moves to another replica: four keepalive periods, so a loaded
# but healthy peer is never cut off, and short enough that a viewer barely notices.
DEFAULT_STALL_S = 2.0

# A connection with no request in progress is closed by the server after this long; client
# pools drop idle connections well before (pool.POOL_IDLE_S), so a pooled connection is
# never closed by the server just as a request goes out on it.
SERVER_IDLE_S = 120.0

# The asyncio reader pauses the socket once it holds twice this much; one chunk is all a
# frame reader needs (a larger frame still arrives: reading resumes while it waits).
STREAM_BUFFER_BYTES = protocol.CHUNK_BYTES

# Kernel send and receive buffers of every internal socket. Left alone, Linux grows them
# to 4 MiB (send) and 32 MiB (receive) on loopback, and a paused viewer then leaves
# 20-33 MiB read ahead in the cluster; at 256 KiB it is ~3.6 MiB per viewer with the same
# stream throughput (bench/stream_window.py, bench/throughput.py).
SOCKET_BUFFER_BYTES = 256 * 1024

_NONCE_BYTES = 16

_KEEPALIVE_FRAME = protocol.encode(Keepalive())

M = TypeVar("M", bound=Message)
M2 = TypeVar("M2", bound=Message)
M3 = TypeVar("M3", bound=Message)


class ConnectionClosed(ConnectionError):
    """The peer closed the connection (cleanly, between or inside a frame)."""


class RequestFailed(Exception):
    """The peer answered a request with an Error frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class FrameStream:
    """A connection that speaks whole protocol messages."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._decoder = protocol.FrameDecoder()
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.last_heard = time.monotonic()  # when the peer's last frame arrived
        self.frames_received = 0  # every frame, keepalives included
        self._last_sent = time.monotonic()  # when we last queued a frame

    async def read_frame(self, timeout: float | None = PEER_TIMEOUT_S) -> Message:
        """The next message other than Keepalive; ConnectionClosed on EOF, TimeoutError
        after `timeout` seconds without any frame from the peer (None: wait as long as the
        connection lives)."""
        while True:
            async with asyncio.timeout(timeout):
                message = await self._next_message()
            self.last_heard = time.monotonic()
            self.frames_received += 1
            if not isinstance(message, Keepalive):
                return message

    async def _next_message(self) -> Message:
        while True:
            message = self._decoder.next_frame()
            if message is not None:
                return message
            try:
                data = await self._reader.readexactly(self._decoder.bytes_needed())
            except asyncio.IncompleteReadError as exc:
                raise ConnectionClosed(f"{self.peer} closed the connection") from exc
            self._decoder.feed(data)

    @property
    def is_open(self) -> bool:
        return not self._writer.transport.is_closing() and not self._reader.at_eof()

    # One overload per number of kinds, so the caller gets the union of exactly those.
    @overload
    async def read_expected(self, kind: type[M], /, *, timeout: float | None = PEER_TIMEOUT_S) -> M: ...

    @overload
    async def read_expected(
        self, kind: type[M], kind2: type[M2], /, *, timeout: float | None = PEER_TIMEOUT_S
    ) -> M | M2: ...

    @overload
    async def read_expected(
        self, kind: type[M], kind2: type[M2], kind3: type[M3], /, *, timeout: float | None = PEER_TIMEOUT_S
    ) -> M | M2 | M3: ...

    @overload
    async def read_expected(self, *kinds: type[M], timeout: float | None = PEER_TIMEOUT_S) -> M: ...

    async def read_expected(self, *kinds: type, timeout: float | None = PEER_TIMEOUT_S) -> Message:
        """The next message, which must be one of `kinds`; an Error raises RequestFailed."""
        message = await self.read_frame(timeout)
        if isinstance(message, Error):
            raise RequestFailed(message.code, message.message)
        if not isinstance(message, kinds):
            names = "/".join(kind.__name__ for kind in kinds)
            raise protocol.RemoteProtocolError(f"expected {names}, got {type(message).__name__}")
        return message

    async def write_frame(self, message: Message, timeout: float = PEER_TIMEOUT_S) -> None:
        """Send one message and wait until the transport has room for more."""
        await self.write_encoded(protocol.encode(message), timeout)

    async def write_encoded(self, frame: bytes, timeout: float = PEER_TIMEOUT_S) -> None:
        """Send a frame made by protocol.encode (encode once, send to several replicas)."""
        self.queue_encoded(frame)
        async with asyncio.timeout(timeout):
            await self._writer.drain()

    def queue_encoded(self, frame: bytes) -> None:
        """Hand a whole frame to the transport without waiting for it to drain (frames
        never interleave: the transport appends each write whole)."""
        if self._writer.transport.is_closing():
            # asyncio's transport drops such a write silently, uvloop's raises
            # RuntimeError: either way the peer is gone, which callers handle as this.
            raise ConnectionResetError(f"the connection to {self.peer} is closed")
        self._writer.write(frame)
        self._last_sent = time.monotonic()

    async def drain(self, timeout: float | None) -> None:
        async with asyncio.timeout(timeout):
            await self._writer.drain()

    def _keepalive_due(self) -> bool:
        # Only on an idle transport: a frame stuck behind unsent bytes proves nothing, and
        # queueing more behind a frozen peer would only grow our buffer.
        idle_for = time.monotonic() - self._last_sent
        return idle_for >= KEEPALIVE_S and self._writer.transport.get_write_buffer_size() == 0

    def start_keepalive(self) -> asyncio.Task:
        """Send Keepalive whenever nothing else was sent for KEEPALIVE_S, until the task
        is cancelled or the connection closes."""

        async def tick() -> None:
            while not self._writer.transport.is_closing():
                await asyncio.sleep(KEEPALIVE_S / 2)
                if self._keepalive_due():
                    self.queue_encoded(_KEEPALIVE_FRAME)

        return asyncio.create_task(tick())

    @asynccontextmanager
    async def keepalive(self) -> AsyncIterator[None]:
        """Keep the peer informed that we are alive while the body waits on something else."""
        ticker = self.start_keepalive()
        try:
            yield
        finally:
            ticker.cancel()

    async def close(self) -> None:
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), timeout=1.0)
        except (OSError, TimeoutError):
            pass  # The peer is gone already; nothing left to flush.

    def abort(self) -> None:
        """Drop the connection at once, discarding unsent bytes."""
        self._writer.transport.abort()


def _mac(secret: bytes, purpose: str, nonce: str) -> str:
    return hmac.new(secret, f"{purpose}:{nonce}".encode(), hashlib.sha256).hexdigest()


def bound_buffers(sock: socket.socket) -> socket.socket:
    """Cap a socket's kernel buffers (set before connect/listen so TCP's window agrees)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
    return sock


async def _connected_socket(host: str, port: int) -> socket.socket:
    loop = asyncio.get_running_loop()
    family, kind, proto, _, address = (await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))[0]
    sock = bound_buffers(socket.socket(family, kind, proto))
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


def _same_mac(received: str, expected: str) -> bool:
    # Compared as bytes: compare_digest refuses non-ASCII str, which a peer may send.
    return hmac.compare_digest(received.encode(), expected.encode())


async def connect(
    host: str, port: int, secret: bytes, role: str, timeout: float = HANDSHAKE_TIMEOUT_S
) -> FrameStream:
    """Open an authenticated connection to a cluster role at host:port."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(
            sock=await _connected_socket(host, port), limit=STREAM_BUFFER_BYTES
        )
    stream = FrameStream(reader, writer)
    try:
        challenge = await stream.read_expected(Challenge, timeout=timeout)
        my_nonce = secrets.token_hex(_NONCE_BYTES)
        await stream.write_frame(
            Authenticate(role=role, mac=_mac(secret, "client", challenge.nonce), nonce=my_nonce),
            timeout=timeout,
        )
        welcome = await stream.read_expected(Welcome, timeout=timeout)
        if not _same_mac(welcome.mac, _mac(secret, "server", my_nonce)):
            raise protocol.RemoteProtocolError(f"{host}:{port} does not know the cluster secret")
    except BaseException:
        stream.abort()
        raise
    return stream


async def accept(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, secret: bytes, role: str
) -> FrameStream | None:
    """Authenticate a freshly accepted connection; None (and closed) if the peer failed."""
    stream = FrameStream(reader, writer)
    nonce = secrets.token_hex(_NONCE_BYTES)
    try:
        await stream.write_frame(Challenge(nonce=nonce, role=role), timeout=HANDSHAKE_TIMEOUT_S)
        hello = await stream.read_expected(Authenticate, timeout=HANDSHAKE_TIMEOUT_S)
        if not _same_mac(hello.mac, _mac(secret, "client", nonce)):
            raise protocol.RemoteProtocolError("wrong cluster secret")
        await stream.write_frame(
            Welcome(mac=_mac(secret, "server", hello.nonce)), timeout=HANDSHAKE_TIMEOUT_S
        )
    except (protocol.ProtocolError, RequestFailed, ConnectionError, TimeoutError) as exc:
        log.warning("rejected connection from %s: %s", stream.peer, exc)
        stream.abort()
        return None
    return stream


Handler = Callable[[FrameStream, Message], Awaitable[None]]


async def serve_connections(
    handler: Handler,
    host: str,
    port: int,
    secret: bytes,
    role: str,
    max_connections: int,
    on_accept: Callable[[], None] | None = None,
) -> asyncio.Server:
    """Listen on host:port; authenticate each connection, then run `handler(stream,
    request)` for each request frame that arrives on it, one after another. `on_accept`
    is called for each authenticated connection (a counter for /api/status).

    At most `max_connections` are served at once; a connection past the bound waits for a
    slot before its handshake, holding only a socket (its bytes stay in kernel buffers).
    """
    slots = asyncio.Semaphore(max_connections)

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with slots:
            stream = await accept(reader, writer, secret, role)
            if stream is None:
                return
            if on_accept is not None:
                on_accept()
            try:
                await _serve_requests(stream, handler)
            except asyncio.CancelledError:
                # The server is shutting down. This coroutine is the connection task's top
                # level, so ending it quietly is safe; re-raising would make Python 3.11's
                # asyncio.streams log the cancellation as an error with a traceback.
                stream.abort()
                return
            finally:
                await stream.close()

    # Not listening yet: the caller finishes setting up, then calls start_serving().
    server = await asyncio.start_server(
        on_connect, host, port, limit=STREAM_BUFFER_BYTES, start_serving=False
    )
    for sock in server.sockets:  # accepted connections inherit the listener's buffers
        bound_buffers(sock)
    return server


async def _serve_requests(stream: FrameStream, handler: Handler) -> None:
    """Requests one after another until the peer leaves, idles out or misbehaves."""
    while True:
        try:
            request = await stream.read_frame(timeout=SERVER_IDLE_S)
        except (ConnectionError, TimeoutError) as exc:
            # Between requests this is a pooled connection being let go: routine.
            log.debug("connection from %s closed between requests: %s", stream.peer, exc)
            return
        except protocol.ProtocolError as exc:
            log.info("connection from %s dropped: %s", stream.peer, exc)
            return
        try:
            await handler(stream, request)
        except (protocol.ProtocolError, ConnectionError, TimeoutError) as exc:
            # A bad or vanished peer ends its own connection, never the server.
            log.info("connection from %s ended during %s: %s", stream.peer, type(request).__name__, exc)
            return
