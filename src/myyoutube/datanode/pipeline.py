"""A datanode's part in a write pipeline: store each chunk and pass it on (chain.py).

Theory of operation
-------------------
`ChainWriteBlob` comes from the master (first in the chain) or from the datanode before
us (links.py lets either role send it). We open our writer, open the rest of the chain
(chain.open_chain: the first of `downstream` that accepts, which passes the blob on to
the others), and answer Ok with the chain from us on. Then each Chunk is queued to the
next hop, written to our disk while it travels, and we wait for the hop to take it
before reading the next: the slowest node paces the chain. A next hop that fails or
stalls is dropped with the nodes behind it and we go on storing our own copy. At End we
pass End on, fsync and check our copy, wait for the hop's answer, and answer upstream
with who stored the blob and who failed.

Keepalives go upstream for as long as we work (opening the chain, a slow disk, waiting
on the next hop's fsync), so the sender never mistakes a slow chain for a frozen node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from myyoutube import chain, links, protocol
from myyoutube.datanode.store import BlobWriter, StoreError
from myyoutube.protocol import ChainWriteBlob, Chunk, End, Ok
from myyoutube.stream import DEFAULT_STALL_S, FrameStream

if TYPE_CHECKING:
    from myyoutube.datanode.server import DataNode

# Silence after which the next hop is taken for frozen or partitioned. The master's
# --stall-timeout does not reach datanodes; the default is what it is unless set.
NEXT_HOP_STALL_S = DEFAULT_STALL_S

# The sender keeps the link alive with keepalives while it waits on its own upstream;
# this much silence means it is gone (as server.MASTER_SILENCE_S for plain writes).
UPSTREAM_SILENCE_S = 10.0


def opener(node: DataNode) -> chain.Opener:
    """How this datanode opens a link to the next hop: a connection of its own (TLS with
    its datanode certificate), closed when the blob ends."""

    async def open_link(address: str, request: ChainWriteBlob):
        host, _, port = address.rpartition(":")
        connection = await links.connect(host, int(port), node.tls, expect_role="datanode")
        try:
            await connection.write_frame(request)
            info = (await connection.read_expected(Ok, timeout=NEXT_HOP_STALL_S * 2)).info
        except BaseException:
            connection.abort()
            raise

        def release(clean: bool) -> None:
            connection.abort()  # one link per blob: nothing to keep it for

        return connection, info, release

    return open_link


async def chain_write(node: DataNode, upstream: FrameStream, request: ChainWriteBlob) -> None:
    writer = node.store.open_writer(request.blob_id)
    link: chain.ChainLink | None = None
    try:
        async with upstream.keepalive():
            try:
                link, failed = await chain.open_chain(request.blob_id, request.downstream, opener(node))
                accepted = [node.address, *(link.chain if link else [])]
                await upstream.write_frame(Ok({"chain": accepted, "failed": failed}))
                end, link = await _relay(upstream, writer, link, failed)
                if end.size != writer.size:
                    raise StoreError("checksum", f"got {writer.size} bytes, sender says {end.size}")
                size, sha256 = await writer.finish()
            except BaseException:
                await writer.abort()
                raise
            if sha256 != end.sha256:
                await node.store.delete(request.blob_id)
                raise StoreError("checksum", "bytes arrived damaged: sha256 differs from the sender's")
            stored = [node.address]
            if link is not None:
                stored += _behind(size, sha256, failed, await _result(link, failed))
                link.close(clean=True)
                link = None
    finally:
        if link is not None:
            link.close(clean=False)
    await upstream.write_frame(Ok({"stored": stored, "failed": failed, "size": size, "sha256": sha256}))


async def _relay(
    upstream: FrameStream, writer: BlobWriter, link: chain.ChainLink | None, failed: dict[str, str]
) -> tuple[End, chain.ChainLink | None]:
    """Store and pass on chunks until End (passed on too); returns End and the link, None
    if the next hop was dropped on the way."""
    while True:
        message = await upstream.read_expected(Chunk, End, timeout=UPSTREAM_SILENCE_S)
        if link is not None:
            link = _pass_on(link, protocol.encode(message), failed)
        if isinstance(message, End):
            return message, link
        await writer.write(message.data)  # while the chunk travels to the next hop
        if link is not None:
            try:
                await link.drained(NEXT_HOP_STALL_S)
            except chain.LINK_FAILURES as exc:
                _drop(link, exc, failed)
                link = None


def _pass_on(link: chain.ChainLink, frame: bytes, failed: dict[str, str]) -> chain.ChainLink | None:
    try:
        link.queue(frame)
    except chain.LINK_FAILURES as exc:
        _drop(link, exc, failed)
        return None
    return link


def _drop(link: chain.ChainLink, why: BaseException, failed: dict[str, str]) -> None:
    """Forget the next hop and the chain behind it, noting why."""
    failed.update(link.lost(why))
    link.close(clean=False)


async def _result(link: chain.ChainLink, failed: dict[str, str]) -> chain.HopResult | None:
    """The next hop's final answer, or None (noted in `failed`) if it failed meanwhile."""
    try:
        return await link.result(NEXT_HOP_STALL_S)
    except chain.LINK_FAILURES as exc:
        failed.update(link.lost(exc))
        return None


def _behind(size: int, sha256: str, failed: dict[str, str], result: chain.HopResult | None) -> list[str]:
    """The nodes behind us that stored exactly what we did."""
    if result is None:
        return []
    stored, failed_behind, their_size, their_sha256 = result
    failed.update(failed_behind)
    if (their_size, their_sha256) != (size, sha256):
        failed.update({n: f"stored {their_size} bytes, sha256 {their_sha256}" for n in stored})
        return []
    return stored
