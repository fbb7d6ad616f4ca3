"""A datanode: stores blobs for the master and serves their byte ranges.

Theory of operation
-------------------
Two kinds of connection meet a datanode:

* Its own **control connection** to the master (control.py). It sends `Register`,
  then a `Heartbeat` every interval carrying what changed on this disk since the last
  report the master acknowledged, and a full block report in chunks when one is due
  (start-up, every few hours, or when the master asks): state.py's `BlockReports` decides
  which. The master answers each frame with `Commands`: blobs to delete (deleted videos,
  failed uploads, surplus copies) and the last report it applied. If the master goes
  away the node reconnects by itself, with backoff, and goes on where it left off.
  The store records its own changes; `control.rescan_forever` re-reads the folder now and then
  for the changes nobody told it about (a file deleted by hand, a lost disk), and removes
  open blobs no upload holds any more (untouched for twice the master's upload expiry:
  open_blobs.abandoned_after_s).
* **Data connections** from the master, one request each (`handle_request`): `WriteBlob`
  (then chunks, then End), `ReadBlob` (answered by chunks and End) and `DeleteBlob`;
  write pipelines' `ChainWriteBlob` and `ChainResumeBlob` (pipeline.py);
  for resumable uploads `AppendBlob` and `SealBlob` (open_blobs.py). A ReadBlob of a
  blob still open reads its confirmed bytes. When a master rebuilds its index,
  `ListSidecars` (answered by SidecarBatch frames). The web front end may send a
  `ReadBlob` too, with the master's grant for that blob (read_grants.py): it reads the
  videos it serves straight from us.

Each blob may carry a metadata sidecar (sidecars.py): given with `WriteBlob`, pushed by
the master with `PutSidecars` as a video is committed, and updated later through
`Commands.sidecars` when the video's record changes.

Every byte written is checksummed per block by the store and every byte read is verified
(see store.py); a corrupt block ends the read with Error('corrupt') and the blob is
reported in the next heartbeat so the master can repair it from a good replica.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from myyoutube import protocol, read_grants
from myyoutube.datanode import chain_writes, control, pipeline
from myyoutube.datanode.open_blobs import OpenBlobs
from myyoutube.datanode.scrubber import Scrubber
from myyoutube.datanode.state import BlockReports
from myyoutube.datanode.store import BlobStore, StoreError
from myyoutube.datanode.transcoder import WORKER_STALL_TIMEOUT_S, Transcoder
from myyoutube.pool import DatanodePools
from myyoutube.protocol import (
    AppendBlob,
    ChainResumeBlob,
    ChainWriteBlob,
    Chunk,
    DeleteBlob,
    End,
    Error,
    ListSidecars,
    Message,
    Ok,
    PutSidecars,
    ReadBlob,
    SealBlob,
    SidecarBatch,
    WriteBlob,
)
from myyoutube.stream import ConnectionClosed, FrameStream
from myyoutube.tls_contexts import Tls

log = logging.getLogger(__name__)

# Data connections served at once. A web front end holds one per stream it serves from
# this node (up to its --max-streams, 256 by default, all on one node when it holds the
# only copies), the master one per replica being written, relayed or repaired. 1024
# leaves room for several front ends at their limit and the master besides, while still
# bounding what a flood costs: an idle link holds ~16 KiB, a busy one at most its two
# 256 KiB socket buffers and a chunk (512 MiB at the bound, all busy at once). Past it
# a new link is refused, and a web reading from here fails over to the other holders.
MAX_CONNECTIONS = 1024

# Idle connections kept to each peer datanode, for the next hops of chain writes. Under 5
# uploaders at once (bench/mixed_load.py), 2 still closed ~4 connections a second (130
# sockets in TIME_WAIT after 30 s), 4 closed 5 in 30 s. Not more: every peer's idle
# connections count against the peer's MAX_CONNECTIONS, and with 4 a node could be holding
# 4 x 55 of them beside the master's pool (up to 32) in a cluster of 56 datanodes before
# reaching 256; in practice only peers that passed it several uploads at once lately hold
# any (an idle link goes when its pool is next used after pool.POOL_IDLE_S, 30 s, or when
# the server drops it after SERVER_IDLE_S, 120 s).
MAX_IDLE_PER_PEER = 4

# The master keeps a write's connection alive with keepalives while it waits on its
# uploader or on another replica; this much silence means it is gone.
MASTER_SILENCE_S = 10.0

# A viewer may pause playback, which stops the whole relay chain; a read stalled this long
# on the consuming side is abandoned (the player re-requests its range when it resumes).
CONSUMER_STALL_TIMEOUT_S = 120.0


# Transcode jobs work in this folder inside the node's own (sources fetched from other
# nodes, renditions being made); it is emptied at start-up.
TRANSCODE_DIR = "transcoding"

# Blob writes, reads and deletes come from the master only: not from the web (which runs
# FFmpeg on untrusted files) nor from other datanodes. The one exception: the web reads
# the videos it serves, each read with the master's grant for its blob (read_grants.py).
ALLOWED_ROLES: dict[type, frozenset[str]] = {
    kind: frozenset({"master"})
    for kind in (WriteBlob, DeleteBlob, AppendBlob, SealBlob, ListSidecars, PutSidecars)
}
ALLOWED_ROLES[ReadBlob] = frozenset({"master", "web"})
# A pipelined write (pipeline.py) and its resume reach us from the master or from the
# datanode before us.
ALLOWED_ROLES[ChainWriteBlob] = ALLOWED_ROLES[ChainResumeBlob] = frozenset({"master", "datanode"})


class DataNode:
    def __init__(
        self,
        store: BlobStore,
        master: tuple[str, int],
        address: str,
        node_id: str,
        tls: Tls | None,
        heartbeat_s: float,
        scrub_bytes_per_s: int,
        scrub_interval_s: float,
        transcode_slots: int = 0,
        transcode_stall_timeout_s: float = WORKER_STALL_TIMEOUT_S,
    ) -> None:
        self.store = store
        self.master = master
        self.address = address  # host:port the master and peers use to reach us
        self.node_id = node_id  # stable across restarts and address changes (identity.py)
        self.tls = tls
        # Connections to the next hops of chain writes, reused from one blob to the next.
        self.peer_pools = DatanodePools(tls, MAX_IDLE_PER_PEER)
        self.heartbeat_s = heartbeat_s
        # The master's --upload-expiry, once it has said it (control.py): 0 until then.
        self.upload_expiry_s = 0.0
        # The keys of the master's read grants (read_grants.py); none until it first answers.
        self.read_keys = read_grants.KeyRing()
        self.reports = BlockReports(incarnation=secrets.token_hex(8))
        store.on_change = self.reports.changed
        self.open_blobs = OpenBlobs(store)
        self.chain_writes = chain_writes.ChainWrites(self.open_blobs)
        for blob_id in self.chain_writes.remove_leftovers():
            log.info("removed the partial copy of chain write %s left by a previous run", blob_id)
        self.scrubber = Scrubber(store, scrub_bytes_per_s, scrub_interval_s, self.reports.found_corrupt)
        self.transcoder = Transcoder(
            transcode_slots,
            store,
            store.root / TRANSCODE_DIR,
            functools.partial(control.connect_master, self),
            transcode_stall_timeout_s,
            self.reports.found_corrupt,
        )

    # --- data connections ---------------------------------------------------------------

    async def handle_request(self, stream: FrameStream, request: Message) -> None:
        # Each handler takes the request type it is filed under (Any: a dict cannot say so).
        handlers: dict[type, Callable[[FrameStream, Any], Awaitable[None]]] = {
            WriteBlob: self._write,
            ReadBlob: self._read,
            DeleteBlob: self._delete,
            ChainWriteBlob: functools.partial(pipeline.chain_write, self),
            ChainResumeBlob: functools.partial(pipeline.chain_write, self),
            AppendBlob: self._append,
            SealBlob: self._seal,
            ListSidecars: self._list_sidecars,
            PutSidecars: self._put_sidecars,
        }
        if type(request) not in handlers:
            await stream.write_frame(Error("bad_request", f"datanode cannot {type(request).__name__}"))
            return
        try:
            await handlers[type(request)](stream, request)
        except (ConnectionError, TimeoutError):
            raise  # the link's trouble, not the disk's: links.py ends the connection
        except OSError as exc:
            # The disk refused (made read-only, an I/O error, full): one line and an
            # answer the master understands, not a traceback and a dropped link.
            code = "no_space" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "disk"
            reason = f"cannot use {self.store.root}: {exc.strerror or exc}"
            await self._refuse(stream, request, StoreError(code, reason))
        except StoreError as exc:
            await self._refuse(stream, request, exc)

    async def _refuse(self, stream: FrameStream, request: Message, exc: StoreError) -> None:
        """Tell the peer why `request` failed; end the link unless it is at a frame boundary."""
        if isinstance(request, ReadBlob) and (
            exc.code == "corrupt" or (exc.code == "not_found" and self.store.holds(request.blob_id))
        ):
            # Rotten, or held but unreadable (its checksums lost): a copy to re-make.
            self.reports.found_corrupt(request.blob_id)
        log.warning("%s %s: %s", type(request).__name__, getattr(request, "blob_id", "?"), exc)
        await stream.write_frame(Error(exc.code, str(exc)))
        if not isinstance(request, DeleteBlob):
            # Mid-request the master may still be sending chunks (or we were sending
            # them): the connection is not at a frame boundary; end it.
            raise ConnectionClosed(f"{type(request).__name__} failed: {exc.code}") from exc

    async def _write(self, stream: FrameStream, request: WriteBlob) -> None:
        writer = self.store.open_writer(request.blob_id, request.sidecar)
        try:
            await stream.write_frame(Ok({}))
            # Keepalives tell the master we are alive while the disk is slow (a long
            # write or the final fsync), so it can tell us apart from a frozen node.
            async with stream.keepalive():
                message = await _chunks_into(stream, writer.write)
                if message.size != writer.size:
                    raise StoreError("checksum", f"got {writer.size} bytes, sender says {message.size}")
                size, sha256 = await writer.finish()
        except BaseException:
            await writer.abort()
            raise
        if sha256 != message.sha256:
            await self.store.delete(request.blob_id)
            raise StoreError("checksum", "bytes arrived damaged: sha256 differs from the sender's")
        await stream.write_frame(End(size=size, sha256=sha256))

    async def _append(self, stream: FrameStream, request: AppendBlob) -> None:
        async with self.open_blobs.lock(request.blob_id):
            appender = await self.open_blobs.appender(request.blob_id, request.offset)
            try:
                await stream.write_frame(Ok({}))
                async with stream.keepalive():
                    message = await _chunks_into(stream, appender.write)
                    if message.size != appender.length:
                        raise StoreError(
                            "checksum", f"holds {appender.length} bytes, sender says {message.size}"
                        )
                    length = await appender.finish()
            finally:
                await appender.abandon()  # an append cut short leaves bytes the next one cuts off
        await stream.write_frame(End(size=length, sha256=""))

    async def _seal(self, stream: FrameStream, request: SealBlob) -> None:
        async with stream.keepalive():  # hashing a large blob takes a while
            size, sha256 = await self.open_blobs.seal(request.blob_id, request.size)
        await stream.write_frame(End(size=size, sha256=sha256))

    async def _read(self, stream: FrameStream, request: ReadBlob) -> None:
        if stream.peer_role == "web" or request.grant:
            # On a development link (no certificates) roles are unknown; a grant shown
            # there is checked all the same, so the web's reads work the same way.
            refused = read_grants.refusal(self.read_keys.keys, request.grant, request.blob_id, time.time())
            if refused is not None:
                raise StoreError("forbidden", refused)
        sent = 0
        # A complete blob is known from memory; only a blob the store does not hold may be
        # an open (resumable) one, which takes a look at the disk to find out.
        in_store = self.store.holds(request.blob_id)
        source = self.store if in_store or not self.open_blobs.holds(request.blob_id) else self.open_blobs
        async with stream.keepalive():  # a slow disk is not a frozen node
            async for piece in source.read(request.blob_id, request.offset, request.length):
                sent += len(piece)
                # The last piece takes the End along, in one write. The loop still runs to
                # the reader's own end: leaving an async generator early defers its
                # clean-up to a task of the event loop's, which costs more than it saves.
                end = protocol.encode(End(size=sent, sha256="")) if sent == request.length else b""
                await stream.write_chunk(piece, CONSUMER_STALL_TIMEOUT_S, after=end)
        if sent != request.length:
            await stream.write_frame(End(size=sent, sha256=""))

    async def _list_sidecars(self, stream: FrameStream, request: ListSidecars) -> None:
        """Every sidecar held, batch by batch; each batch is read from the disk in a worker
        thread only once the previous one is sent, so memory stays at one batch."""
        batches = self.store.sidecar_batches()
        async with stream.keepalive():
            batch = await asyncio.to_thread(next, batches, None)
            while batch is not None:
                following = await asyncio.to_thread(next, batches, None)
                found, without = batch
                await stream.write_frame(
                    SidecarBatch(sidecars=found, held_without=without, final=following is None),
                    timeout=CONSUMER_STALL_TIMEOUT_S,
                )
                batch = following

    async def _put_sidecars(self, stream: FrameStream, request: PutSidecars) -> None:
        """A video's sidecars as it is committed (its heartbeat answers bring the same
        ones later: the store skips a sidecar it already holds byte for byte)."""
        written = await self.store.update_sidecars(request.sidecars)
        await stream.write_frame(Ok({"written": written}))

    async def _delete(self, stream: FrameStream, request: DeleteBlob) -> None:
        if self.chain_writes.take_over(request.blob_id):
            # A chain write of it still running parks first (its upstream is cut), so no
            # partial copy is written back after the deletion.
            async with self.open_blobs.lock(request.blob_id):
                await self.chain_writes.discard(request.blob_id)
        await self.store.delete(request.blob_id)
        # An append of it still running (its master gave up, so it ends soon) finishes
        # first: it would write its checksum file back after the deletion.
        await self.open_blobs.delete(request.blob_id)
        await stream.write_frame(Ok({}))


async def _chunks_into(stream: FrameStream, write: Callable[[bytes], Awaitable[None]]) -> End:
    """Hand every Chunk from the master to `write` until its End, which is returned."""
    while True:
        message = await stream.read_expected(Chunk, End, timeout=MASTER_SILENCE_S)
        if isinstance(message, End):
            return message
        await write(message.data)
