"""The web front end's reads straight from the datanodes, with the master's grant.

Theory of operation
-------------------
Every byte the master relays crosses the kernel twice more and costs the master's CPU,
which also answers every page and search. So the web starts a read by asking the master
where the part is (LocateVideo: the master checks the visitor may see it, then answers
with the holders in its order and a grant, read_grants.py), and reads the bytes from
those datanodes itself, over pooled links of its own (pool.DatanodePools), through the
same `ReplicaRead` the master uses: hedged start, failover midway, stall detection after
the master's `stall_s`. The master's answer is reused for a moment by the next reads of
the same part for the same account (location_cache.py): a player's ranges come in bursts.

`DirectReads.open` returns once the first chunk is in hand, so the web still commits to
an HTTP status only with bytes to send. If every holder the master named fails midway,
the read asks the master once more and goes on from the same byte on the holders it
names then (the same blob only), as a long stream may outlive a repair or a restart.
Nodes a read failed on are tried last for a while (read_failures.py), and reported to
the master (ReadFailed), which then tries them last for every reader and counts the
failover.

When no holder could even start the read (the web cannot reach the datanodes' addresses,
or they refuse the grant because they have not heard from a restarted master yet), the
caller falls back to the master's relay (ReadVideo): slower, but served. A read whose
every holder failed here within read_failures.READ_FAILURE_MEMORY_S goes to the relay at
once, without trying them again: a holder cut off from the web costs each try up to a
handshake timeout, and a player asks range after range.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from myyoutube import local_handover, local_reads, location_cache, protocol, read_plan
from myyoutube.local_reads import BlobRead, LocalRead
from myyoutube.pool import DatanodePools
from myyoutube.protocol import VideoLocation
from myyoutube.read_failures import RecentFailures
from myyoutube.replica_reads import FailureReport, ReplicaRead, ReplicationFailed
from myyoutube.stream import RequestFailed
from myyoutube.tls_contexts import Tls

# Failure reports on their way to the master at once. A datanode that fails takes a few
# reads with it, one report each; beyond this many the rest say nothing new.
MAX_FAILURE_REPORTS = 16

# A failure's reason is for the master's log: a line, not a peer's whole error text.
MAX_WHY_CHARS = 200

# Idle links the web keeps to each datanode. Its streams spread over the holders of each
# video; a busy second sees a few dozen ranges per node, and beyond this finished links
# are closed rather than kept.
MAX_IDLE_PER_DATANODE = 32


class DirectRead:
    """An open read: `video` (what the read needs of the record), then the bytes
    [offset, offset+length) with `next_chunk()` (b'' at the end); `close()` when done.
    The same face as master_streams.VideoRead, so the web serves either."""

    def __init__(self, video: dict, read: BlobRead, first: bytes, again: Reopen | None) -> None:
        """`again` reads the rest anew from where the master says the part is now, once."""
        self.video = video
        self.offset = read.offset
        self.length = read.length
        self._read = read
        self._first: bytes | None = first
        self._again = again

    async def next_chunk(self) -> bytes:
        """The next bytes; RequestFailed('unavailable') once no replica can go on."""
        if self._first is not None:
            data, self._first = self._first, None
            return data
        while True:  # at most twice: the master is asked again once (_read_again)
            try:
                return await self._read.next_chunk()
            except ReplicationFailed as exc:
                if not await self._read_again():
                    raise RequestFailed(exc.code, str(exc)) from exc

    async def _read_again(self) -> bool:
        """Every replica the master named has failed midway: ask it once more where the
        part is, since a repair may have made a copy since, or a node come back (a long
        stream outlives such changes). Whether the rest is now being read."""
        again, self._again = self._again, None
        if again is None:
            return False
        done = self._read
        try:
            self._read = await again(done.blob_id, done.offset + done.sent, done.length - done.sent)
        except (ReplicationFailed, RequestFailed, OSError, TimeoutError, protocol.ProtocolError):
            return False
        done.close()
        return True

    def close(self) -> None:
        self._read.close()


# How a read asks the master again and reads the rest: (blob_id, offset, length) -> the read
# (ReplicationFailed if the part is another blob now, or no running node holds it).
Reopen = Callable[[str, int, int], Awaitable[ReplicaRead]]

# How a read asks the master where a part is now: its answer (RequestFailed if none).
Locate = Callable[[], Awaitable[VideoLocation]]


class FailureReports:
    """Failed direct reads, told to the master (`send`, a ReadFailed) in the background.
    The read goes on meanwhile; a report lost (the master busy, restarting) costs only
    that the master learns of the node at its next failure or missed heartbeat."""

    def __init__(self, send: Callable[[str, str], Coroutine[Any, Any, None]]) -> None:
        self._send = send
        self._on_their_way: set[asyncio.Task] = set()

    def report(self, node: str, why: str) -> None:
        """A direct read failed on `node`, for `why`."""
        if len(self._on_their_way) >= MAX_FAILURE_REPORTS:
            return
        task = asyncio.create_task(self._send(node, why[:MAX_WHY_CHARS]))
        self._on_their_way.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task) -> None:
        """A report sent or failed: forget it (a failure to report is not worth a log line)."""
        self._on_their_way.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as never retrieved


class DirectReads:
    """The web's links to the datanodes, its memory of their recent failures, and the
    master's recent answers about where parts are (location_cache.py)."""

    def __init__(self, tls: Tls | None, read_locally: bool = True) -> None:
        """`read_locally`: read the files of datanodes on this machine (local_reads.py)."""
        self.pools = DatanodePools(tls, MAX_IDLE_PER_DATANODE)
        self.failures = RecentFailures()
        self.locations = location_cache.LocationCache()
        self.local = local_reads.LocalBlobs() if read_locally and local_handover.SUPPORTED else None

    async def open_part(
        self,
        key: location_cache.Key,
        locate: Locate,
        offset: int,
        length: int,
        report: FailureReport,
        reuse: bool = True,
    ) -> DirectRead:
        """Start reading [offset, offset+length) (`length` -1: to the end) of the part
        `key` names, with its first chunk in hand. Where the part is comes from the
        master (`locate`), or with `reuse` from its answer of a moment ago
        (location_cache.py).
        RequestFailed as `locate` raises it, or 'unavailable' if no node holds the part;
        ReplicationFailed if none of the holders could start the read (the answer is
        then forgotten: the next read asks the master)."""
        location = await self._located(key, locate, reuse)
        part_size = read_plan.part_size(location.video, key[2])
        start, count = read_plan.clamp(offset, length, part_size)
        try:
            again = self._read_again(key, locate, report)
            return await self.open(location, start, count, report, again, part_size)
        except ReplicationFailed:
            self.locations.forget(key)
            raise

    async def _located(self, key: location_cache.Key, locate: Locate, reuse: bool = True) -> VideoLocation:
        """The master's answer about where the part is, or with `reuse` the one it gave
        a moment ago."""
        if reuse and (kept := self.locations.get(key, time.monotonic())) is not None:
            return kept
        # Stamped with when it was asked, not when it came: the master decides who may
        # see the video after that moment, however long its answer then takes (after a
        # restart it waits up to seconds for holders), so no answer is reused more than
        # LOCATION_FRESH_S after the master's decision.
        asked_in, asked_at = self.locations.generation, time.monotonic()
        location = await locate()
        self.locations.put(key, location, asked_at, asked_in)
        return location

    def _read_again(self, key: location_cache.Key, locate: Locate, report: FailureReport) -> Reopen:
        """How a read whose holders all failed midway asks the master where the part is
        now and reads the rest of the same blob from there."""

        async def again(blob_id: str, offset: int, length: int) -> ReplicaRead:
            location = await self._located(key, locate, reuse=False)
            if location.blob_id != blob_id:
                # The part is other bytes now (a rendition made since): never splice them.
                raise ReplicationFailed("The video changed while it was being read.")
            return self.read(location, offset, length, report)

        return again

    def read(
        self, location: VideoLocation, offset: int, length: int, report: FailureReport, first: str = ""
    ) -> ReplicaRead:
        """A read of [offset, offset+length) of the located part, not started yet;
        ReplicationFailed if no running node holds it. A node the read fails on is tried
        last here for a while, and passed to `report` (the master). `first`: a holder to
        ask before the others (a local read's, local_reads.LocalRead) unless it failed
        lately."""
        now = time.time()
        nodes = self.failures.tried_last(location.nodes, now)
        if first in nodes and not self.failures.recently(first, now):
            nodes.remove(first)
            nodes.insert(0, first)

        def failed(node: str, why: str) -> None:
            self.failures.failed(node, time.time())
            report(node, why)

        return ReplicaRead(
            location.blob_id, offset, length, nodes, self.pools, failed, location.stall_s, location.grant
        )

    async def open(
        self,
        location: VideoLocation,
        offset: int,
        length: int,
        report: FailureReport,
        again: Reopen | None = None,
        part_size: int | None = None,
    ) -> DirectRead:
        """Start reading [offset, offset+length) of the located part; returns with its
        first chunk in hand. RequestFailed('unavailable') if no node holds it, and
        ReplicationFailed if none of the holders could start the read. `again`: how the
        read may ask the master once more midway (DirectRead._read_again). With
        `part_size` (the blob's size), a holder on this machine is read from its files."""
        if self.failures.all_recently(location.nodes, time.time()):
            raise ReplicationFailed("every datanode holding it failed a read from here moments ago")
        read: BlobRead | None = None
        if part_size is not None and length > 0:
            read = await self._local_read(location, (offset, length, part_size), report)
        try:
            if read is None:
                read = self.read(location, offset, length, report)
        except ReplicationFailed as exc:  # no running holder: the master could do no better
            raise RequestFailed(exc.code, str(exc)) from exc
        try:
            first = await read.next_chunk()
        except BaseException:
            read.close()
            raise
        return DirectRead(location.video, read, first, again)

    async def _local_read(
        self, location: VideoLocation, span: tuple[int, int, int], report: FailureReport
    ) -> LocalRead | None:
        """A read from the files of a healthy holder on this machine, or None if none is
        (local_reads.py). Only holders the master's answer names healthy are read so: a
        node it stopped counting on is no source either. A holder whose files are open
        already comes first: no handover, and one copy of the video in the page cache
        rather than one per replica."""
        if self.local is None or not self.local.usable:
            return None
        local = self.local
        healthy = self.failures.tried_last(location.nodes[: max(location.healthy, 1)], time.time())
        found = next(
            ((node, handle) for node in healthy if (handle := local.held(node, location.blob_id))), None
        )
        for node in healthy if found is None else ():
            handle = await local.open(node, location.blob_id, location.grant, span[2])
            if handle is not None:
                found = node, handle
                break
        if found is None:
            return None

        def rest(offset: int, length: int, first: str) -> ReplicaRead:
            return self.read(location, offset, length, report, first)

        return LocalRead(local, found, location.blob_id, span, rest)

    def close(self) -> None:
        self.pools.close()
        if self.local is not None:
            self.local.close()
