"""The one place where protocol frames meet asyncio sockets.

Theory of operation
-------------------
`FrameStream` wraps an asyncio (reader, writer) pair and a sans-IO `FrameDecoder`. Reading
asks the decoder how many bytes the current frame still needs and reads exactly that, so
the decoder's length checks run before a large body is accepted and nothing past the
current frame is buffered. Writing encodes a frame and waits for the transport to drain,
which is how backpressure travels from a slow reader back to the sender at every hop.

Opening and accepting connections (mutual TLS, admission limits) is links.py's job; this
module only speaks frames over a connection once it exists. Every wait has a deadline, so
a peer that stops talking costs a bounded amount of time, never a task forever.

Connections are long-lived: a server reads one request after another on each connection
(links.serve_connections), and clients keep idle connections in a pool (pool.py), so a
request costs no new TCP connection and no handshake.

Silence is how a dead or frozen peer shows itself, and `read_frame`'s timeout measures
exactly that: the time since the peer's last frame. A peer that is busy but healthy (a
datanode waiting on its disk, a master failing over to another replica) runs `keepalive`
around the work, which sends a `Keepalive` frame whenever it has sent nothing for
KEEPALIVE_S, so the receiver's silence limit can be a second or two without false alarms.
Readers never see Keepalive frames; they only reset the silence timer.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar, overload

from myyoutube import protocol
from myyoutube.protocol import Error, Keepalive, Message

log = logging.getLogger(__name__)

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
        # The role the peer's certificate grants (links.py); None on an unencrypted
        # development link, where nobody's role is checked.
        self.peer_role: str | None = None
        self.peer_serial: int | None = None  # its certificate's serial, checked against revocation
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

    async def write_chunk(self, data: bytes, timeout: float = PEER_TIMEOUT_S) -> None:
        """Send Chunk(data) without copying `data` into a frame: header and data go to the
        transport as two buffers (the relay's hot path)."""
        self._check_open()
        self._writer.writelines((protocol.chunk_header(len(data)), data))
        self._last_sent = time.monotonic()
        async with asyncio.timeout(timeout):
            await self._writer.drain()

    def _check_open(self) -> None:
        if self._writer.transport.is_closing():
            # asyncio's transport drops such a write silently, uvloop's raises
            # RuntimeError: either way the peer is gone, which callers handle as this.
            raise ConnectionResetError(f"the connection to {self.peer} is closed")

    def queue_encoded(self, frame: bytes) -> None:
        """Hand a whole frame to the transport without waiting for it to drain (frames
        never interleave: the transport appends each write whole)."""
        self._check_open()
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


def bound_buffers(sock: socket.socket) -> socket.socket:
    """Cap a socket's kernel buffers (set before connect/listen so TCP's window agrees)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
    return sock
