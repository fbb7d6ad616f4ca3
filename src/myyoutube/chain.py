"""Write pipelines: a blob passed along a chain of datanodes, each byte crossing each link once.

Theory of operation
-------------------
With fan-out (master/transfer.py) the master sends every uploaded byte to each replica:
its egress is the replication factor times the upload. In a pipeline (HDFS, GFS) it sends
each byte once, to the first datanode of a chain, which stores it and passes it on to
the next, and so on: `ChainWriteBlob(blob_id, downstream=[rest of the chain])`.

Both the master and every datanode but the last hold a `ChainLink` to their next hop;
this module is that shared end.

* Opening (`open_chain`): the first of the offered nodes that accepts becomes the next
  hop and is asked to pass the blob on to the rest; one that refuses or cannot be
  reached is recorded as failed and the next is tried, so the chain forms from whoever
  is up. The next hop's Ok names the chain from there on and what failed behind it.
* Flow: each chunk is queued on the link. A datanode then waits until the link's
  transport drained, so the slowest node paces the chain and the bytes in flight stay
  bounded by the socket buffers of each hop; the master instead bounds what it has in
  flight by its replay buffer (acks, below). As in fan-out, a node keeps sending
  keepalives upstream while it works, and the sender keeps the link alive while it waits
  for its own upstream. A next hop that does not drain and is silent for `stall_s`
  (frozen, partitioned) is dropped with the chain behind it; the sender goes on with
  its own copy.
* Acks flow back per chunk (`ChainAck`, chain_acks.AckState): each node acknowledges
  the offset it and every node behind it have written, and names nodes lost behind it.
  The sender's `on_ack` hears them while the blob flows; that is what lets the master
  keep only a bounded replay buffer and resume a broken chain (master/pipeline.py).
* At End, each node fsyncs, checks size and sha256 and answers upstream with the nodes
  that stored the blob (itself plus what its next hop answered) and those that failed,
  with why. The master commits if at least min_replicas stored the blob, copying it to
  more nodes first when fewer but at least one did.
* Recovery: a chain re-formed after a failure opens with `ChainResumeBlob` at an
  offset instead of `ChainWriteBlob` (`open_chain(..., resume_at=N)`); everything else is
  the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from myyoutube import protocol
from myyoutube.formatting import exception_text
from myyoutube.master import transfer
from myyoutube.pool import DatanodePools, Lease
from myyoutube.protocol import ChainAck, ChainResumeBlob, ChainWriteBlob, Ok
from myyoutube.stream import FrameStream, Keepalives, RequestFailed

# What counts as "this hop failed" rather than a bug: it may be dead, hung or lying.
LINK_FAILURES = (OSError, TimeoutError, RequestFailed, protocol.ProtocolError)


# A hop's final answer: (stored, failed with why, size, sha256) for the chain from it on.
HopResult = tuple[list[str], dict[str, str], int, str]


# Opens a connection to a node, sends it the request and waits for its Ok (keepalives
# allowed meanwhile); returns the connection, the Ok's info and how to let it go later
# (called with True when the blob ended cleanly on it).
Opener = Callable[
    [str, ChainWriteBlob | ChainResumeBlob], Awaitable[tuple[FrameStream, dict, Callable[[bool], None]]]
]


def pooled_opener(pools: DatanodePools, answer_timeout_s: float) -> Opener:
    """An Opener over `pools`, the master's and every datanode's: a link reuses an idle
    connection to its node and gives it back once the blob ended cleanly on it, so
    uploads cost no new connection (nor a socket left in TIME_WAIT) per hop and blob. A
    link that failed or was abandoned midway closes its connection instead: frames of the
    old blob may still be on their way. The Ok (sent once the whole chain behind the node
    has opened, with keepalives meanwhile) must come within `answer_timeout_s`."""

    async def open_link(node: str, request: ChainWriteBlob | ChainResumeBlob):
        async def attempt(lease: Lease) -> dict:
            await lease.connection.write_frame(request)
            return (await lease.connection.read_expected(Ok, timeout=answer_timeout_s)).info

        pool = pools[node]
        lease, info = await pool.start(attempt)

        def release(clean: bool) -> None:
            if clean:
                lease.done()
            pool.release(lease)

        return lease.connection, info, release

    return open_link


# Hears a next hop's ChainAck: (offset, nodes lost behind it). It may raise
# RemoteProtocolError for an ack that cannot be true, which fails the link.
AckListener = Callable[[int, list[str]], None]


@dataclass
class ChainLink:
    """A sender's link to its next hop, and what that hop said about the chain behind it."""

    node: str
    connection: FrameStream
    chain: list[str]  # the next hop and every node behind it that accepted
    release: Callable[[bool], None]
    on_ack: AckListener | None = None
    answer: asyncio.Task = field(init=False)
    ticker: Keepalives = field(init=False)
    dropped: bool = field(init=False, default=False)  # the sender gave up on this hop
    closed: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        # The hop's answer from now on is the final Ok (or Error), with acks before it;
        # keepalives in between are consumed by read_frame and only refresh last_heard.
        self.answer = asyncio.create_task(self._read_answer())
        self.ticker = self.connection.start_keepalive()

    async def _read_answer(self) -> Ok:
        while True:
            message = await self.connection.read_expected(Ok, ChainAck, timeout=None)
            if isinstance(message, Ok):
                return message
            if self.on_ack is not None:
                self.on_ack(message.offset, message.lost)

    def queue(self, frame: bytes) -> None:
        self.connection.queue_encoded(frame)

    def queue_chunk(self, data: bytes) -> None:
        self.connection.queue_chunk(data)

    async def drained(self, stall_s: float) -> None:
        """Wait until the hop took what was queued; StalledReplica if it fell silent."""
        await transfer.wait_drained(self.connection, self.answer, stall_s)

    async def result(self, stall_s: float) -> HopResult:
        """After End: (stored, failed, size, sha256) as the hop answered for the chain
        behind it (it fsyncs first, sending keepalives meanwhile)."""
        return parse_result((await transfer.wait_answer(self.connection, self.answer, stall_s)).info)

    def lost(self, why: BaseException) -> dict[str, str]:
        """Every node this link reached, as failed because of `why`."""
        reason = exception_text(why)
        return {self.node: reason, **{node: f"behind {self.node}, which failed" for node in self.chain[1:]}}

    def close(self, clean: bool) -> None:
        """Stop the link and give its connection back (or drop it); once, whoever asks."""
        if self.closed:
            return
        self.closed = True
        self.ticker.cancel()
        self.answer.cancel()
        self.release(clean)


