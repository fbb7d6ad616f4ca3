"""The bytes of transcoding: sources out to the datanodes running jobs, renditions in,
and the renditions' fragment indexes out to the web.

Theory of operation
-------------------
A node running a job (leased to it by transcoding.py) asks on connections of its own:
`FetchSource` streams the source from its replicas when the node holds none;
`StoreRendition` brings the finished rendition, which is written through the ordinary
replicated path (ReplicaFanout, blob id recorded as pending first) and committed with
the job's end in one index transaction, but only if the job is still leased (a deleted
video's rendition is retired at once). A rendition's announced size and fragment index
are checked before a byte of it is stored. `GetRenditions` answers the web's player with
a visible video's record and its renditions' fragment indexes.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from myyoutube import media, names, protocol, replica_reads
from myyoutube.master import blob_writers, jobs, transfer, uploads
from myyoutube.master.index import StoredBlob
from myyoutube.master.jobs import Job
from myyoutube.media.fragments import peak_bitrate
from myyoutube.protocol import Chunk, End, Error, FetchSource, GetRenditions, Ok, StoreRendition, VideoInfo
from myyoutube.stream import FrameStream

if TYPE_CHECKING:
    from myyoutube.master.server import Master

log = logging.getLogger(__name__)

# A rendition is at most this many times its source's size plus a constant: a ceiling
# far above any real rendition (a 240p rung of a tiny source can outgrow it a little),
# so a confused or hostile node cannot fill the cluster through a job.
MAX_RENDITION_GROWTH = 4
MAX_RENDITION_EXTRA_BYTES = 64 * 1024 * 1024

# Between chunks of a rendition or while waiting for the node: as for uploads.
RENDITION_STALL_TIMEOUT_S = uploads.UPLOAD_STALL_TIMEOUT_S

DATANODE_REQUESTS = (FetchSource, StoreRendition)


class RenditionTransfers:
    """The master's handlers of FetchSource, StoreRendition and GetRenditions."""

    def __init__(self, master: Master) -> None:
        self.master = master
        self.index = master.index

    def handlers(self) -> dict[type, Callable[[FrameStream, Any], Awaitable[None]]]:
        return {
            FetchSource: self._fetch_source,
            StoreRendition: self._store_rendition,
            GetRenditions: self._renditions,
        }

    def _running(self, job_id: str) -> tuple[Job, dict] | None:
        job = self.index.jobs.jobs.get(job_id)
        video = self.index.videos.get(job.video) if job is not None else None
        if job is None or video is None or job.state != jobs.RUNNING:
            return None
        return job, video

    async def _fetch_source(self, connection: FrameStream, request: FetchSource) -> None:
        running = self._running(request.job_id)
        if running is None:
            await connection.write_frame(Error("not_found", "No such job is running."))
            return
        blob_id = running[1]["blob_id"]
        replica = self.index.replicas[blob_id]
        await connection.write_frame(Ok({"size": replica.size}))

        async def consume(data: bytes) -> None:
            await connection.write_chunk(data, timeout=RENDITION_STALL_TIMEOUT_S)

        master = self.master
        try:
            nodes = master.state.read_order(replica.nodes, time.time(), master.rng)
            await replica_reads.relay_blob(
                blob_id, 0, replica.size, nodes, master.pools, consume, master.read_failed, master.stall_s
            )
        except transfer.ReplicationFailed as exc:
            await connection.write_frame(Error("unavailable", str(exc)))
            return
        await connection.write_frame(End(size=replica.size, sha256=replica.sha256))

    async def _store_rendition(self, connection: FrameStream, request: StoreRendition) -> None:
        refusal = self._rendition_refusal(request)
        if refusal is not None:
            await connection.write_frame(refusal)
            return
        fanouts: list[blob_writers.Writer] = []
        try:
            fanout = await blob_writers.open_replicas(
                self.master, await blob_writers.new_fanout(self.master, fanouts), fanouts
            )
            await connection.write_frame(Ok({"replicas": len(fanout.replicas)}))
            sha256 = await _relay_rendition(connection, fanout, request.size)
            blob = StoredBlob(fanout.blob_id, request.size, sha256, await fanout.finish(request.size, sha256))
            if not self._commit(request, blob):
                raise transfer.ReplicationFailed("The job was cancelled meanwhile.", code="not_found")
        except transfer.ReplicationFailed as exc:
            await blob_writers.abort_fanouts(self.master, fanouts)
            await connection.write_frame(Error(exc.code, str(exc)))
            await uploads.drain(connection)
            return
        except BaseException:
            await blob_writers.abort_fanouts(self.master, fanouts)
            raise
        finally:
            self.master.in_flight.difference_update(f.blob_id for f in fanouts)
        await connection.write_frame(Ok({}))

    def _rendition_refusal(self, request: StoreRendition) -> Error | None:
        running = self._running(request.job_id)
        if running is None:
            return Error("not_found", "No such job is running.")
        source = self.index.replicas[running[1]["blob_id"]]
        if not 0 < request.size <= source.size * MAX_RENDITION_GROWTH + MAX_RENDITION_EXTRA_BYTES:
            return Error("bad_request", f"A rendition of {request.size} bytes is out of bounds.")
        try:
            fragment_index = media.FragmentIndex.from_json(request.fragment_index)
        except (ValueError, KeyError, TypeError) as exc:
            return Error("bad_request", f"The fragment index does not parse: {exc}")
        if fragment_index.size != request.size or not fragment_index.segments:
            return Error("bad_request", "The fragment index does not describe the rendition.")
        return None

    def _commit(self, request: StoreRendition, blob: StoredBlob) -> bool:
        """Commit the rendition if its job is still running; False if it is not."""
        running = self._running(request.job_id)
        if running is None:
            return False
        job = running[0]
        bandwidth = peak_bitrate(media.FragmentIndex.from_json(request.fragment_index))
        self.index.commit_rendition(jobs.finished(job), blob, request.fragment_index, bandwidth, time.time())
        log.info("rendition %s of %s stored on %s", job.rung["name"], job.video, ", ".join(blob.nodes))
        return True

    async def _renditions(self, connection: FrameStream, request: GetRenditions) -> None:
        video = self.master.visible(request.name, request.user)
        if video is None:
            await connection.write_frame(Error("not_found", names.unknown(request.name)))
            return
        await connection.write_frame(VideoInfo(video=self.master.public_video(video)))
        indexes = self.index.jobs.fragment_indexes(video["name"])
        await connection.write_frame(Ok({"indexes": {str(height): text for height, text in indexes.items()}}))


async def _relay_rendition(connection: FrameStream, fanout: blob_writers.Writer, size: int) -> str:
    """Relay the announced `size` bytes to the replicas; their sha256."""
    digest, received = hashlib.sha256(), 0
    while True:
        message = await connection.read_expected(Chunk, End, timeout=RENDITION_STALL_TIMEOUT_S)
        if isinstance(message, End):
            break
        received += len(message.data)
        if received > size:
            raise protocol.RemoteProtocolError(f"rendition longer than the {size} bytes announced")
        digest.update(message.data)
        await fanout.write(message.data)
    if received != size or message.size != size or message.sha256 not in ("", digest.hexdigest()):
        raise protocol.RemoteProtocolError(f"rendition ended at {received} bytes of {size}")
    return digest.hexdigest()
