"""The web's reads of blobs held by a datanode on its own machine: from the files, no hop.

Theory of operation
-------------------
A 64 KiB range read over the network costs the web a request frame and the answer's
frames, and the datanode a receive, a block read and a send: on loopback each of those
system calls also runs the other side's TCP. Measured on a 2-core machine, that was more
than half of the CPU a seek costs the whole cluster. When the datanode runs on the web's
own machine (the one-command cluster, or a small deployment), none of it is needed: the
bytes are in the same page cache. So, as HDFS's short-circuit local reads do, the web
asks such a datanode once per blob for the blob's files, and then reads them itself.

The handover (local_handover.py): on a local socket, against the master's grant for the
blob, the datanode gives the web read-only descriptors of the blob's file and its
checksum file, once per blob; only between processes of one user, and only from the very
node the web asked about.

Reading: each block comes from the page cache without waiting (preadv RWF_NOWAIT, on the
event loop, read_handles.py) and is checked against its CRC32C like every datanode read.
The first block that is not cached (the disk would stall the event loop), or does not
match its checksum, ends the local read: the rest comes from the datanodes over the
network, the same node first, which reads its disk in a worker thread (warming the file
read here), or finds the corruption itself, reports it to the master for repair, and the
read fails over to another replica. A rotten block is never handed on.

What keeps a held descriptor honest: a blob's bytes never change once published (a new
upload or rendition is a new blob id), so an open file can only go stale by being
deleted. The web uses a descriptor only while the master's answer (at most
location_cache.LOCATION_FRESH_S old) names its node as a holder, the same bound the
network reads have. Descriptors are kept for the last OPEN_LOCAL_BLOBS blobs read, and
closed once unread for LOCAL_IDLE_S, so a deleted blob's disk space is freed soon.
A node found not to be local is asked again only after NOT_LOCAL_RETRY_S.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Protocol

from myyoutube.datanode.blob_writer import BLOCK_BYTES, block_matches
from myyoutube.datanode.read_handles import ReadHandle, ReadHandles
from myyoutube.formatting import exception_text
from myyoutube.local_handover import NotLocal, Refused, ask_for_files
from myyoutube.protocol import OpenLocalBlob
from myyoutube.quietlog import QuietLog

log = logging.getLogger(__name__)
quiet = QuietLog(log)

# A local read hands the event loop back after this many bytes: reading cached blocks
# never waits, and a viewer whose socket keeps taking them must not hold up the others.
YIELD_EVERY_BYTES = 1024 * 1024

# Blobs whose files the web keeps open: two descriptors each while opening, one after,
# and their checksums (16 KiB per GiB). A player reads one blob at a time, so this covers
# as many videos being watched at once.
OPEN_LOCAL_BLOBS = 64

# A blob's files not read for this long are closed. Until then a blob deleted meanwhile
# keeps its disk space (an open file outlives its name), so this bounds how long a
# deletion waits to free it; a player asks its ranges seconds apart, well within it.
LOCAL_IDLE_S = 30.0

# How often the idle files are looked for: a file is closed at most this long after
# LOCAL_IDLE_S.
SWEEP_EVERY_S = LOCAL_IDLE_S / 4

# A node that turned out not to be on this machine (or not to answer) is asked again only
# after this long: every read would otherwise try a connect first. Long enough to cost
# nothing, short enough that a datanode started here later is soon read locally.
NOT_LOCAL_RETRY_S = 30.0

# A blob a local node would not hand over (a grant it cannot check yet after a master
# restart, a blob it no longer holds) is asked for again only after this long.
REFUSED_RETRY_S = 1.0

# Nodes and blobs not to ask again yet that are remembered. Each is a short string for
# at most NOT_LOCAL_RETRY_S; a front end meets a few nodes and refusals are rare.
MAX_NOT_AGAIN = 1024


class BlobRead(Protocol):
    """A read of [offset, offset+length) of a blob that hands out its bytes in order:
    a replica_reads.ReplicaRead, or a LocalRead that may turn into one."""

    blob_id: str
    offset: int
    length: int
    sent: int

    async def next_chunk(self) -> bytes: ...

    def close(self) -> None: ...


# How a local read has the datanodes send the rest: (offset, length, the node to ask
# first) -> a read not started.
RemoteRest = Callable[[int, int, str], BlobRead]


class LocalBlobs:
    """The blobs whose files the web holds open, and which datanodes are on this machine."""

    def __init__(self) -> None:
        # A deleted blob's last descriptor frees its disk blocks as it closes, which for a
        # large file on a busy disk takes a while: never on the event loop.
        self._handles = ReadHandles(BLOCK_BYTES, OPEN_LOCAL_BLOBS, close=_close_in_a_thread)
        self._retry_after: dict[str, float] = {}  # node, or node and blob: asked again after
        self._opening: dict[str, asyncio.Future[ReadHandle | None]] = {}
        self._sweep: asyncio.TimerHandle | None = None  # closes idle files (LOCAL_IDLE_S)
        self.reads = 0  # reads started from local files
        self.fallbacks = 0  # local reads whose rest came over the network

    @property
    def usable(self) -> bool:
        """False once the kernel turned out not to read without waiting (RWF_NOWAIT):
        every block would then go over the network anyway."""
        return self._handles.nowait_reads

    def held(self, node: str, blob_id: str) -> ReadHandle | None:
        """The blob's files as `node` holds them if they are open already, taken for one
        read (`release` it); None if they are not."""
        return self._handles.take(_key(node, blob_id))

    async def open(self, node: str, blob_id: str, grant: str, size: int) -> ReadHandle | None:
        """The blob's files as `node` holds them, taken for one read (`release` it), or
        None if that node is not on this machine or would not hand them over."""
        key = _key(node, blob_id)
        handle = self._handles.take(key)
        if handle is not None:
            return handle
        now = time.monotonic()
        if self._retry_after.get(node, 0.0) > now or self._retry_after.get(key, 0.0) > now:
            return None
        opening = self._opening.get(key)
        if opening is None:
            opening = asyncio.ensure_future(self._ask(node, key, OpenLocalBlob(node, blob_id, grant), size))
            self._opening[key] = opening
            opening.add_done_callback(lambda _: self._opening.pop(key, None))
        if await asyncio.shield(opening) is None:
            return None
        return self._handles.take(key)

    async def _ask(self, node: str, key: str, request: OpenLocalBlob, size: int) -> ReadHandle | None:
        changes = self._handles.changes
        try:
            fd, crcs = await asyncio.to_thread(ask_for_files, node, request, size)
        except NotLocal as exc:
            log.debug("datanode %s is not read locally: %s", node, exc)
            self._not_again(node, NOT_LOCAL_RETRY_S)
            return None
        except (Refused, OSError) as exc:
            quiet.info("datanode %s would not hand over blob %s: %s", node, request.blob_id, exc)
            self._not_again(key, REFUSED_RETRY_S)
            return None
        except Exception as exc:  # a peer's odd answer: read over the network, as for any
            quiet.warning("datanode %s is not read locally: %s", node, exception_text(exc))
            self._not_again(node, NOT_LOCAL_RETRY_S)
            return None
        handle = self._handles.keep(key, ReadHandle(fd, crcs), changes)
        self._handles.release(handle)  # kept open; each read takes it anew
        if self._sweep is None:
            self._sweep = asyncio.get_running_loop().call_later(SWEEP_EVERY_S, self._close_idle)
        return handle

    def _close_idle(self) -> None:
        """Close the files no read took for LOCAL_IDLE_S; come back while any are open."""
        self._sweep = None
        if self._handles.drop_idle(time.monotonic() - LOCAL_IDLE_S):
            self._sweep = asyncio.get_running_loop().call_later(SWEEP_EVERY_S, self._close_idle)

    def _not_again(self, what: str, for_s: float) -> None:
        """Ask `what` (a node, or a node's blob) again only after `for_s`."""
        now = time.monotonic()
        if len(self._retry_after) >= MAX_NOT_AGAIN:  # bounded: the expired go, then the oldest
            self._retry_after = {k: t for k, t in self._retry_after.items() if t > now}
            while len(self._retry_after) >= MAX_NOT_AGAIN:
                del self._retry_after[next(iter(self._retry_after))]
        self._retry_after[what] = now + for_s

    def read_block(self, handle: ReadHandle, number: int, size: int) -> bytes | None:
        """Block `number` of a blob of `size` bytes if the page cache holds it, None if
        it would have to come from the disk; RottenBlock if it fails its checksum."""
        start = number * BLOCK_BYTES
        try:
            block = self._handles.read_if_cached(handle.fd, start, min(BLOCK_BYTES, size - start))
        except OSError as exc:  # the disk failed it: the datanode reports that properly
            quiet.warning("a local read of block %d failed: %s", number, exc)
            return None
        if block is not None and not block_matches(number, block, handle.crcs):
            raise RottenBlock(f"block {number} fails its CRC32C check")
        return block

    def forget(self, node: str, blob_id: str) -> None:
        """Let this node's files of the blob go, and do not open them again for
        NOT_LOCAL_RETRY_S (a block failed its checksum: its scrubber will find it too)."""
        key = _key(node, blob_id)
        self._handles.drop(key)
        self._not_again(key, NOT_LOCAL_RETRY_S)

    def release(self, handle: ReadHandle) -> None:
        self._handles.release(handle)

    def close(self) -> None:
        for task in list(self._opening.values()):
            task.cancel()
        if self._sweep is not None:
            self._sweep.cancel()
        self._handles.close_all()


def _key(node: str, blob_id: str) -> str:
    """What the files of `blob_id` as `node` holds them are kept under."""
    return f"{node} {blob_id}"


class RottenBlock(Exception):
    """A block read from a local datanode's file does not match its checksum."""


def _close_in_a_thread(fd: int) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # the front end is stopping, its loop gone: nobody waits any more
        os.close(fd)
        return
    loop.run_in_executor(None, os.close, fd)


class LocalRead:
    """[offset, offset+length) of a blob of `size` bytes, read from the files of the
    datanode `node` on this machine while its blocks are cached and sound, then from the
    datanodes over the network (`rest`), that node first. So a block it must read from
    its disk warms the very file read here next time; and a rotten block is found by the
    node itself, which reports it to the master for repair (as a scrub would) while the
    read fails over to a sound replica. The face of replica_reads.ReplicaRead."""

    def __init__(
        self,
        blobs: LocalBlobs,
        source: tuple[str, ReadHandle],
        blob_id: str,
        span: tuple[int, int, int],
        rest: RemoteRest,
    ) -> None:
        """`source`: the node and its open files; `span`: (offset, length, blob size)."""
        self.blob_id = blob_id
        self.offset, self.length, self._size = span
        self.sent = 0
        self._blobs = blobs
        self._node, handle = source
        self._handle: ReadHandle | None = handle
        self._rest = rest
        self._remote: BlobRead | None = None
        self._unyielded = 0  # bytes handed out since the event loop last had a turn
        blobs.reads += 1

    async def next_chunk(self) -> bytes:
        """The next bytes (at most a block), b'' at the end."""
        if self._handle is not None and self.sent < self.length:
            if self._unyielded >= YIELD_EVERY_BYTES:
                self._unyielded = 0
                await asyncio.sleep(0)
            piece = self._next_local()
            if piece:
                self._unyielded += len(piece)
                return piece
        if self._remote is None:
            return b""
        data = await self._remote.next_chunk()
        self.sent += len(data)
        return data

    def _next_local(self) -> bytes:
        """The next piece from the files, or b'' once the rest must come over the network."""
        assert self._handle is not None, "called only while the files are held"
        position = self.offset + self.sent
        number = position // BLOCK_BYTES
        try:
            block = self._blobs.read_block(self._handle, number, self._size)
        except RottenBlock as exc:
            quiet.warning("%s of blob %s on %s; reading it over the network", exc, self.blob_id, self._node)
            self._blobs.forget(self._node, self.blob_id)
            block = None
        if block is None:
            self._let_go()
            self._blobs.fallbacks += 1
            self._remote = self._rest(position, self.length - self.sent, self._node)
            return b""
        start, wanted = position - number * BLOCK_BYTES, self.length - self.sent
        piece = block if start == 0 and len(block) <= wanted else block[start : start + wanted]
        self.sent += len(piece)
        if self.sent == self.length:
            self._let_go()
        return piece

    def _let_go(self) -> None:
        if self._handle is not None:
            self._blobs.release(self._handle)
            self._handle = None

    def close(self) -> None:
        self._let_go()
        if self._remote is not None:
            self._remote.close()