def parse_result(info: dict) -> HopResult:
    """A hop's final answer, checked: it is peer input."""
    stored, failed = info.get("stored"), info.get("failed")
    size, sha256 = info.get("size"), info.get("sha256")
    if not (
        isinstance(stored, list)
        and all(isinstance(node, str) for node in stored)
        and isinstance(failed, dict)
        and all(isinstance(node, str) and isinstance(why, str) for node, why in failed.items())
        and type(size) is int
        and isinstance(sha256, str)
    ):
        raise protocol.RemoteProtocolError("malformed chain write answer")
    return stored, failed, size, sha256


def parse_opening(info: dict) -> tuple[list[str], dict[str, str]]:
    """A hop's Ok to ChainWriteBlob, checked: (the chain from it on, failed behind it)."""
    chain, failed = info.get("chain"), info.get("failed")
    if not (
        isinstance(chain, list)
        and chain
        and all(isinstance(node, str) for node in chain)
        and isinstance(failed, dict)
        and all(isinstance(node, str) and isinstance(why, str) for node, why in failed.items())
    ):
        raise protocol.RemoteProtocolError("malformed chain write opening")
    return chain, failed


async def open_chain(
    blob_id: str,
    nodes: list[str],
    opener: Opener,
    on_ack: AckListener | None = None,
    resume_at: int | None = None,
) -> tuple[ChainLink | None, dict[str, str]]:
    """Open a link to the first of `nodes` that accepts, asking it to pass the blob on to
    the nodes after it (a new blob, or with `resume_at` a resume of their partial copies
    at that offset); returns the link (None if nobody accepted) and who failed, why."""
    failed: dict[str, str] = {}
    for position, node in enumerate(nodes):
        downstream = list(nodes[position + 1 :])
        request: ChainWriteBlob | ChainResumeBlob = (
            ChainResumeBlob(blob_id=blob_id, offset=resume_at, downstream=downstream)
            if resume_at is not None
            else ChainWriteBlob(blob_id=blob_id, downstream=downstream)
        )
        try:
            connection, info, release = await opener(node, request)
        except LINK_FAILURES as exc:
            failed[node] = exception_text(exc)
            continue
        try:
            chain, failed_behind = parse_opening(info)
        except protocol.ProtocolError as exc:
            release(False)
            failed[node] = str(exc)
            continue
        failed.update(failed_behind)
        return ChainLink(node, connection, chain, release, on_ack), failed
    return None, failed
