"""A datanode's part in a write pipeline: store each chunk, pass it on, acknowledge it,
and keep a partial copy the master can resume (chain.py, chain_acks.py).

Theory of operation
-------------------
`ChainWriteBlob` comes from the master (first in the chain) or from the datanode before
us (links.py lets either role send it). We open the blob as an open blob (open_blobs.py,
the resumable uploads' format: bytes plus per-block CRCs, reopenable at an offset), open
the rest of the chain (chain.open_chain: the first of `downstream` that accepts, which
passes the blob on to the others), and answer Ok with the chain from us on. Then each
Chunk is queued to the next hop, written to our disk while it travels, and we wait for
the hop to take it before reading the next: the slowest node paces the chain. After each
chunk we acknowledge upstream (`ChainAck`) what we and the nodes behind us have written
(chain_acks.AckState). A next hop that fails or stalls is dropped with the nodes behind
it, reported upstream in our acks, and we go on storing our own copy. At End we pass End
on, fsync, seal and check our copy, wait for the hop's answer, and answer upstream with
who stored the blob and who failed.

Recovery. If our upstream goes away mid-blob (the node before us died, froze, or the
master broke the chain to re-form it), we do not delete our copy: we fsync what we
have, confirm it as the open blob's length and *park* it (`ChainWrites`, chain_writes.py)
for PARKED_KEEP_S. The master may then send `ChainResumeBlob(offset)`: it takes over a
write still running (its upstream connection is cut, so it parks at once), reopens the
copy at `offset` (bytes past it are dropped, as AppendBlob does) and goes on as above.
Only a blob parked or being written here can be resumed, so a peer cannot truncate a
resumable upload's open blob this way. A resume at the very end of a copy we already
sealed (the head was lost after End, before its answer reached the master) takes End
again and answers for the sealed copy if size and sha256 agree. A parked copy nobody resumes is deleted when its
time is up, or at once when we register with the master again (a master that restarted
does not resume the old process's chains; it retires their blobs). A marker file beside
each chain write's open blob (chain_writes.MARKER_SUFFIX) lets the node delete, at start-up, the
copies a previous run of it left: nothing can resume those. Our own disk failing is not parked: the copy is deleted and the error sent.

Keepalives go upstream for as long as we work (opening the chain, a slow disk, waiting
on the next hop's fsync), so the sender never mistakes a slow chain for a frozen node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from myyoutube import chain, protocol
from myyoutube.chain_acks import AckState
from myyoutube.datanode.open_blobs import Appender
from myyoutube.datanode.store import StoreError
from myyoutube.protocol import ChainAck, ChainResumeBlob, ChainWriteBlob, Chunk, End, Ok
from myyoutube.stream import DEFAULT_STALL_S, FrameStream

if TYPE_CHECKING:
    from myyoutube.datanode.server import DataNode

log = logging.getLogger(__name__)

# Silence after which the next hop is taken for frozen or partitioned. The master's
# --stall-timeout does not reach datanodes; the default is what it is unless set.
NEXT_HOP_STALL_S = DEFAULT_STALL_S

# The sender keeps the link alive with keepalives while it waits on its own upstream;
# this much silence means it is gone (as server.MASTER_SILENCE_S for plain writes).
UPSTREAM_SILENCE_S = 10.0


def _next_hops(node: DataNode) -> chain.Opener:
    """How this datanode opens links to its next hop: over its pool of connections to
    its peers (TLS with its datanode certificate)."""
    return chain.pooled_opener(node.peer_pools, NEXT_HOP_STALL_S * 2)


async def chain_write(
    node: DataNode, upstream: FrameStream, request: ChainWriteBlob | ChainResumeBlob
) -> None:
    """Take part in a chain write (or its resume) from `upstream`; see the module doc."""
    blob_id, writes = request.blob_id, node.chain_writes
    resume_at = request.offset if isinstance(request, ChainResumeBlob) else None
    if resume_at is None:
        if writes.knows(blob_id) or node.open_blobs.holds(blob_id) or node.store.local_path(blob_id):
            raise StoreError("exists", f"blob {blob_id} is already on this node")
    elif resume_at < 0 or not writes.take_over(blob_id):
        raise StoreError("not_found", f"no partial chain copy of blob {blob_id} here to resume")
    async with contextlib.AsyncExitStack() as held:
        async with upstream.keepalive():  # a write taken over may take a moment to park
            await held.enter_async_context(node.open_blobs.lock(blob_id))
        size, sha256, link, failed = await _take_part(node, upstream, request, resume_at)
    stored = [node.address]
    try:
        if link is not None:
            async with upstream.keepalive():  # the hops behind us fsync meanwhile
                result = await _result(link, failed)
            stored += _behind(size, sha256, failed, result)
            # Only a hop that answered is done with the connection. One taken for lost (silent
            # past the stall timeout) may still answer on it, and the next blob given that
            # connection by the pool would read the old blob's answer as its own.
            link.close(clean=result is not None)
            link = None
    finally:
        if link is not None:
            link.close(clean=False)
    await upstream.write_frame(Ok({"stored": stored, "failed": failed, "size": size, "sha256": sha256}))


async def _take_part(
    node: DataNode, upstream: FrameStream, request: ChainWriteBlob | ChainResumeBlob, resume_at: int | None
) -> tuple[int, str, chain.ChainLink | None, dict[str, str]]:
    """With the blob's lock held: store (or confirm) our copy as _store does."""
    blob_id, writes = request.blob_id, node.chain_writes
    sealed = writes.seal_of(blob_id)
    if resume_at is not None and sealed is not None and sealed[0] == resume_at:
        return await _confirm_sealed(node, upstream, request, *sealed)
    if resume_at is not None and not writes.is_parked(blob_id):
        raise StoreError("not_found", f"the chain write of blob {blob_id} here ended meanwhile")
    writes.running(blob_id, upstream)
    try:
        if resume_at is None:
            await writes.mark(blob_id)
        appender = await node.open_blobs.appender(blob_id, resume_at or 0)
    except BaseException:
        if resume_at is not None:
            writes.park(blob_id)  # too short for this resume; its timer still runs
        else:
            await writes.discard(blob_id)
        raise
    return await _store(node, upstream, request, appender, resume_at)


