"""The master's end of a write pipeline: each uploaded byte leaves the master once, and a
chain that breaks mid-upload is re-formed over its survivors (HDFS pipeline recovery).

Theory of operation
-------------------
uploads.py writes a new blob through a `ChainWriter` (the default; `--writes fanout`
picks a `transfer.ReplicaFanout` instead); both have the same interface. The writer
opens a chain over the placed nodes (chain.open_chain, over the master's pooled
connections), sends every chunk once to the chain's first node (the head), and at End
reads the chain's answer: the nodes that stored the blob with the size and sha256 the
master computed. It commits if at least min_replicas did.

Recovery (chain_acks.py has the rules, without I/O). The head acknowledges per chunk
the offset that the whole chain holds; the writer keeps every byte past it in a replay
buffer of at most REPLAY_BUFFER_BYTES, and waits for acks when that is full (the flow
control). When the head fails (its link breaks, it answers nonsense, or it stays silent
for the stall timeout) or a hop reports a node lost that had nodes behind it, the writer
drops the failed node, breaks the chain, and opens a new one over the survivors with
`ChainResumeBlob` at the head's last ack: each survivor reopens the partial copy it
parked (datanode/pipeline.py), drops what lies past that offset, and the writer resends
the rest from its buffer and goes on. Each recovery drops at least one node, so a chain
of N nodes recovers at most N - 1 times; it fails once fewer than min_replicas are left,
as fan-out does. Why the master and not the nodes repairs: only the master has every
byte not yet acknowledged, and only it knows the placement (as in HDFS, where the
client re-forms the pipeline).

End goes down only once every byte is acknowledged; a head lost after that is recovered
the same way at offset = size (a survivor that sealed its copy meanwhile checks End
against it). Nodes behind the head that fail after End are reported in the chain's
answer; when fewer than min_replicas but at least one node stored the blob, the writer
tops it up before the commit (`top_up`): it copies the blob from a node that has it to
freshly placed ones, through the master as a repair does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from myyoutube import chain, protocol, replica_reads
from myyoutube.chain_acks import ReplayBuffer, after_loss, survivors
from myyoutube.formatting import counted, exception_text
from myyoutube.master import repair
from myyoutube.master.transfer import (
    DRAIN_LIMIT_S,
    ReplicationFailed,
    StalledReplica,
    delete_blob,
    needed,
    require_replicas,
)
from myyoutube.pool import DatanodePools
from myyoutube.protocol import End

if TYPE_CHECKING:
    from myyoutube.master.server import Master

log = logging.getLogger(__name__)


# (blob id, nodes that have it, size, sha256, copies wanted, nodes not to use) -> the
# nodes that now have a copy too.
TopUp = Callable[[str, list[str], int, str, int, frozenset[str]], Awaitable[list[str]]]


class ChainWriter:
    """Writes one blob down a chain of datanodes (ReplicaFanout's interface)."""

    def __init__(
        self,
        blob_id: str,
        min_replicas: int,
        pools: DatanodePools,
        stall_s: float,
        top_up: TopUp | None = None,
    ) -> None:
        self.blob_id = blob_id
        self.top_up = top_up
        self.min_replicas = min_replicas
        self.pools = pools
        self.stall_s = stall_s
        self.link: chain.ChainLink | None = None
        self.chain: list[str] = []  # the nodes in the chain, as far as the master knows
        self.offered: set[str] = set()
        self.failed: dict[str, str] = {}  # node -> why it is not in the chain (any more)
        self.replay = ReplayBuffer()
        self._heard = asyncio.Event()  # set by every ack from the head
        self._broken: str | None = None  # why the chain must be re-formed before going on

    @property
    def replicas(self) -> dict[str, None]:
        return dict.fromkeys(self.chain)

    @property
    def tried(self) -> frozenset[str]:
        return frozenset(self.offered)

    async def open(self, nodes: list[str]) -> None:
        """Form the chain over `nodes` (in order). A chain forms once: nodes offered
        after that (blob_writers.open_replicas asking for more) are not used, and open_replicas
        forms a new chain with them instead (blob_writers._chain_came_short)."""
        self.offered.update(nodes)
        if self.link is None and not self.chain:
            await self._form(nodes, None)

    async def _form(self, nodes: list[str], resume_at: int | None) -> None:
        self.link, failed = await chain.open_chain(
            self.blob_id, nodes, chain.pooled_opener(self.pools, self.stall_s * 2), self._on_ack, resume_at
        )
        self._note(failed)
        self.chain = list(self.link.chain) if self.link else []
        self._broken = None
        if self.link is not None:
            log.info("blob %s goes down the chain %s", self.blob_id, " -> ".join(self.chain))

    def _note(self, failed: dict[str, str]) -> None:
        for node, why in failed.items():
            self.failed[node] = why
            log.warning("chain write of blob %s: %s dropped: %s", self.blob_id, node, why)

    def _on_ack(self, offset: int, lost: list[str]) -> None:
        """The head's ack (peer input: ReplayBuffer checks it; a bad one fails the head)."""
        self.replay.acknowledge(offset)
        news = [node for node in lost if node in self.chain]
        if news:
            self._note(dict.fromkeys(news, "lost in the chain, as the node before it reported"))
            self.chain, cut_off = after_loss(self.chain, news)
            if cut_off and self._broken is None:
                self._broken = f"{', '.join(news)} lost mid-chain"
        self._heard.set()

    def _head_failed(self, why: BaseException) -> None:
        link = self.link
        if link is None:
            return
        self._note({link.node: exception_text(why)})
        self.chain = survivors(self.chain, {link.node})
        self._broken = f"the head {link.node} failed"

    def check_enough(self) -> None:
        require_replicas(self.blob_id, len(self.replicas), self.min_replicas, self.failed)

    def _head(self) -> chain.ChainLink:
        """The link to the chain's head; ReplicationFailed if no chain could form."""
        if self.link is None:
            raise ReplicationFailed("No datanode could keep storing the video; try again shortly.")
        return self.link

    async def write(self, data: bytes) -> None:
        self.replay.append(data)
        if self.link is not None and self._broken is None:
            try:
                self.link.queue_chunk(data)
            except chain.LINK_FAILURES as exc:
                self._head_failed(exc)
        if self._broken is not None or self.replay.full:
            # Down to half the buffer: the uploader's next chunks then go on without a
            # wait per ack (one wake-up for several acks).
            await self._settle(lambda: self.replay.unacked <= self.replay.limit_bytes // 2)

    async def _settle(self, done: Callable[[], bool]) -> None:
        """Wait until `done()` (acks arrive), re-forming the chain whenever it breaks."""
        while True:
            if self._broken is not None:
                await self._recover()
            self.check_enough()
            try:
                await self._wait_for(done)
            except chain.LINK_FAILURES as exc:
                self._head_failed(exc)
                continue
            if self._broken is None:
                return

    async def _wait_for(self, done: Callable[[], bool]) -> None:
        """Until `done()` or the chain breaks; StalledReplica if the head is silent for the
        stall timeout, or talks but acknowledges nothing for DRAIN_LIMIT_S."""
        link = self.link
        if link is None:
            return
        acked, progress_at = self.replay.acked, time.monotonic()
        while not done() and self._broken is None:
            if link.answer.done():
                link.answer.result()  # an Error, a closed link or a bad ack raises here
                raise protocol.RemoteProtocolError("the chain answered before the blob ended")
            self._heard.clear()
            try:
                await asyncio.wait_for(self._heard.wait(), self.stall_s / 2)
            except TimeoutError:
                pass
            now = time.monotonic()
            if self.replay.acked > acked:
                acked, progress_at = self.replay.acked, now
            silent_s = now - link.connection.last_heard
            if silent_s > self.stall_s or now - progress_at > DRAIN_LIMIT_S:
                raise StalledReplica(f"acknowledged nothing and was silent for {silent_s:.1f}s")

    async def _recover(self) -> None:
        """Re-form the chain over the survivors at the head's last ack and resend the
        rest; each pass drops at least one node, so this ends."""
        while self._broken is not None:
            if self.link is not None:
                self.link.close(clean=False)  # the old head parks its copy, if it lives
                self.link = None
            self.check_enough()
            offset = self.replay.acked
            log.warning(
                "chain write of blob %s broke (%s): resuming %s at byte %d",
                self.blob_id,
                self._broken,
                " -> ".join(self.chain),
                offset,
            )
            await self._form(list(self.chain), offset)
            self.check_enough()
            link = self._head()
            try:
                for piece in self.replay.since(offset):
                    link.queue_chunk(piece)
            except chain.LINK_FAILURES as exc:
                self._head_failed(exc)

    async def finish(self, size: int, sha256: str) -> list[str]:
        """End the blob; the nodes that stored exactly `size` bytes with this sha256."""
        while True:
            # Every byte acknowledged first: a head lost after End is resumed at the end.
            await self._settle(lambda: self.replay.unacked == 0)
            link = self._head()
            try:
                link.queue(protocol.encode(End(size=size, sha256=sha256)))
                stored, failed, their_size, their_sha256 = await link.result(self.stall_s)
                break
            except chain.LINK_FAILURES as exc:
                self._head_failed(exc)  # each pass drops a node: check_enough ends it
        self._note(failed)
        link.close(clean=True)
        self.link = None
        if (their_size, their_sha256) != (size, sha256):
            self._note(dict.fromkeys(stored, f"stored {their_size} bytes, sha256 {their_sha256}"))
            stored = []
        if stored and len(stored) < self.min_replicas and self.top_up is not None:
            exclude = frozenset(self.offered) | frozenset(stored)
            stored += await self.top_up(
                self.blob_id, stored, size, sha256, self.min_replicas - len(stored), exclude
            )
        if len(stored) < self.min_replicas:
            log.warning("blob %s: stored on %s only (%s)", self.blob_id, stored, self.failed)
            raise ReplicationFailed(
                f"Only {counted(len(stored), 'datanode')} stored the video and "
                f"{needed(self.min_replicas)}; try again shortly."
            )
        return stored

    def close(self) -> None:
        if self.link is not None:
            self.link.close(clean=False)
            self.link = None

    async def abort(self) -> None:
        """Give up: drop the chain and delete whatever was stored (best effort). The
        caller has abandoned the blob in the index first, so the nodes dropped as failed
        are not asked: a copy they hold goes when they next report it (a parked one
        sooner, PARKED_KEEP_S), and asking a frozen one would hold the abort for its
        whole timeout."""
        self.close()
        nodes = self.offered - self.failed.keys()
        await asyncio.gather(
            *(delete_blob(self.pools, node, self.blob_id) for node in nodes), return_exceptions=True
        )


async def copy_to_more(
    master: Master,
    blob_id: str,
    sources: list[str],
    size: int,
    sha256: str,
    count: int,
    exclude: frozenset[str],
) -> list[str]:
    """A TopUp: copy the blob from `sources` to `count` freshly placed nodes, one at a time
    (relayed through the master, as repairs are); the nodes that stored it."""
    copied: list[str] = []
    for target in master.state.place(count, time.time(), master.rng, exclude=exclude):
        try:
            # No sidecar: the blob is being uploaded, its record does not exist yet.
            copied += await repair.copy_blob(master, blob_id, sources, target, size, sha256, None)
        except (ReplicationFailed, replica_reads.ConsumerGone) as exc:
            log.warning("topping up blob %s on %s failed: %s", blob_id, target, exc)
            continue
        log.info("blob %s copied to %s to make up for its broken chain", blob_id, target)
    return copied
