"""Writing blob bytes from the master to datanodes: fan-out with stall detection.

Theory of operation
-------------------
`ReplicaFanout` writes one blob to several datanodes at once, each over a pooled
connection (`DatanodePools`). Each chunk is encoded once and queued on every replica's
connection; the next chunk is taken only when every replica's transport has drained, so
the slowest healthy replica paces the upload and the bytes in flight stay bounded by a
chunk plus socket buffers per replica.

Telling a slow replica from a dead one is what keeps the healthy ones going. While a
datanode works on a write it sends a Keepalive whenever it has sent nothing for
stream.KEEPALIVE_S, and a background task per replica reads what it sends (keepalives,
an early Error, the final End). A replica whose transport does not drain and that has
been silent for `stall_s` (frozen, partitioned) is dropped within that time; one that
is slow but talking (a busy disk) is waited for, up to DRAIN_LIMIT_S. In the other
direction the master keeps each replica's connection alive while it waits on the
uploader or on a stuck replica, so a healthy datanode never gives up on the master at
the moment the master gives up on its stuck peer. The write goes on as long as
`min_replicas` remain; `finish()` returns the nodes that confirmed size and sha256.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from myyoutube import protocol
from myyoutube import stream as streams
from myyoutube.formatting import agreeing, counted, exception_text
from myyoutube.pool import DatanodePools, Lease
from myyoutube.protocol import Chunk, DeleteBlob, End, Ok, PutSidecars, WriteBlob
from myyoutube.quietlog import QuietLog
from myyoutube.replica_reads import REPLICA_FAILURES, ReplicationFailed
from myyoutube.stream import Keepalives, RequestFailed

log = logging.getLogger(__name__)
quiet = QuietLog(log)

# A replica that keeps saying it is alive but does not take a chunk for this long (a disk
# that hangs while the process runs) is dropped all the same.
DRAIN_LIMIT_S = 60.0

# Idle connections kept per datanode: a master runs a few uploads, repairs and dozens of
# reads per node at once; beyond this, finished connections are closed.
MAX_IDLE_PER_DATANODE = 32


class StalledReplica(TimeoutError):
    """A replica stopped taking bytes and fell silent."""


@dataclass
class _Replica:
    """One datanode receiving the blob: its connection, the reader of what it says, and
    the ticker that keeps our side of the connection alive."""

    lease: Lease
    answer: asyncio.Task
    ticker: Keepalives

    @property
    def connection(self) -> streams.FrameStream:
        return self.lease.connection


class ReplicaFanout:
    def __init__(
        self,
        blob_id: str,
        min_replicas: int,
        pools: DatanodePools,
        stall_s: float,
        sidecar: dict | None = None,
    ) -> None:
        self.blob_id = blob_id
        self.min_replicas = min_replicas
        self.pools = pools
        self.stall_s = stall_s
        self.replicas: dict[str, _Replica] = {}
        self.failed: dict[str, str] = {}  # node -> why it was dropped
        # What each node is asked to open: a new blob, or an append to an open one
        # (master/open_replicas.py sets an AppendBlob, answered the same way).
        # A sidecar (sidecars.py) is published with the blob on every replica.
        self.opening: protocol.Message = WriteBlob(blob_id=blob_id, sidecar=sidecar or {})

    async def open(self, nodes: list[str]) -> None:
        """Ask each node to accept the blob; keep those that agree (see check_enough)."""
        results = await asyncio.gather(*(self._open_one(node) for node in nodes), return_exceptions=True)
        for node, result in zip(nodes, results, strict=True):
            if isinstance(result, _Replica):
                self.replicas[node] = result
            elif isinstance(result, Exception):
                self._drop(node, result)
            else:
                raise result

    @property
    def tried(self) -> frozenset[str]:
        return frozenset(self.replicas) | frozenset(self.failed)

    async def _open_one(self, node: str) -> _Replica:
        async def attempt(lease: Lease) -> None:
            await lease.connection.write_frame(self.opening)
            await lease.connection.read_expected(Ok, timeout=self.stall_s * 2)

        lease, _ = await self.pools[node].start(attempt)
        connection = lease.connection
        # The datanode's only answer from now on is End (or Error); keepalives in between
        # are consumed by read_frame and only refresh connection.last_heard.
        answer = asyncio.create_task(connection.read_expected(End, timeout=None))
        return _Replica(lease, answer, connection.start_keepalive())

    def _drop(self, node: str, why: BaseException) -> None:
        replica = self.replicas.pop(node, None)
        if replica is not None:
            self._let_go(node, replica)
        self.failed[node] = exception_text(why)
        quiet.warning("replica %s of blob %s dropped: %s", node, self.blob_id, self.failed[node])

    def _let_go(self, node: str, replica: _Replica) -> None:
        replica.ticker.cancel()
        replica.answer.cancel()
        self.pools[node].release(replica.lease)

    def check_enough(self) -> None:
        require_replicas(self.blob_id, len(self.replicas), self.min_replicas, self.failed)

    async def _each(self, send: Callable[[_Replica], Awaitable[object]]) -> dict[str, object]:
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

    async def _drained(self, replica: _Replica) -> None:
        await wait_drained(replica.connection, replica.answer, self.stall_s)

    async def write(self, data: bytes) -> None:
        frame = protocol.encode(Chunk(data))

        async def deliver(replica: _Replica) -> None:
            replica.connection.queue_encoded(frame)
            await self._drained(replica)

        await self._each(deliver)

    async def finish(self, size: int, sha256: str) -> list[str]:
        """End the blob; the nodes that stored exactly `size` bytes with this sha256."""
        frame = protocol.encode(End(size=size, sha256=sha256))

        async def end(replica: _Replica) -> End:
            replica.connection.queue_encoded(frame)
            await self._drained(replica)
            answer = await wait_answer(replica.connection, replica.answer, self.stall_s)
            if (answer.size, answer.sha256) != (size, sha256):
                raise RequestFailed("checksum", f"stored {answer.size} bytes, sha256 {answer.sha256}")
            replica.lease.done()
            return answer

        stored = list(await self._each(end))
        self.close()
        return stored

    def close(self) -> None:
        """Let every connection go: back to its pool if the blob ended cleanly on it."""
        for node, replica in self.replicas.items():
            self._let_go(node, replica)
        self.replicas.clear()

    async def abort(self) -> None:
        """Give up: drop every connection and delete whatever was stored (best effort)."""
        nodes = list(self.replicas) + list(self.failed)
        self.close()
        await asyncio.gather(
            *(delete_blob(self.pools, node, self.blob_id) for node in nodes), return_exceptions=True
        )


def needed(replicas: int) -> str:
    """How many copies an upload needs, as the sentences refusing it say it: "2 are needed"."""
    return f"{replicas} {agreeing(replicas, 'is', 'are')} needed"


def require_replicas(blob_id: str, left: int, min_replicas: int, failed: dict[str, str]) -> None:
    """ReplicationFailed if fewer than `min_replicas` replicas are `left`."""
    if left < min_replicas:
        # The reasons name internal addresses and errors: for the log, not the user.
        log.warning("blob %s: too few replicas left (%s)", blob_id, failed)
        raise ReplicationFailed(
            f"Only {counted(left, 'datanode')} could keep storing the video and {needed(min_replicas)}; "
            "try again shortly."
        )


async def wait_drained(connection: streams.FrameStream, answer: asyncio.Task, stall_s: float) -> None:
    """Wait until a datanode took what was queued on `connection`; StalledReplica if it
    fell silent, RequestFailed or RemoteProtocolError if it answered (`answer`) early."""
    started = time.monotonic()
    while True:
        if answer.done():
            answer.result()  # an early Error raises RequestFailed here
            raise protocol.RemoteProtocolError("datanode answered before the blob ended")
        try:
            await connection.drain(timeout=stall_s / 2)
            return
        except TimeoutError:
            now = time.monotonic()
            silent_s = now - connection.last_heard
            if silent_s > stall_s or now - started > DRAIN_LIMIT_S:
                raise StalledReplica(f"took no bytes and was silent for {silent_s:.1f}s") from None


async def wait_answer(connection: streams.FrameStream, answer: asyncio.Task, stall_s: float):
    """The datanode's final answer after End. It fsyncs before answering, sending
    keepalives meanwhile; StalledReplica if it falls silent instead."""
    while not answer.done():
        await asyncio.wait({answer}, timeout=stall_s / 2)
        silent_s = time.monotonic() - connection.last_heard
        if not answer.done() and silent_s > stall_s:
            raise StalledReplica(f"silent for {silent_s:.1f}s while finishing")
    return answer.result()


async def put_sidecars(pools: DatanodePools, node: str, sidecars: list[dict]) -> None:
    async def attempt(lease: Lease) -> None:
        await lease.connection.write_frame(PutSidecars(sidecars=sidecars))
        await lease.connection.read_expected(Ok)
        lease.done()

    await pools[node].call(attempt)


async def delete_blob(pools: DatanodePools, node: str, blob_id: str) -> None:
    async def attempt(lease: Lease) -> None:
        await lease.connection.write_frame(DeleteBlob(blob_id=blob_id))
        await lease.connection.read_expected(Ok)
        lease.done()

    await pools[node].call(attempt)