async def _store(
    node: DataNode,
    upstream: FrameStream,
    request: ChainWriteBlob | ChainResumeBlob,
    appender: Appender,
    resume_at: int | None,
) -> tuple[int, str, chain.ChainLink | None, dict[str, str]]:
    """Open the rest of the chain, answer Ok, relay and store until End, then make our
    copy durable and seal it: (size, sha256, link to the next hop or None, failed).
    Upstream lost midway: the copy is parked for a resume; our disk failing: deleted."""
    blob_id = request.blob_id
    acks = AckState(appender.length)
    link: chain.ChainLink | None = None
    failed: dict[str, str] = {}

    def heard(offset: int, lost: list[str]) -> None:
        acks.heard(offset, lost)
        _acknowledge(upstream, acks)

    try:
        async with upstream.keepalive():
            link, failed = await chain.open_chain(
                blob_id, request.downstream, _next_hops(node), heard, resume_at
            )
            if link is not None:
                acks.linked(request.downstream)
                _watch(link, upstream, failed, acks)
            accepted = [node.address, *(link.chain if link else [])]
            await upstream.write_frame(Ok({"chain": accepted, "failed": failed}))
            end, link = await _relay(upstream, appender, link, failed, acks)
            if end.size != appender.length:
                raise StoreError("checksum", f"got {appender.length} bytes, sender says {end.size}")
            await appender.finish()
            size, sha256 = await node.open_blobs.seal_locked(blob_id, end.size)
    except StoreError:
        if link is not None:
            link.close(clean=False)
        await appender.abandon()
        await node.chain_writes.discard(blob_id)
        raise
    except BaseException:
        if link is not None:
            link.close(clean=False)  # the hops behind us park too: the master resumes them
        await _park(node, appender)
        raise
    node.chain_writes.sealed(blob_id, size, sha256)
    await node.chain_writes.unmark(blob_id)
    if sha256 != end.sha256:
        if link is not None:
            link.close(clean=False)
        await node.store.delete(blob_id)
        raise StoreError("checksum", "bytes arrived damaged: sha256 differs from the sender's")
    return size, sha256, link, failed


