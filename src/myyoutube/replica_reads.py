"""Reading a byte range of a blob from its replicas: hedged first byte, failover midway.

Theory of operation
-------------------
`relay_blob` hands the bytes [offset, offset+length) of a blob to a consumer (the web's
connection, or a repair copy) as one unbroken stream, whatever the replicas do.

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


class _PartialRead(Exception):
    def __init__(self, sent: int, why: str) -> None:
        super().__init__(why)
        self.sent = sent
        self.why = why


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


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
    if not nodes:
        # "Try again shortly" would never come true: no running node is known to hold it
        # (a video restored from a backup after its copies were deleted, say).
        raise ReplicationFailed(
            "No running datanode holds a copy of this video; it can be read again only once "
            "one that holds it is back."
        )
    sent = 0
    untried = list(nodes)
    while sent < length:
        started = await _first_answer(
            untried, blob_id, offset + sent, length - sent, pools, stall_s, on_failure
        )
        if started is None:
            raise ReplicationFailed(
                f"No copy of the video could be read from byte {offset + sent} "
                f"({len(nodes)} tried); try again shortly."
            )
        node, lease, first = started
        try:
            sent += await _pump(lease, first, length - sent, consume, stall_s)
        except _PartialRead as partial:
            sent += partial.sent
            on_failure(node, partial.why)
            quiet.warning(
                "read of %s from %s failed at byte %d: %s; failing over",
                blob_id,
                node,
                offset + sent,
                partial.why,
            )
        finally:
            pools[node].release(lease)


async def _first_answer(
    untried: list[str],
    blob_id: str,
    offset: int,
    length: int,
    pools: DatanodePools,
    stall_s: float,
    on_failure: FailureReport,
) -> tuple[str, Lease, bytes] | None:
    """Ask replicas from `untried` (consuming it), hedging after FIRST_BYTE_HEDGE_S, until
    one delivers its first chunk: (node, its lease, the chunk); None if all failed.

    The first replica is asked in this task: when it answers within the hedge delay, as
    a healthy one does, a read costs no task and no wait on several futures (this runs
    for every range a player asks). Only a late first answer moves to a task of its own,
    raced against the next replica."""
    attempts: dict[asyncio.Task, str] = {}
    while untried and not attempts:
        node = untried.pop(0)
        try:
            lease, first = await pools[node].start(_asker(blob_id, offset, length))
        except REPLICA_FAILURES as exc:
            _note_failure(on_failure, blob_id, node, exc)
            continue
        if first is not None:
            return node, lease, first
        attempts[asyncio.create_task(_first_chunk(pools, node, lease, stall_s - FIRST_BYTE_HEDGE_S))] = node
    return await _race(attempts, untried, blob_id, offset, length, pools, stall_s, on_failure)


async def _race(
    attempts: dict[asyncio.Task, str],
    untried: list[str],
    blob_id: str,
    offset: int,
    length: int,
    pools: DatanodePools,
    stall_s: float,
    on_failure: FailureReport,
) -> tuple[str, Lease, bytes] | None:
    """The hedged race: `attempts` under way, one more from `untried` every
    FIRST_BYTE_HEDGE_S (or at once when none is left under way); the first to deliver wins."""
    hedge_due = True
    try:
        while untried or attempts:
            if untried and (hedge_due or not attempts):
                node = untried.pop(0)
                attempts[asyncio.create_task(_open(pools, node, blob_id, offset, length, stall_s))] = node
            done, _ = await asyncio.wait(
                attempts, timeout=FIRST_BYTE_HEDGE_S, return_when=asyncio.FIRST_COMPLETED
            )
            hedge_due = not done
            winner = None
            for task in done:
                node = attempts.pop(task)
                error = task.exception()
                if error is not None:
                    _note_failure(on_failure, blob_id, node, error)
                elif winner is None:
                    winner = (node, *task.result())
                else:  # two answered at once: keep the first, let the other connection go
                    pools[node].release(task.result()[0])
            if winner is not None:
                return winner
        return None
    finally:
        for task in attempts:
            task.cancel()  # the losers: they let their connections go when cancelled


def _note_failure(on_failure: FailureReport, blob_id: str, node: str, error: BaseException) -> None:
    on_failure(node, _why(error))
    quiet.warning("read of %s from %s did not start: %s", blob_id, node, _why(error))


def _asker(blob_id: str, offset: int, length: int) -> Callable[[Lease], Awaitable[bytes | None]]:
    """Ask for the range and wait FIRST_BYTE_HEDGE_S for the first chunk: the chunk, or
    None if it is late (the request stays under way on the lease)."""

    async def attempt(lease: Lease) -> bytes | None:
        await lease.connection.write_frame(ReadBlob(blob_id=blob_id, offset=offset, length=length))
        try:
            return (await lease.connection.read_expected(Chunk, timeout=FIRST_BYTE_HEDGE_S)).data
        except TimeoutError:
            return None  # a timed-out wait loses no bytes: the answer can still be read

    return attempt


async def _first_chunk(pools: DatanodePools, node: str, lease: Lease, timeout: float) -> tuple[Lease, bytes]:
    """Go on waiting for a late first chunk; the lease is let go if it never comes."""
    try:
        return lease, (await lease.connection.read_expected(Chunk, timeout=max(timeout, 0.0))).data
    except BaseException:
        pools[node].release(lease)
        raise


async def _open(
    pools: DatanodePools, node: str, blob_id: str, offset: int, length: int, stall_s: float
) -> tuple[Lease, bytes]:
    """Ask one replica and wait up to `stall_s` for its first chunk (a hedge raced in a task)."""
    lease, first = await pools[node].start(_asker(blob_id, offset, length))
    if first is not None:
        return lease, first
    return await _first_chunk(pools, node, lease, stall_s - FIRST_BYTE_HEDGE_S)


async def _pump(lease: Lease, first: bytes, length: int, consume: Consumer, stall_s: float) -> int:
    """Relay `length` bytes starting with `first`, then read End; the count relayed.
    Raises _PartialRead (with what was relayed) if the replica fails midway."""
    sent = 0
    data = first
    try:
        while True:
            if not data or len(data) > length - sent:
                raise protocol.RemoteProtocolError("datanode sent more bytes than asked for")
            try:
                await consume(data)
            except Exception as exc:
                raise ConsumerGone(str(exc)) from exc
            sent += len(data)
            if sent == length:
                break
            data = (await lease.connection.read_expected(Chunk, timeout=stall_s)).data
        await lease.connection.read_expected(End, timeout=stall_s)
    except REPLICA_FAILURES as exc:
        raise _PartialRead(sent, _why(exc)) from exc
    lease.done()
    return sent
