"""An upload to the master and a read from it, each on one leased connection (client.py).

Theory of operation
-------------------
Bytes written to an `Upload` go out in frames of exactly CHUNK_BYTES (the last may be
shorter), each sent only when the master has drained the previous one, so the caller is
paced by the slowest replica. Whole frames matter downstream: a datanode checksums its
copy in CHUNK_BYTES blocks, and a chunk that is a whole block is checksummed and written
as it came, while pieces of blocks are gathered first (copied three or four times, on
each of the three datanodes). The web reads a form's file in pieces of whatever size the
network delivered, so the upload gathers them here, copying each byte once. But bytes
are held HOLD_AT_MOST_S at most: a slow uploader would otherwise leave the master
without a frame for as long as a frame takes to gather (256 s at the web's slowest
admitted rate), and the master gives up on an upload silent for two minutes. The
master's answer (the video's record, or an Error as soon as the upload cannot succeed) is
awaited in the background from the start, so a refusal reaches the writer at its next
chunk with the master's reason rather than as a broken pipe.

A `VideoRead` is handed the video's record the master answered with, then takes the
bytes frame by frame: `next_chunk()` lets the web hold the first bytes before it commits
to an HTTP status, and a master silent for MASTER_SILENCE_S is taken for frozen. Only a
read or upload that ran to its end gives its connection back to the pool; one abandoned
midway closes it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

from myyoutube import protocol
from myyoutube.pool import ConnectionPool, Lease
from myyoutube.protocol import CHUNK_BYTES, Chunk, End, Ok, VideoDetails, VideoInfo
from myyoutube.stream import RequestFailed

# An upload's End is answered after every replica fsynced a possibly large file.
FINISH_TIMEOUT_S = 120.0

# The longest an upload holds written bytes for want of a whole frame before sending them
# as a shorter one. Far below the master's UPLOAD_STALL_TIMEOUT_S (a writer that stalls
# entirely is cut off by the web first: CLIENT_IDLE_TIMEOUT_S), and long enough that an
# upload fast enough for whole frames to matter (over 256 KiB/s) always fills them.
HOLD_AT_MOST_S = 1.0

# After a failed write, how long to wait for the master's Error that explains it.
ANSWER_AFTER_RESET_S = 2.0

# The longest the master may be silent while a read is in progress. It sends a frame at
# least every stream.KEEPALIVE_S while it works (failing over, waiting for datanodes after
# a restart), so silence this long means it is frozen or cut off.
MASTER_SILENCE_S = 5.0


class Upload:
    """An upload in progress. The master's answer (VideoInfo, or an Error as soon as the
    upload cannot succeed, e.g. too few replicas left) is awaited in the background from
    the start, so a refusal stops the sender at its next chunk with the master's reason
    instead of a broken pipe."""

    def __init__(
        self, pool: ConnectionPool, lease: Lease, answer: type[VideoInfo | Ok] = VideoInfo, offset: int = 0
    ) -> None:
        """`offset`: where in the blob the bytes go (an append's offset; 0 for a video),
        so that frames end on the blob's blocks."""
        self._pool = pool
        self._lease = lease
        self._connection = lease.connection
        # VideoInfo for a video; Ok for an append to a resumable upload (its new offset).
        self._answer: asyncio.Future[VideoInfo | Ok] = asyncio.ensure_future(
            self._connection.read_expected(answer, timeout=None)
        )
        self.size = 0  # bytes written so far, sent or held
        self._offset = offset
        self._sent_to = offset  # where in the blob the bytes sent so far end
        # Written but not sent yet: less than a frame, or pieces that make more.
        self._held: list[bytes | memoryview] = []
        self._sent_at = time.monotonic()  # when the master last took a frame

    async def _refusal_or(self, exc: BaseException) -> BaseException:
        """The master's Error if it sent one (it explains a reset), else `exc`."""
        try:
            await asyncio.wait_for(asyncio.shield(self._answer), ANSWER_AFTER_RESET_S)
        except RequestFailed as refusal:
            return refusal
        except (ConnectionError, TimeoutError, protocol.ProtocolError):
            pass
        return exc

    def _why_answered_early(self) -> BaseException:
        """Why the master's side ended before the upload did: the connection's loss (the
        master stopped or died: the cluster is unavailable, try again) as it was found,
        else a frame the master had no reason to send yet."""
        lost = None if self._answer.cancelled() else self._answer.exception()
        if isinstance(lost, (ConnectionError, TimeoutError)):
            return lost
        return protocol.RemoteProtocolError("master answered early")

    async def write(self, data: bytes) -> None:
        """Send `data` after what was written before: the frames it completes now, the
        rest with the next write (or at finish), unless the master has waited
        HOLD_AT_MOST_S. Frames end where the upload's bytes cross a multiple of
        CHUNK_BYTES in the blob, so after a short frame sent early (or an append that
        starts inside a block) the next one completes the block and the frames after it
        are whole blocks again."""
        self._held.append(data)
        self.size += len(data)
        overdue = time.monotonic() - self._sent_at >= HOLD_AT_MOST_S
        boundary = (self._offset + self.size) // CHUNK_BYTES * CHUNK_BYTES  # the last one reached
        if boundary <= self._sent_to and not overdue:
            return
        # One piece that is exactly a frame (the common case when the writer reads whole
        # frames) is joined to itself: b"".join returns it, no copy.
        held = memoryview(b"".join(self._held))
        end = len(held) if overdue else boundary - self._sent_to
        self._held = [held[end:]] if end < len(held) else []
        start = 0
        while start < end:
            length = min(CHUNK_BYTES - self._sent_to % CHUNK_BYTES, end - start)
            await self._send(held[start : start + length])
            start += length

    async def _send(self, piece: bytes | memoryview) -> None:
        if self._answer.done():
            raise await self._refusal_or(self._why_answered_early())
        try:
            # Header and bytes as two buffers, not copied into a new frame. The transport
            # may hold `piece` after this returns: nothing changes its bytes.
            await self._connection.write_chunk(piece, timeout=FINISH_TIMEOUT_S)
        except (ConnectionError, TimeoutError) as exc:
            raise await self._refusal_or(exc) from exc
        self._sent_to += len(piece)
        self._sent_at = time.monotonic()  # taken: a master slow to take it is no reason to hurry

    async def finish(self, extra: dict | None = None, poster: bytes = b"") -> dict:
        """Commit the upload (with what was learnt of the file, and a JPEG poster);
        returns the video's record once every replica has it (for an append: the
        resumable upload's session with its new offset)."""
        try:
            if self._held:
                await self._send(b"".join(self._held))
                self._held = []
            if extra or poster:
                await self._connection.write_frame(VideoDetails(extra=extra or {}, poster=poster))
            await self._connection.write_frame(End(size=self.size, sha256=""))
            answer = await asyncio.wait_for(self._answer, FINISH_TIMEOUT_S)
            self._lease.done()
        except (ConnectionError, TimeoutError) as exc:
            raise await self._refusal_or(exc) from exc
        finally:
            self._answer.cancel()
            self._pool.release(self._lease)
        return answer.video if isinstance(answer, VideoInfo) else answer.info["upload"]

    def keepalive(self) -> AbstractAsyncContextManager[None]:
        """Keepalives to the master while the sender works between bytes (the web probing
        the file before finish): its UPLOAD_STALL_TIMEOUT_S measures silence."""
        return self._connection.keepalive()

    def abort(self) -> None:
        """Give up: the master drops the upload and every partial replica."""
        self._answer.cancel()
        self._pool.release(self._lease)  # never marked done: the connection is closed


class VideoRead:
    """An open read: what the read needs of the video's record (`video`: name,
    visibility, uploaded_at, parts), then the bytes [offset, offset+length) of the part
    asked for, clamped to its size. Take them with `next_chunk()` (b'' at the
    end) or iterate; `close()` when done (a read abandoned midway closes its connection)."""

    def __init__(self, pool: ConnectionPool, lease: Lease, video: dict, offset: int, length: int) -> None:
        self._pool = pool
        self._lease = lease
        self.video = video
        self.offset = offset
        self.length = length
        self.received = 0
        self._ended = False

    async def next_chunk(self) -> bytes:
        """The next bytes, b'' once all `length` arrived; RequestFailed if the master
        reported a failure, TimeoutError if it fell silent, ProtocolError if it lied."""
        if self._ended:
            return b""
        message = await self._lease.connection.read_expected(Chunk, End, timeout=MASTER_SILENCE_S)
        if isinstance(message, End):
            if self.received != self.length:
                raise protocol.RemoteProtocolError(f"read ended after {self.received} of {self.length} bytes")
            self._ended = True
            self._lease.done()
            return b""
        self.received += len(message.data)
        if self.received > self.length or not message.data:
            raise protocol.RemoteProtocolError("the master sent bytes it was not asked for")
        return message.data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while data := await self.next_chunk():
            yield data

    def close(self) -> None:
        self._pool.release(self._lease)
