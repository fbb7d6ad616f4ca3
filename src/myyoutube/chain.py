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
* Flow: each chunk is queued on the link and the sender then waits until the link's
  transport drained, so the slowest node paces the chain and the bytes in flight stay
  bounded by the socket buffers of each hop. As in fan-out, a node keeps sending
  keepalives upstream while it works, and the sender keeps the link alive while it waits
  for its own upstream. A next hop that does not drain and is silent for `stall_s`
  (frozen, partitioned) is dropped with the chain behind it; the sender goes on with
  its own copy.
* Acks flow back at the end: End goes down the chain; each node fsyncs, checks size
  and sha256 and answers upstream with the nodes that stored the blob (itself plus what
  its next hop answered) and those that failed, with why. A broken link loses the
  nodes behind it, not those before it; the master (master/pipeline.py) commits if at
  least min_replicas stored the blob, copying it to more nodes first when fewer but at
  least one did. There is no HDFS-style pipeline recovery that would re-sync the
  survivors and resend from the last acknowledged byte (see the README).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from myyoutube import protocol
from myyoutube.master import transfer
from myyoutube.protocol import ChainWriteBlob, Ok
from myyoutube.stream import FrameStream, Keepalives, RequestFailed

# What counts as "this hop failed" rather than a bug: it may be dead, hung or lying.
LINK_FAILURES = (OSError, TimeoutError, RequestFailed, protocol.ProtocolError)


# A hop's final answer: (stored, failed with why, size, sha256) for the chain from it on.
HopResult = tuple[list[str], dict[str, str], int, str]


# Opens a connection to a node, sends it the request and waits for its Ok (keepalives
# allowed meanwhile); returns the connection, the Ok's info and how to let it go later
# (called with True when the blob ended cleanly on it).
Opener = Callable[[str, ChainWriteBlob], Awaitable[tuple[FrameStream, dict, Callable[[bool], None]]]]


@dataclass
class ChainLink:
    """A sender's link to its next hop, and what that hop said about the chain behind it."""

    node: str
    connection: FrameStream
    chain: list[str]  # the next hop and every node behind it that accepted
    release: Callable[[bool], None]
    answer: asyncio.Task = field(init=False)
    ticker: Keepalives = field(init=False)

    def __post_init__(self) -> None:
        # The hop's only answer from now on is the final Ok (or Error); keepalives in
        # between are consumed by read_frame and only refresh connection.last_heard.
        self.answer = asyncio.create_task(self.connection.read_expected(Ok, timeout=None))
        self.ticker = self.connection.start_keepalive()

    async def send(self, frame: bytes, stall_s: float) -> None:
        """Queue a frame (Chunk or End) and wait until the hop took it."""
        self.connection.queue_encoded(frame)
        await self.drained(stall_s)

    def queue(self, frame: bytes) -> None:
        self.connection.queue_encoded(frame)

    async def drained(self, stall_s: float) -> None:
        """Wait until the hop took what was queued; StalledReplica if it fell silent."""
        await transfer.wait_drained(self.connection, self.answer, stall_s)

    async def result(self, stall_s: float) -> HopResult:
        """After End: (stored, failed, size, sha256) as the hop answered for the chain
        behind it (it fsyncs first, sending keepalives meanwhile)."""
        return parse_result((await transfer.wait_answer(self.connection, self.answer, stall_s)).info)

    def lost(self, why: BaseException) -> dict[str, str]:
        """Every node this link reached, as failed because of `why`."""
        reason = f"{type(why).__name__}: {why}"
        return {self.node: reason, **{node: f"behind {self.node}, which failed" for node in self.chain[1:]}}

    def close(self, clean: bool) -> None:
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
    blob_id: str, nodes: list[str], opener: Opener
) -> tuple[ChainLink | None, dict[str, str]]:
    """Open a link to the first of `nodes` that accepts, asking it to pass the blob on to
    the nodes after it; returns the link (None if nobody accepted) and who failed, why."""
    failed: dict[str, str] = {}
    for position, node in enumerate(nodes):
        request = ChainWriteBlob(blob_id=blob_id, downstream=list(nodes[position + 1 :]))
        try:
            connection, info, release = await opener(node, request)
        except LINK_FAILURES as exc:
            failed[node] = f"{type(exc).__name__}: {exc}"
            continue
        try:
            chain, failed_behind = parse_opening(info)
        except protocol.ProtocolError as exc:
            release(False)
            failed[node] = str(exc)
            continue
        failed.update(failed_behind)
        return ChainLink(node, connection, chain, release), failed
    return None, failed
