"""The one place where protocol frames meet asyncio sockets.

Theory of operation
-------------------
`FrameReceiver` is the connection's asyncio protocol, a BufferedProtocol: the event loop
reads the socket straight into the sans-IO `FrameDecoder` (its get_buffer and
buffer_updated), so a chunk's bytes land where the message that carries them will hold
them, and the decoder's length checks run before a large body is accepted. Complete
frames wait in the decoder; once a chunk's worth waits unread, the receiver stops reading
the socket, and TCP's window tells the sender to wait. `FrameStream` is what the rest of
the code talks to: it takes frames from the receiver and writes encoded frames to the
transport, waiting for it to drain (the receiver relays the transport's pause and resume),
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
import time
import typing
from collections.abc import AsyncIterator, Callable
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

# A connection stops reading its socket once this much of decoded frames waits for its
# reader: one chunk is all a frame reader needs (a larger frame still arrives whole, since
# the check comes after each frame).
STREAM_BUFFER_BYTES = protocol.CHUNK_BYTES

# How long close() waits for unsent bytes to reach a peer before giving up on them.
CLOSE_FLUSH_S = 1.0

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


class FrameReceiver(asyncio.BufferedProtocol):
    """The connection's asyncio protocol: received bytes go straight into the decoder
    (its get_buffer/buffer_updated), complete frames wait there for `FrameStream`, and
    the transport's flow control (pause_writing/resume_writing) gates `drain`."""

    def __init__(self) -> None:
        self.decoder = protocol.FrameDecoder()
        self.transport: asyncio.Transport | None = None
        self.ended: BaseException | None = None  # why no more frames will come, once known
        self._reading_paused = False
        self._writing_paused = False
        self._frame_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.decoder.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        self.decoder.buffer_updated(nbytes)
        if (self.decoder.ready_bytes or self.decoder.failed) and self.transport is not None:
            if self.decoder.ready_bytes >= STREAM_BUFFER_BYTES and not self._reading_paused:
                # The reader lags: leave the rest in the kernel, whose buffer then fills
                # and TCP's window tells the sender to wait.
                self._reading_paused = True
                self.transport.pause_reading()
            self._wake_reader()

    def eof_received(self) -> bool:
        self._end(None)
        return False  # close our side too: a peer that stopped sending is done with us

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(exc)
        if not self.closed.done():
            self.closed.set_result(None)
        self.resume_writing()  # wakes the writers, which then find the connection lost

    def _end(self, exc: BaseException | None) -> None:
        if self.ended is None:
            self.ended = exc or EOFError()
        self._wake_reader()

    def _wake_reader(self) -> None:
        waiter, self._frame_waiter = self._frame_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def take_message(self) -> Message | None:
        """The next decoded message, None if none is complete yet; raises the decoder's
        RemoteProtocolError after the good frames before it."""
        message = self.decoder.next_frame()
        if self._reading_paused and self.decoder.ready_bytes < STREAM_BUFFER_BYTES:
            self._reading_paused = False
            if self.transport is not None and not self.transport.is_closing():
                self.transport.resume_reading()
        return message

    async def frame_arrived(self, timeout: float | None) -> None:
        """Wait until a frame is complete or the connection ended; TimeoutError after
        `timeout` seconds without either."""
        loop = asyncio.get_running_loop()
        waiter = self._frame_waiter = loop.create_future()
        # A bare timer, not asyncio.timeout: this runs for every frame of every relay.
        timer = None if timeout is None else loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            if self._frame_waiter is waiter:
                self._frame_waiter = None

    @property
    def writing_paused(self) -> bool:
        return self._writing_paused

    async def drained(self) -> None:
        """Return once the transport takes writes again; ConnectionResetError if the
        connection is lost first."""
        if self._writing_paused and not self.closed.done():
            if self._drain_waiter is None:
                self._drain_waiter = asyncio.get_running_loop().create_future()
            # Shared by every writer waiting, each of which may be cancelled on its own.
            await asyncio.shield(self._drain_waiter)
        if self.closed.done():
            raise ConnectionResetError("Connection lost")


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class FrameStream:
    """A connection that speaks whole protocol messages."""

    def __init__(self, transport: asyncio.BaseTransport, receiver: FrameReceiver) -> None:
        self._transport = typing.cast(asyncio.Transport, transport)
        self._receiver = receiver
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        # The role the peer's certificate grants (links.py); None on an unencrypted
        # development link, where nobody's role is checked.
        self.peer_role: str | None = None
        self.peer_serial: int | None = None  # its certificate's serial, checked against revocation
        self.last_heard = time.monotonic()  # when the peer's last frame arrived
        self.frames_received = 0  # every frame, keepalives included
        self._last_sent = time.monotonic()  # when we last queued a frame
        self._encrypted = transport.get_extra_info("ssl_object") is not None

    async def read_frame(self, timeout: float | None = PEER_TIMEOUT_S) -> Message:
        """The next message other than Keepalive; ConnectionClosed on EOF, TimeoutError
        after `timeout` seconds without any frame from the peer (None: wait as long as the
        connection lives)."""
        while True:
            message = self._receiver.take_message()
            if message is None:
                if self._receiver.ended is not None:
                    raise ConnectionClosed(self._why_closed()) from self._receiver.ended
                await self._receiver.frame_arrived(timeout)
                continue
            self.last_heard = time.monotonic()
            self.frames_received += 1
            if not isinstance(message, Keepalive):
                return message

    def _why_closed(self) -> str:
        """The peer's close, in words. A role started with --cert-dir closes an
        unencrypted link at its first bytes without a word (its TLS handshake fails), so
        a plain link closed before any frame arrived says what to check."""
        if self.frames_received == 0 and not self._encrypted:
            return (
                f"{self.peer} closed the connection before answering (if it runs with "
                "--cert-dir, this role needs one too)"
            )
        return f"{self.peer} closed the connection"

    @property
    def is_open(self) -> bool:
        return not self._transport.is_closing() and self._receiver.ended is None

    def heard_nothing_while_idle(self) -> bool:
        """Between requests: drop the keepalives that arrived (a peer's ticker may send
        one just after its answer; readers never see them anyway), and say whether
        nothing else did. Anything else, a frame or part of one, is the late answer of a
        request given up on, which the next request here would read as its own."""
        decoder = self._receiver.decoder
        try:
            while decoder.ready_bytes:
                if not isinstance(self._receiver.take_message(), Keepalive):
                    return False
        except protocol.ProtocolError:
            return False
        return decoder.buffered == 0 and not decoder.failed

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the connection is closed, by either side."""
        self._receiver.closed.add_done_callback(lambda _closed: callback())

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
        await self.drain(timeout)

    async def write_chunk(
        self,
        data: bytes | memoryview,
        timeout: float = PEER_TIMEOUT_S,
        before: bytes = b"",
        after: bytes = b"",
    ) -> None:
        """Send Chunk(data) without copying `data` into a frame (queue_chunk), then wait
        until the transport has room for more."""
        self.queue_chunk(data, before, after)
        await self.drain(timeout)

    def _check_open(self) -> None:
        if self._transport.is_closing():
            # asyncio's transport drops such a write silently, uvloop's raises
            # RuntimeError: either way the peer is gone, which callers handle as this.
            raise ConnectionResetError(f"the connection to {self.peer} is closed")

    def queue_chunk(self, data: bytes | memoryview, before: bytes = b"", after: bytes = b"") -> None:
        """queue_encoded(encode(Chunk(data))) without copying `data` into a frame: header
        and data go to the transport as separate buffers (the relay's and the write
        chain's hot path). `before` and `after` are encoded frames sent in the same write:
        a range of one chunk goes out with the record before it and the End after it in
        one system call, and wakes its reader once."""
        self._check_open()
        self._transport.writelines((before, protocol.chunk_header(len(data)), data, after))
        self._last_sent = time.monotonic()

    def queue_encoded(self, frame: bytes) -> None:
        """Hand a whole frame to the transport without waiting for it to drain (frames
        never interleave: the transport appends each write whole)."""
        self._check_open()
        self._transport.write(frame)
        self._last_sent = time.monotonic()

    async def drain(self, timeout: float | None) -> None:
        """Wait until the transport has room for more; TimeoutError after `timeout`,
        ConnectionResetError if the connection is lost."""
        if self._transport.is_closing():
            await asyncio.sleep(0)  # let connection_lost run first, as asyncio's StreamWriter
        if self._receiver.writing_paused or self._receiver.closed.done():
            async with asyncio.timeout(timeout):
                await self._receiver.drained()

    def keepalive_if_due(self) -> bool:
        """Send a Keepalive if one is due; False once the connection is closing."""
        if self._transport.is_closing():
            return False
        if self._keepalive_due():
            self.queue_encoded(_KEEPALIVE_FRAME)
        return True

    def _keepalive_due(self) -> bool:
        # Only on an idle transport: a frame stuck behind unsent bytes proves nothing, and
        # queueing more behind a frozen peer would only grow our buffer.
        idle_for = time.monotonic() - self._last_sent
        return idle_for >= KEEPALIVE_S and self._transport.get_write_buffer_size() == 0

    def start_keepalive(self) -> Keepalives:
        """Send Keepalive whenever nothing else was sent for KEEPALIVE_S, until cancelled
        or the connection closes."""
        return Keepalives(self)

    @asynccontextmanager
    async def keepalive(self) -> AsyncIterator[None]:
        """Keep the peer informed that we are alive while the body waits on something else."""
        keepalives = self.start_keepalive()
        try:
            yield
        finally:
            keepalives.cancel()

    async def close(self) -> None:
        self._transport.close()
        try:
            await asyncio.wait_for(asyncio.shield(self._receiver.closed), timeout=CLOSE_FLUSH_S)
        except (OSError, TimeoutError):
            pass  # The peer is gone already; nothing left to flush.

    def abort(self) -> None:
        """Drop the connection at once, discarding unsent bytes."""
        self._transport.abort()


class Keepalives:
    """A timer that checks every KEEPALIVE_S / 2 whether a Keepalive is due on a stream.

    A timer callback rather than a task: every read the master relays runs one, and a
    timer costs the loop far less than a task that sleeps in a loop."""

    def __init__(self, stream: FrameStream) -> None:
        self._stream = stream
        self._timer = asyncio.get_running_loop().call_later(KEEPALIVE_S / 2, self._tick)

    def _tick(self) -> None:
        if self._stream.keepalive_if_due():
            self._timer = asyncio.get_running_loop().call_later(KEEPALIVE_S / 2, self._tick)

    def cancel(self) -> None:
        self._timer.cancel()
