"""Reads: where a video's part is, for the web to read itself, or its bytes relayed.

Theory of operation
-------------------
`LocateVideo` is how the web front end starts a read: the master checks that the
visitor may see the video and answers with what the read needs of its record, the
part's holders in the state's order (healthy and not recently failed first) and a grant
(read_grants.py) with which the web reads the bytes from those datanodes itself. The
bytes then cross one hop fewer, and the master's CPU is left to the index. A replica
that fails the web's read is reported (ReadFailed), so the master, too, tries it last.

`ReadVideo` (the web's way when started with --relay-reads, or when it cannot reach the
datanodes) answers the video's record (what a read needs of it), then the bytes: the
part's replicas are read in the state's order (healthy and not recently failed first)
through replica_reads.py, which hedges a slow start and fails over midway, and each
chunk is written on to the reader as it comes. Right after a master restart no holder
has re-registered yet; the read waits for one (registrations.py) rather than refuse.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from myyoutube import names, protocol, read_grants, read_plan, replica_reads
from myyoutube.master.registrations import wait_for_registrations
from myyoutube.master.state import Replica
from myyoutube.protocol import End, Error, LocateVideo, Ok, ReadFailed, ReadVideo, VideoInfo, VideoLocation
from myyoutube.stream import ConnectionClosed, FrameStream

if TYPE_CHECKING:
    from myyoutube.master.server import Master

# The web front end relays an HTTP client, which may pause for a while (a slow uplink, a
# paused video). A request stalled this long on the client side is abandoned.
CLIENT_STALL_TIMEOUT_S = 120.0


class Reads:
    """The master's handlers for reads of stored videos."""

    def __init__(self, master: Master) -> None:
        self.master = master

    def handlers(self) -> dict[type, Callable[[FrameStream, Any], Awaitable[None]]]:
        return {LocateVideo: self._locate, ReadVideo: self._read, ReadFailed: self._web_read_failed}

    async def _find(
        self, connection: FrameStream, request: ReadVideo | LocateVideo
    ) -> tuple[dict, str, Replica] | None:
        """The video, its part's blob id and replicas; None once the reader has been told
        that the user may not see the video, or that it lacks that part."""
        video = self.master.visible(request.name, request.user)
        if video is None:
            await connection.write_frame(Error("not_found", names.unknown(request.name)))
            return None
        blob_id = self.master.transcoding.part_blob(video, request.part) or ""
        replica = self.master.index.replicas.get(blob_id)
        if replica is None:
            await connection.write_frame(Error("not_found", _missing_part(request.part)))
            return None
        return video, blob_id, replica

    async def _locate(self, connection: FrameStream, request: LocateVideo) -> None:
        """Answer where the web may read a part from itself, with the grant to do so."""
        found = await self._find(connection, request)
        if found is None:
            return
        video, blob_id, replica = found
        # The record is taken with the blob, before any wait below: a rendition finished
        # meanwhile must not make the answer describe other bytes than the blob it names.
        record = self.master.read_record(video)
        async with connection.keepalive():  # the wait after a restart is not silence
            nodes = await self._holders_to_read(replica)
        now = time.time()
        location = VideoLocation(
            video=record,
            blob_id=blob_id,
            nodes=nodes,
            grant=read_grants.grant(self.master.read_key, blob_id, now),
            stall_s=self.master.stall_s,
            healthy=self.master.state.healthy_first(nodes, now),
        )
        self.master.counters.reads_located += 1
        await connection.write_frame(location)

    async def _web_read_failed(self, connection: FrameStream, report: ReadFailed) -> None:
        """A read the web made itself failed on a datanode: other reads try it last too.
        Only a registered node counts; the web names what our own answer told it."""
        if report.node in self.master.state.nodes:
            self.master.read_failed(report.node, report.why)
        await connection.write_frame(Ok({}))

    async def _read(self, connection: FrameStream, request: ReadVideo) -> None:
        """Answer the video's record, then stream the asked-for bytes of one of its parts."""
        found = await self._find(connection, request)
        if found is None:
            return
        video, blob_id, replica = found
        if request.offset < 0 or request.length < -1:
            await connection.write_frame(Error("bad_request", "The requested bytes lie outside the video."))
            return
        offset, length = read_plan.clamp(request.offset, request.length, replica.size)
        record = protocol.encode(VideoInfo(video=self.master.read_record(video)))
        if length == 0:
            connection.queue_encoded(record)
            await connection.write_frame(End(size=0, sha256=""))
            return
        # The record goes out with the first chunk and the End with the last (a 64 KiB
        # range is one chunk): one write to the web instead of three, and one wake-up of
        # its reader. The web waits for the first bytes before its headers anyway.
        unsent_record, left = record, length

        async def consume(data: bytes) -> None:
            nonlocal unsent_record, left
            self.master.counters.bytes_out += len(data)
            left -= len(data)
            end = protocol.encode(End(size=length, sha256="")) if left == 0 else b""
            before, unsent_record = unsent_record, b""
            await connection.write_chunk(data, CLIENT_STALL_TIMEOUT_S, before, end)

        self.master.counters.active_streams += 1
        try:
            async with connection.keepalive():
                nodes = await self._holders_to_read(replica)
                await replica_reads.relay_blob(
                    blob_id,
                    offset,
                    length,
                    nodes,
                    self.master.pools,
                    consume,
                    self.master.read_failed,
                    self.master.stall_s,
                )
        except replica_reads.ReplicationFailed as exc:
            connection.queue_encoded(unsent_record)  # the reader expects the record first
            await connection.write_frame(Error("unavailable", str(exc)))
        except replica_reads.ConsumerGone as exc:
            # The web went away mid-stream: its connection is finished, not reusable.
            raise ConnectionClosed("the reader left mid-stream") from exc
        finally:
            self.master.counters.active_streams -= 1

    async def _holders_to_read(self, replica: Replica) -> list[str]:
        """The replicas to read from, in order. Right after a master restart no holder has
        re-registered yet; wait for one (registrations.py) rather than refuse."""
        nodes = self.master.state.read_order(replica.nodes, time.time(), self.master.rng)
        if nodes:
            return nodes  # every read but those right after a restart: no wait, one look
        await wait_for_registrations(
            lambda now: (
                self.master.state.awaiting_holders(replica.nodes, now)
                and not self.master.state.read_order(replica.nodes, now, self.master.rng)
            )
        )
        return self.master.state.read_order(replica.nodes, time.time(), self.master.rng)


def _missing_part(part: str) -> str:
    """What a reader is told when the video lacks the part it asked for (a rendition's
    height comes from the URL, so it is named as a person reads it)."""
    if part.isdigit():
        return f"This video has no {int(part)}p rendition."
    return f"This video has no {part[:20]}."
