"""Moving blob bytes between the master and datanodes: fan-out writes, failover reads.

Theory of operation
-------------------
`ReplicaFanout` writes one blob to several datanodes at once. Each chunk is encoded once
and handed to every replica's connection concurrently; the next chunk is taken only when
every replica's transport has drained, so the slowest healthy replica paces the upload and
the bytes in flight stay bounded by a chunk plus socket buffers per replica. A replica
that fails (error, reset, or a stall past PEER_TIMEOUT_S) is dropped; the write goes on
as long as `min_replicas` remain. `finish()` returns the nodes that confirmed the full
size and the sha256 the master computed.

`relay_blob` reads a byte range of a blob from one replica and hands each chunk to a
consumer. If the replica dies, stalls or answers with a corrupt block, it resumes at the
exact byte offset on the next replica, so the consumer sees one unbroken byte stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from myyoutube import protocol
from myyoutube import stream as streams
from myyoutube.protocol import Chunk, DeleteBlob, End, Ok, ReadBlob, WriteBlob
from myyoutube.stream import FrameStream, RequestFailed

log = logging.getLogger(__name__)

# What counts as "this replica failed" rather than a bug: it may be dead, hung, lying.
REPLICA_FAILURES = (OSError, TimeoutError, RequestFailed, protocol.ProtocolError)


class ReplicationFailed(Exception):
    """Too few replicas are left to store (or read) the blob safely."""

    def __init__(self, message: str, code: str = "unavailable") -> None:
        super().__init__(message)
        self.code = code


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


class ReplicaFanout:
    def __init__(self, blob_id: str, min_replicas: int, secret: bytes) -> None:
        self.blob_id = blob_id
        self.min_replicas = min_replicas
        self.secret = secret
        self.replicas: dict[str, FrameStream] = {}
        self.failed: dict[str, str] = {}  # node -> why it was dropped

    async def open(self, nodes: list[str]) -> None:
        """Ask each node to accept the blob; keep those that agree (see check_enough)."""
        results = await asyncio.gather(*(self._open_one(node) for node in nodes), return_exceptions=True)
        for node, result in zip(nodes, results, strict=True):
            if isinstance(result, FrameStream):
                self.replicas[node] = result
            else:
                self._drop(node, result)

    @property
    def tried(self) -> frozenset[str]:
        return frozenset(self.replicas) | frozenset(self.failed)

    async def _open_one(self, node: str) -> FrameStream:
        connection = await streams.connect(*split_address(node), self.secret, "master")
        try:
            await connection.write_frame(WriteBlob(blob_id=self.blob_id))
            await connection.read_expected(Ok)
        except BaseException:
            connection.abort()
            raise
        return connection

    def _drop(self, node: str, why: BaseException) -> None:
        connection = self.replicas.pop(node, None)
        if connection is not None:
            connection.abort()
        self.failed[node] = f"{type(why).__name__}: {why}"
        log.warning("replica %s of blob %s dropped: %s", node, self.blob_id, self.failed[node])

    def check_enough(self) -> None:
        if len(self.replicas) < self.min_replicas:
            reasons = "; ".join(f"{node}: {why}" for node, why in self.failed.items())
            raise ReplicationFailed(
                f"Only {len(self.replicas)} datanodes could keep storing the video and "
                f"{self.min_replicas} are needed; try again shortly. ({reasons or 'none available'})"
            )

    async def _each(self, send: Callable[[FrameStream], Awaitable[object]]) -> dict[str, object]:
        nodes = list(self.replicas)
        results = await asyncio.gather(*(send(self.replicas[n]) for n in nodes), return_exceptions=True)
        answers = {}
        for node, result in zip(nodes, results, strict=True):
            if isinstance(result, REPLICA_FAILURES):
                self._drop(node, result)
            elif isinstance(result, BaseException):
                raise result
            else:
                answers[node] = result
        self.check_enough()
        return answers

    async def write(self, data: bytes) -> None:
        frame = protocol.encode(Chunk(data))
        await self._each(lambda connection: connection.write_encoded(frame))

    async def finish(self, size: int, sha256: str) -> list[str]:
        """End the blob; the nodes that stored exactly `size` bytes with this sha256."""

        async def end(connection: FrameStream) -> End:
            await connection.write_frame(End(size=size, sha256=sha256))
            # The node fsyncs before answering; a large blob may take a while to flush.
            answer = await connection.read_expected(End, timeout=streams.PEER_TIMEOUT_S * 3)
            if (answer.size, answer.sha256) != (size, sha256):
                raise RequestFailed("checksum", f"stored {answer.size} bytes, sha256 {answer.sha256}")
            return answer

        stored = list(await self._each(end))
        self.close()
        return stored

    def close(self) -> None:
        for connection in self.replicas.values():
            connection.abort()

    async def abort(self, secret: bytes) -> None:
        """Give up: drop every connection and delete whatever was stored (best effort)."""
        nodes = list(self.replicas) + list(self.failed)
        self.close()
        await asyncio.gather(
            *(delete_blob(node, self.blob_id, secret) for node in nodes), return_exceptions=True
        )


async def delete_blob(node: str, blob_id: str, secret: bytes) -> None:
    connection = await streams.connect(*split_address(node), secret, "master")
    try:
        await connection.write_frame(DeleteBlob(blob_id=blob_id))
        await connection.read_expected(Ok)
    finally:
        connection.abort()


async def relay_blob(
    blob_id: str,
    offset: int,
    length: int,
    nodes: list[str],
    secret: bytes,
    consume: Callable[[bytes], Awaitable[None]],
    on_failure: Callable[[str, str], None],
) -> None:
    """Feed bytes [offset, offset+length) of a blob to `consume`, failing over between
    `nodes` in order; raises ReplicationFailed if every replica failed."""
    sent = 0
    for node in nodes:
        try:
            sent += await _relay_from(node, blob_id, offset + sent, length - sent, secret, consume)
            return
        except _PartialRead as partial:
            sent += partial.sent
            on_failure(node, partial.why)
            log.warning(
                "read of %s from %s failed at byte %d: %s; failing over",
                blob_id,
                node,
                offset + sent,
                partial.why,
            )
    raise ReplicationFailed(
        f"No copy of the video could be read from byte {offset + sent} "
        f"({len(nodes)} tried); try again shortly."
    )


class ConsumerGone(Exception):
    """Whoever the bytes were relayed to stopped taking them."""


class _PartialRead(Exception):
    def __init__(self, sent: int, why: str) -> None:
        super().__init__(why)
        self.sent = sent
        self.why = why


async def _relay_from(
    node: str,
    blob_id: str,
    offset: int,
    length: int,
    secret: bytes,
    consume: Callable[[bytes], Awaitable[None]],
) -> int:
    sent = 0
    connection = None
    try:
        connection = await streams.connect(*split_address(node), secret, "master")
        await connection.write_frame(ReadBlob(blob_id=blob_id, offset=offset, length=length))
        while sent < length:
            chunk = await connection.read_expected(Chunk)
            if len(chunk.data) > length - sent:
                raise protocol.RemoteProtocolError("datanode sent more bytes than asked for")
            try:
                await consume(chunk.data)
            except Exception as exc:
                # The reader went away or stalled: not this replica's fault, no failover.
                raise ConsumerGone(str(exc)) from exc
            sent += len(chunk.data)
        await connection.read_expected(End)
    except REPLICA_FAILURES as exc:
        raise _PartialRead(sent, f"{type(exc).__name__}: {exc}") from exc
    finally:
        if connection is not None:
            connection.abort()
    return sent
