"""An asyncio client of the master, used by the web front end, tools and tests.

Theory of operation
-------------------
Each call opens one authenticated connection to the master, sends one request and reads
the answer; the master's `Error` frames surface as `RequestFailed(code, message)`. Uploads
and reads are streams: `start_upload` returns an `Upload` to which bytes are written (cut
into CHUNK_BYTES frames, each sent only when the master has drained the previous one, so
the caller is paced by the slowest replica), and `read` is an async iterator of chunks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

from myyoutube import protocol
from myyoutube import stream as streams
from myyoutube.protocol import (
    CHUNK_BYTES,
    Chunk,
    DeleteVideo,
    End,
    GetStatus,
    ListVideos,
    Ok,
    PurgeOrphans,
    PutVideo,
    ReadVideo,
    StatVideo,
    VideoDetails,
    VideoInfo,
    VideoList,
)
from myyoutube.stream import FrameStream, RequestFailed

__all__ = ["MasterClient", "RequestFailed", "Upload"]

M = TypeVar("M", bound=protocol.Message)

# An upload's End is answered after every replica fsynced a possibly large file.
FINISH_TIMEOUT_S = 120.0

# After a failed write, how long to wait for the master's Error that explains it.
ANSWER_AFTER_RESET_S = 2.0

# Waiting for the next bytes of a read (or the answer to PutVideo): the master may be
# failing over across replicas, each allowed PEER_TIMEOUT_S to answer.
READ_STALL_TIMEOUT_S = 60.0


class Upload:
    """An upload in progress. The master's answer (VideoInfo, or an Error as soon as the
    upload cannot succeed, e.g. too few replicas left) is awaited in the background from
    the start, so a refusal stops the sender at its next chunk with the master's reason
    instead of a broken pipe."""

    def __init__(self, connection: FrameStream) -> None:
        self._connection = connection
        self._answer = asyncio.ensure_future(connection.read_expected(VideoInfo, timeout=None))
        self.size = 0

    async def _refusal_or(self, exc: BaseException) -> BaseException:
        """The master's Error if it sent one (it explains a reset), else `exc`."""
        try:
            await asyncio.wait_for(asyncio.shield(self._answer), ANSWER_AFTER_RESET_S)
        except RequestFailed as refusal:
            return refusal
        except (ConnectionError, TimeoutError, protocol.ProtocolError):
            pass
        return exc

    async def write(self, data: bytes) -> None:
        for start in range(0, len(data), CHUNK_BYTES):
            if self._answer.done():
                raise await self._refusal_or(protocol.RemoteProtocolError("master answered early"))
            piece = data[start : start + CHUNK_BYTES]
            try:
                await self._connection.write_frame(Chunk(piece), timeout=FINISH_TIMEOUT_S)
            except (ConnectionError, TimeoutError) as exc:
                raise await self._refusal_or(exc) from exc
            self.size += len(piece)

    async def finish(self, extra: dict | None = None, poster: bytes = b"") -> dict:
        """Commit the upload (with what was learnt of the file, and a JPEG poster);
        returns the video's record once every replica has it."""
        try:
            if extra or poster:
                await self._connection.write_frame(VideoDetails(extra=extra or {}, poster=poster))
            await self._connection.write_frame(End(size=self.size, sha256=""))
            answer = await asyncio.wait_for(self._answer, FINISH_TIMEOUT_S)
        except (ConnectionError, TimeoutError) as exc:
            raise await self._refusal_or(exc) from exc
        finally:
            self._answer.cancel()
            await self._connection.close()
        return answer.video

    def abort(self) -> None:
        """Give up: the master drops the upload and every partial replica."""
        self._answer.cancel()
        self._connection.abort()


class MasterClient:
    def __init__(self, host: str, port: int, secret: bytes, role: str = "web") -> None:
        self.host, self.port, self.secret, self.role = host, port, secret, role

    async def _connect(self) -> FrameStream:
        return await streams.connect(self.host, self.port, self.secret, self.role)

    async def _ask(self, request: protocol.Message, *answers: type[M]) -> M:
        connection = await self._connect()
        try:
            await connection.write_frame(request)
            return await connection.read_expected(*answers)
        finally:
            await connection.close()

    async def start_upload(self, name: str, content_type: str) -> Upload:
        """Reserve a name and open replicas; RequestFailed if refused (exists, bad_name...)."""
        connection = await self._connect()
        try:
            await connection.write_frame(PutVideo(name=name, content_type=content_type))
            await connection.read_expected(Ok, timeout=READ_STALL_TIMEOUT_S)
        except BaseException:
            connection.abort()
            raise
        return Upload(connection)

    async def read(self, name: str, offset: int, length: int, part: str = "video") -> AsyncIterator[bytes]:
        """Yield the bytes [offset, offset+length) of a video (or its poster), in chunks."""
        connection = await self._connect()
        try:
            await connection.write_frame(ReadVideo(name=name, part=part, offset=offset, length=length))
            received = 0
            while True:
                message = await connection.read_expected(Chunk, End, timeout=READ_STALL_TIMEOUT_S)
                if isinstance(message, End):
                    break
                received += len(message.data)
                yield message.data
            if received != length:
                raise protocol.RemoteProtocolError(f"read ended after {received} of {length} bytes")
        finally:
            connection.abort()

    async def stat(self, name: str) -> dict:
        return (await self._ask(StatVideo(name=name), VideoInfo)).video

    async def list(self, query: str = "") -> list[dict]:
        return (await self._ask(ListVideos(query=query), VideoList)).videos

    async def delete(self, name: str) -> None:
        await self._ask(DeleteVideo(name=name), Ok)

    async def purge_orphans(self) -> int:
        """Have the master delete every blob its index does not know; how many."""
        return (await self._ask(PurgeOrphans(), Ok)).info["purged"]

    async def status(self) -> dict:
        return (await self._ask(GetStatus(), Ok)).info