async def _confirm_sealed(
    node: DataNode, upstream: FrameStream, request: ChainWriteBlob | ChainResumeBlob, size: int, sha256: str
) -> tuple[int, str, chain.ChainLink | None, dict[str, str]]:
    """A resume at the end of a copy already sealed here (the head was lost after End):
    pass the resume on, take End again and check it against our copy; as _store."""
    link: chain.ChainLink | None = None
    try:
        async with upstream.keepalive():
            link, failed = await chain.open_chain(
                request.blob_id, request.downstream, _next_hops(node), None, size
            )
            accepted = [node.address, *(link.chain if link else [])]
            await upstream.write_frame(Ok({"chain": accepted, "failed": failed}))
            end = await upstream.read_expected(End, timeout=UPSTREAM_SILENCE_S)
            if link is not None:
                link = _pass_on(link, end, failed, AckState(size))
    except BaseException:
        if link is not None:
            link.close(clean=False)
        raise
    if (end.size, end.sha256) != (size, sha256):
        if link is not None:
            link.close(clean=False)
        node.chain_writes.done(request.blob_id)
        await node.store.delete(request.blob_id)
        raise StoreError("checksum", f"stored {size} bytes, sha256 {sha256}; the sender says otherwise")
    return size, sha256, link, failed


async def _park(node: DataNode, appender: Appender) -> None:
    """Keep what we wrote, durably, for a resume (or delete it if even that fails)."""
    blob_id = appender.blob_id
    try:
        length = await appender.finish()
    except (OSError, StoreError) as exc:
        await appender.abandon()
        await node.chain_writes.discard(blob_id)
        log.warning("chain write of blob %s broke and its copy could not be kept: %s", blob_id, exc)
        return
    node.chain_writes.park(blob_id)
    log.info("chain write of blob %s broke upstream: %d bytes kept for a resume", blob_id, length)


def _acknowledge(upstream: FrameStream, acks: AckState) -> None:
    """Tell upstream what the chain from us on holds, if that changed."""
    news = acks.take()
    if news is None:
        return
    try:
        upstream.queue_encoded(protocol.encode(ChainAck(offset=news[0], lost=news[1])))
    except OSError:
        pass  # upstream is gone: the relay notices at its next read and parks


async def _relay(
    upstream: FrameStream,
    appender: Appender,
    link: chain.ChainLink | None,
    failed: dict[str, str],
    acks: AckState,
) -> tuple[End, chain.ChainLink | None]:
    """Store, pass on and acknowledge chunks until End (passed on too); returns End and
    the link, None if the next hop was dropped on the way."""
    while True:
        message = await upstream.read_expected(Chunk, End, timeout=UPSTREAM_SILENCE_S)
        if link is not None and link.dropped:
            link = None  # it failed while we waited (_watch)
        if link is not None:
            link = _pass_on(link, message, failed, acks)
            if link is not None and isinstance(message, Chunk):
                acks.forward(len(message.data))
        if isinstance(message, End):
            return message, link
        await appender.write(message.data)  # while the chunk travels to the next hop
        acks.wrote(len(message.data))
        _acknowledge(upstream, acks)
        if link is not None:
            try:
                await link.drained(NEXT_HOP_STALL_S)
            except chain.LINK_FAILURES as exc:
                _drop(link, exc, failed, acks)
                link = None
                _acknowledge(upstream, acks)


def _pass_on(
    link: chain.ChainLink, message: Chunk | End, failed: dict[str, str], acks: AckState
) -> chain.ChainLink | None:
    try:
        if isinstance(message, Chunk):
            link.queue_chunk(message.data)  # no copy of the data into a new frame
        else:
            link.queue(protocol.encode(message))
    except chain.LINK_FAILURES as exc:
        _drop(link, exc, failed, acks)
        return None
    return link


def _watch(link: chain.ChainLink, upstream: FrameStream, failed: dict[str, str], acks: AckState) -> None:
    """Drop the next hop as soon as its connection fails, and say so upstream. Its failure
    would otherwise be seen only when the next chunk is passed on or drained, and once we
    have handed it every byte the sender holds back (End waits for every byte to be
    acknowledged; more chunks wait for room in the sender's replay buffer): the chain stood
    still until the master gave up on its head, a minute later (transfer.DRAIN_LIMIT_S)."""

    def answered(answer: asyncio.Task) -> None:
        why = None if answer.cancelled() else answer.exception()
        if why is None:
            return  # closed by us, or the final answer, which _result reads
        _drop(link, why, failed, acks)
        _acknowledge(upstream, acks)

    link.answer.add_done_callback(answered)


def _drop(link: chain.ChainLink, why: BaseException, failed: dict[str, str], acks: AckState) -> None:
    """Forget the next hop and the chain behind it, noting why (and in our acks); once."""
    if link.dropped:
        return
    link.dropped = True
    failed.update(link.lost(why))
    # Nodes still alive behind the hop (as far as its acks told us) are cut off.
    acks.dropped(link.node, cut_off=any(node not in acks.lost for node in link.chain[1:]))
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
