"""Reading a byte range of a blob from its replicas: hedged first byte, failover midway.

Theory of operation
-------------------
A `ReplicaRead` hands out the bytes [offset, offset+length) of a blob chunk by chunk, as
one unbroken stream, whatever the replicas do. Its reader pulls (`next_chunk`), so the
web can hold the first bytes before it commits to a status line; `relay_blob` pushes the
same stream into a consumer (the web's connection through the master, a repair copy).

Starting a read: the first replica in `nodes` (the state's order: healthy and not
recently failed first) is asked over a pooled connection. If its first chunk has not
arrived after FIRST_BYTE_HEDGE_S, the next replica is asked too, and whichever answers
first serves the read; the other request is dropped with its connection. A replica that
fails outright is replaced at once. So a partitioned or frozen node costs a new viewer a
fraction of a second, not a timeout.

Midway: a replica that errs (a corrupt block), closes, or stays silent for `stall_s`
(datanodes send keepalives while they wait on their disk, so silence means frozen or cut
off) is abandoned, and the read resumes at the exact byte on the next replica.
`on_failure` tells the caller, which stops routing reads to that node for a while.

A consumer that fails (the viewer left) ends the relay with ConsumerGone: not the
replica's fault, no failover.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from myyoutube import protocol
from myyoutube.formatting import exception_text
from myyoutube.pool import DatanodePools, Lease
from myyoutube.protocol import Chunk, End, ReadBlob
from myyoutube.quietlog import QuietLog
from myyoutube.stream import RequestFailed

log = logging.getLogger(__name__)
quiet = QuietLog(log)

# How long the first chunk from a replica may take before another replica is asked as
# well. A healthy datanode answers a range from its page cache or disk in milliseconds
# (tens under load); half a second is far out in that tail, and short for a viewer.
FIRST_BYTE_HEDGE_S = 0.5

# What counts as "this replica failed" rather than a bug: it may be dead, hung, lying.
REPLICA_FAILURES = (OSError, TimeoutError, RequestFailed, protocol.ProtocolError)

Consumer = Callable[[bytes], Awaitable[None]]
FailureReport = Callable[[str, str], None]


class ReplicationFailed(Exception):
    """Too few replicas are left to store (or read) the blob safely."""

    def __init__(self, message: str, code: str = "unavailable") -> None:
        super().__init__(message)
        self.code = code


class ConsumerGone(Exception):
    """Whoever the bytes were relayed to stopped taking them."""


async def relay_blob(
    blob_id: str,
    offset: int,
    length: int,
    nodes: list[str],
    pools: DatanodePools,
    consume: Consumer,
    on_failure: FailureReport,
    stall_s: float,
) -> None:
    """Feed bytes [offset, offset+length) of a blob to `consume`, from `nodes` in order of
    preference; ReplicationFailed if every replica failed, ConsumerGone if the consumer did."""
    read = ReplicaRead(blob_id, offset, length, nodes, pools, on_failure, stall_s)
    try:
        while data := await read.next_chunk():
            try:
                await consume(data)
            except Exception as exc:
                raise ConsumerGone(str(exc)) from exc
    finally:
        read.close()


class ReplicaRead:
    """The bytes [offset, offset+length) of a blob, taken chunk by chunk with
    `next_chunk()` (b'' at the end), from `nodes` in order of preference, failing over
    midway. The caller pulls, so it can hold the first chunk before it commits to
    anything (the web's status line), and a consumer that stops pulling stops the
    replica's reads through TCP's flow control. `close()` when done."""

    def __init__(
        self,
        blob_id: str,
        offset: int,
        length: int,
        nodes: list[str],
        pools: DatanodePools,
        on_failure: FailureReport,
        stall_s: float,
        grant: str = "",
    ) -> None:
        """`grant`: the master's permission to read this blob, for a reader that is not
        the master (read_grants.py); empty for the master itself."""
        if not nodes and length > 0:
            # "Try again shortly" would never come true: no running node is known to hold
            # it (a video restored from a backup after its copies were deleted, say).
            raise ReplicationFailed(
                "No running datanode holds a copy of this video; it can be read again only once "
                "one that holds it is back."
            )
        self.blob_id = blob_id
        self.offset = offset
        self.length = length
        self.sent = 0  # bytes handed out so far
        self._tried = len(nodes)
        self._untried = list(nodes)
        self._pools = pools
        self._on_failure = on_failure
        self._stall_s = stall_s
        self._grant = grant
        self._serving: tuple[str, Lease] | None = None  # the replica read now, and its lease

    async def next_chunk(self) -> bytes:
        """The next bytes, b'' once all arrived; ReplicationFailed if no replica is left."""
        while self.sent < self.length:
            if self._serving is None:
                data = await self._start()
            else:
                _, lease = self._serving
                try:
                    data = (await lease.connection.read_expected(Chunk, timeout=self._stall_s)).data
                except REPLICA_FAILURES as exc:
                    self._failed_midway(exception_text(exc))
                    continue
            if not data or len(data) > self.length - self.sent:
                self._failed_midway("RemoteProtocolError: datanode sent more bytes than asked for")
                continue
            self.sent += len(data)
            if self.sent == self.length:
                await self._finish()
            return data
        return b""

    async def _start(self) -> bytes:
        """Start reading the rest from the next replicas (hedged); their first chunk."""
        request = ReadBlob(
            blob_id=self.blob_id,
            offset=self.offset + self.sent,
            length=self.length - self.sent,
            grant=self._grant,
        )
        started = await self._first_answer(request)
        if started is None:
            raise ReplicationFailed(
                f"No copy of the video could be read from byte {request.offset} "
                f"({self._tried} tried); try again shortly."
            )
        node, lease, first = started
        self._serving = node, lease
        return first

    async def _first_answer(self, request: ReadBlob) -> tuple[str, Lease, bytes] | None:
        """Ask replicas not tried yet, hedging after FIRST_BYTE_HEDGE_S, until one
        delivers its first chunk: (node, its lease, the chunk); None if all failed.

        The first replica is asked in this task when a pooled link to it is idle: when it
        answers within the hedge delay, as a healthy one does, a read costs no task and
        no wait on several futures (this runs for every range a player asks). Only a late
        first answer moves to a task of its own, raced against the next replica. A
        replica with no idle link is raced from the start: opening one (connect and
        handshake) can hang for links.HANDSHAKE_TIMEOUT_S on a node cut off from us, and
        the hedge must overtake that too."""
        attempts: dict[asyncio.Task, str] = {}
        while self._untried and not attempts and self._pools[self._untried[0]].has_idle:
            node = self._untried.pop(0)
            try:
                lease, first = await self._pools[node].start(_asker(request))
            except REPLICA_FAILURES as exc:
                self._not_started(node, exc)
                continue
            if first is not None:
                return node, lease, first
            late = self._first_chunk(node, lease, self._stall_s - FIRST_BYTE_HEDGE_S)
            attempts[asyncio.create_task(late)] = node
        return await self._race(attempts, request)

    async def _race(
        self, attempts: dict[asyncio.Task, str], request: ReadBlob
    ) -> tuple[str, Lease, bytes] | None:
        """The hedged race: `attempts` under way, one more replica every
        FIRST_BYTE_HEDGE_S (or at once when none is left under way); the first to
        deliver wins."""
        hedge_due = True
        try:
            while self._untried or attempts:
                if self._untried and (hedge_due or not attempts):
                    node = self._untried.pop(0)
                    attempts[asyncio.create_task(self._open(node, request))] = node
                done, _ = await asyncio.wait(
                    attempts, timeout=FIRST_BYTE_HEDGE_S, return_when=asyncio.FIRST_COMPLETED
                )
                hedge_due = not done
                winner = None
                for task in done:
                    node = attempts.pop(task)
                    error = task.exception()
                    if error is not None:
                        self._not_started(node, error)
                    elif winner is None:
                        winner = (node, *task.result())
                    else:  # two answered at once: keep the first, let the other connection go
                        self._abandon(task, node)
                if winner is not None:
                    return winner
            return None
        finally:
            for task, node in attempts.items():
                self._abandon(task, node)

    def _abandon(self, task: asyncio.Task, node: str) -> None:
        """Drop an attempt the race no longer wants. One still under way lets its
        connection go when cancelled; one that delivered just as the race ended (the
        reader left at that moment) holds a lease that only we can give back."""
        if not task.done():
            task.cancel()
        elif not task.cancelled() and task.exception() is None:
            self._pools[node].release(task.result()[0])

    async def _open(self, node: str, request: ReadBlob) -> tuple[Lease, bytes]:
        """Ask one replica and wait up to stall_s for its first chunk (a hedge raced in a task)."""
        lease, first = await self._pools[node].start(_asker(request))
        if first is not None:
            return lease, first
        return await self._first_chunk(node, lease, self._stall_s - FIRST_BYTE_HEDGE_S)

    async def _first_chunk(self, node: str, lease: Lease, timeout: float) -> tuple[Lease, bytes]:
        """Go on waiting for a late first chunk; the lease is let go if it never comes."""
        try:
            return lease, (await lease.connection.read_expected(Chunk, timeout=max(timeout, 0.0))).data
        except BaseException:
            self._pools[node].release(lease)
            raise

    def _not_started(self, node: str, error: BaseException) -> None:
        quiet.warning("read of %s from %s did not start: %s", self.blob_id, node, exception_text(error))
        if isinstance(error, RequestFailed) and error.code == "forbidden":
            # The node refused our grant (it has not heard from a restarted master yet):
            # not a node failing, so not one to route other reads around.
            return
        self._on_failure(node, exception_text(error))

    async def _finish(self) -> None:
        """Every byte is in: read the replica's End, so its connection can be reused. A
        replica that fails now has delivered everything; it is only reported."""
        assert self._serving is not None, "bytes came from a replica being read"
        node, lease = self._serving
        try:
            await lease.connection.read_expected(End, timeout=self._stall_s)
            lease.done()
        except REPLICA_FAILURES as exc:
            self._on_failure(node, exception_text(exc))
        self.close()

    def _failed_midway(self, why: str) -> None:
        assert self._serving is not None, "only a replica being read fails midway"
        node, _ = self._serving
        self.close()  # the lease is not done: its connection is closed
        self._on_failure(node, why)
        quiet.warning(
            "read of %s from %s failed at byte %d: %s; failing over",
            self.blob_id,
            node,
            self.offset + self.sent,
            why,
        )

    def close(self) -> None:
        """Let the replica's connection go: back to its pool if the read ran to its end."""
        if self._serving is not None:
            node, lease = self._serving
            self._serving = None
            self._pools[node].release(lease)


def _asker(request: ReadBlob) -> Callable[[Lease], Awaitable[bytes | None]]:
    """Ask for the range and wait FIRST_BYTE_HEDGE_S for the first chunk: the chunk, or
    None if it is late (the request stays under way on the lease)."""

    async def attempt(lease: Lease) -> bytes | None:
        await lease.connection.write_frame(request)
        try:
            return (await lease.connection.read_expected(Chunk, timeout=FIRST_BYTE_HEDGE_S)).data
        except TimeoutError:
            return None  # a timed-out wait loses no bytes: the answer can still be read

    return attempt
