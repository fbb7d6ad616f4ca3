"""The master's end of a write pipeline: each uploaded byte leaves the master once.

Theory of operation
-------------------
With `--write-pipeline`, uploads.py writes a new blob through a `ChainWriter` instead of
a `transfer.ReplicaFanout`; both have the same interface. The writer opens a chain over
the placed nodes (chain.open_chain, over the master's pooled connections), sends every
chunk once to the chain's first node, and at End reads the chain's answer: the nodes
that stored the blob with the size and sha256 the master computed. It commits if at
least min_replicas did.

A node lost in the middle of the chain loses the copies behind it too. When fewer than
min_replicas but at least one node stored the blob, the writer tops it up before the
commit (`top_up`): it copies the blob from a node that has it to freshly placed ones,
through the master as a repair does, so losing the second of three nodes mid-upload
still commits on two (that upload then costs the master one more egress per byte).
Losing the first node loses the bytes the master has sent so far: nothing holds the
whole blob, and the upload fails where fan-out would have committed on the other two.
Real pipeline recovery (re-syncing the surviving nodes and resending from the last
acknowledged byte, as HDFS does) needs datanodes to reopen a partial blob at an offset,
which is not there yet.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from myyoutube import chain, protocol
from myyoutube.master import relay, repair
from myyoutube.master.transfer import (
    DatanodePools,
    ReplicationFailed,
    delete_blob,
    require_replicas,
)
from myyoutube.pool import Lease
from myyoutube.protocol import ChainWriteBlob, Chunk, End, Ok

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
        self.offered: set[str] = set()
        self.failed: dict[str, str] = {}  # node -> why it is not in the chain (any more)

    @property
    def replicas(self) -> dict[str, None]:
        """The nodes in the chain, as far as the master knows (it learns of losses behind
        the first node only at the end)."""
        return dict.fromkeys(self.link.chain) if self.link else {}

    @property
    def tried(self) -> frozenset[str]:
        return frozenset(self.offered)

    def _opener(self) -> chain.Opener:
        async def open_link(node: str, request: ChainWriteBlob):
            async def attempt(lease: Lease) -> dict:
                await lease.connection.write_frame(request)
                # The whole chain opens before this Ok; the node sends keepalives meanwhile.
                return (await lease.connection.read_expected(Ok, timeout=self.stall_s * 2)).info

            pool = self.pools[node]
            lease, info = await pool.start(attempt)

            def release(clean: bool) -> None:
                if clean:
                    lease.done()
                pool.release(lease)

            return lease.connection, info, release

        return open_link

    async def open(self, nodes: list[str]) -> None:
        """Form the chain over `nodes` (in order). A chain forms once: nodes offered
        after that (uploads.open_replicas asking for more) are not used."""
        self.offered.update(nodes)
        if self.link is not None:
            return
        self.link, failed = await chain.open_chain(self.blob_id, nodes, self._opener())
        self._note(failed)
        if self.link is not None:
            log.info("blob %s goes down the chain %s", self.blob_id, " -> ".join(self.link.chain))

    def _note(self, failed: dict[str, str]) -> None:
        for node, why in failed.items():
            self.failed[node] = why
            log.warning("chain write of blob %s: %s dropped: %s", self.blob_id, node, why)

    def check_enough(self) -> None:
        require_replicas(self.blob_id, len(self.replicas), self.min_replicas, self.failed)

    def _lost(self, link: chain.ChainLink, why: BaseException) -> None:
        self._note(link.lost(why))
        link.close(clean=False)
        self.link = None
        self.check_enough()

    async def write(self, data: bytes) -> None:
        link = self.link
        if link is None:
            self.check_enough()
            return
        try:
            await link.send(protocol.encode(Chunk(data)), self.stall_s)
        except chain.LINK_FAILURES as exc:
            self._lost(link, exc)

    async def finish(self, size: int, sha256: str) -> list[str]:
        """End the blob; the nodes that stored exactly `size` bytes with this sha256."""
        link = self.link
        if link is None:
            self.check_enough()
            return []
        try:
            await link.send(protocol.encode(End(size=size, sha256=sha256)), self.stall_s)
            stored, failed, their_size, their_sha256 = await link.result(self.stall_s)
        except chain.LINK_FAILURES as exc:
            self._lost(link, exc)
            return []
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
                f"Only {len(stored)} datanodes stored the video and {self.min_replicas} are "
                "needed; try again shortly."
            )
        return stored

    def close(self) -> None:
        if self.link is not None:
            self.link.close(clean=False)
            self.link = None

    async def abort(self) -> None:
        """Give up: drop the chain and delete whatever was stored (best effort)."""
        self.close()
        await asyncio.gather(
            *(delete_blob(self.pools, node, self.blob_id) for node in self.offered), return_exceptions=True
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
        except (ReplicationFailed, relay.ConsumerGone) as exc:
            log.warning("topping up blob %s on %s failed: %s", blob_id, target, exc)
            continue
        log.info("blob %s copied to %s to make up for its broken chain", blob_id, target)
    return copied
