"""An upload, as the master runs it: place, write the replicas, verify, commit.

Theory of operation
-------------------
After `PutVideo` the master places `replication` replicas on random live datanodes,
says Ok, then relays every Chunk to them while hashing the bytes: down a write pipeline
(`pipeline.ChainWriter`, the default: each byte leaves the master once, and a chain that
loses a node is re-formed over the others) or, with `--writes fanout`, to all of them at
once through a `transfer.ReplicaFanout` (a refusing node is replaced by another). A
chain that cannot form over min_replicas nodes is given up for a fan-out before the
first byte (blob_writers.py opens the writers). The uploader may send `VideoDetails`
(what the file is, and a JPEG poster) before `End`. At End every replica must confirm
the size and sha256; the poster is stored as a blob of its own, replicated like the
video; and only then is one index transaction committed holding the video, its poster
and their replicas. Any failure on the way aborts every replica (nothing half-stored),
and blob ids stay in `master.in_flight` while being written so a block report taken
meanwhile does not make the master delete them. The bytes are held against the owner's
quota while they arrive (`QuotaClaim`, reservations.py), so two uploads of one account
running at once cannot both pass a check made against the same stored total.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from typing import TYPE_CHECKING

from myyoutube import media, names, permissions, protocol
from myyoutube.master import blob_writers, reservations, transfer
from myyoutube.master.index import NameTaken, StoredBlob
from myyoutube.protocol import Chunk, End, Error, Ok, PutVideo, VideoDetails, VideoInfo
from myyoutube.stream import ConnectionClosed, FrameStream

if TYPE_CHECKING:
    from myyoutube.master.server import Master

log = logging.getLogger(__name__)

# The web front end relays an HTTP client, and between the last chunk and End it probes
# the file with PyAV, sending keepalives meanwhile (it bounds that work itself:
# web/media_processes.MEDIA_STEP_TIMEOUT_S); an upload silent this long is abandoned.
UPLOAD_STALL_TIMEOUT_S = 120.0

# After refusing an upload midway, how long the uploader gets to notice and stop sending.
DRAIN_AFTER_ERROR_S = 5.0

# How long a commit waits for the new video's sidecars to reach its holders before it
# answers the uploader anyway. A holder writes and fsyncs two small files (milliseconds);
# one in trouble only gets them later, in a heartbeat answer, so this bounds what a slow
# holder adds to every upload.
SIDECAR_PUSH_TIMEOUT_S = 2.0


OVER_QUOTA_SENTENCE = (
    "This upload would take your account past its storage quota (counting its other uploads "
    "in progress); delete some videos or ask an admin for more room."
)


class OverQuota(Exception):
    code = "over_quota"


class QuotaClaim:
    """One upload's hold on its owner's quota (reservations.py): covers the bytes declared
    or received so far, reading the owner's stored total afresh when asked to and every
    RECHECK_BYTES."""

    def __init__(self, master: Master, owner: str, key: str) -> None:
        self._master, self.owner, self.key = master, owner, key
        self._room: int | None = None
        self._room_read_at: int | None = None  # the size at which the stored total was read

    def cover(self, size: int, fresh: bool = False) -> bool:
        if fresh or self._room_read_at is None or size - self._room_read_at >= reservations.RECHECK_BYTES:
            user = self._master.accounts.user(self.owner)
            self._room = 0 if user is None else reservations.room_left(user)
            self._room_read_at = size
        return self._master.reservations.hold(self.owner, self.key, size, self._room)

    def release(self) -> None:
        self._master.reservations.release(self.owner, self.key)


async def receive(
    master: Master, connection: FrameStream, name: str, content_type: str, access: dict, claim: QuotaClaim
) -> None:
    """Run one upload on `connection`; answers VideoInfo, or Error with the reason.
    `access` holds the new video's owner and visibility; `claim` its hold on the owner's
    quota, grown as bytes arrive and released at commit."""
    blobs: list[StoredBlob] = []
    fanouts: list[blob_writers.Writer] = []
    try:
        fanout = await blob_writers.open_replicas(
            master, await blob_writers.new_fanout(master, fanouts), fanouts
        )
        await connection.write_frame(Ok({"replicas": len(fanout.replicas)}))
        size, sha256, details, poster = await _receive_chunks(master, connection, fanout, claim)
        if not claim.cover(size, fresh=True):  # exact, against uploads committed meanwhile
            raise OverQuota(OVER_QUOTA_SENTENCE)
        blobs.append(StoredBlob(fanout.blob_id, size, sha256, await fanout.finish(size, sha256)))
        video = await commit(
            master, fanouts, blobs, details, poster, dict(access, name=name, content_type=content_type)
        )
        claim.release()  # now counted as stored: no await between, never counted twice
    except (transfer.ReplicationFailed, NameTaken, OverQuota) as exc:
        claim.release()  # at once: the account's other uploads may use the room meanwhile
        await blob_writers.abort_fanouts(master, fanouts)
        if isinstance(exc, NameTaken):
            exc = transfer.ReplicationFailed(names.taken(name), code="exists")
        await connection.write_frame(Error(exc.code, str(exc)))
        await drain(connection)
        return
    except BaseException:
        await blob_writers.abort_fanouts(master, fanouts)
        raise
    finally:
        master.in_flight.difference_update(f.blob_id for f in fanouts)
    master.counters.uploads += 1
    log.info("stored %s (%d bytes) on %s", name, size, ", ".join(blobs[0].nodes))
    await connection.write_frame(VideoInfo(video=master.public_video(video)))


async def commit(
    master: Master, fanouts: list, blobs: list[StoredBlob], details: dict, poster: bytes, fields: dict
) -> dict:
    """Store the poster (if any) beside the video's blob `blobs[0]`, then commit the video
    (`details` and `fields`: name, content type, owner, visibility...) in one transaction."""
    if poster:
        blobs.append(
            await store_small_blob(master, await blob_writers.new_fanout(master, fanouts), poster, fanouts)
        )
    video = dict(
        details,
        blob_id=blobs[0].blob_id,
        size=blobs[0].size,
        sha256=blobs[0].sha256,
        uploaded_at=time.time(),
        poster_blob_id=blobs[1].blob_id if poster else None,
        **fields,
    )
    jobs = master.transcoding.jobs_for(video)
    await master.index.durably(functools.partial(master.index.commit_video, video, blobs, time.time(), jobs))
    await push_sidecars(master, video)
    return video


async def push_sidecars(master: Master, video: dict) -> None:
    """Give every holder of a just-committed video's blobs their sidecars now, before the
    uploader hears of the commit: a master that loses its disk a moment later can still
    rebuild the video from them (--recover). Before, they went out with the holders' next
    heartbeat answers, so a video committed in the seconds before the loss was not
    recovered. Best effort: a holder missed here gets them in a heartbeat answer, as every
    later change to the record travels."""
    batches: dict[str, list[dict]] = {}
    for blob_id, nodes in master.sidecars.holders(video).items():
        sidecar = master.sidecars.for_blob(blob_id)
        if sidecar is not None:
            for node in nodes:
                batches.setdefault(node, []).append(sidecar)
    if not batches:
        return
    pushes = {
        asyncio.ensure_future(transfer.put_sidecars(master.pools, node, batch)): node
        for node, batch in batches.items()
    }
    try:
        _, late = await asyncio.wait(pushes, timeout=SIDECAR_PUSH_TIMEOUT_S)
    finally:
        for push in pushes:
            push.cancel()  # the late ones, or all if this upload itself is cancelled
    for push, node in pushes.items():
        problem = f"no answer within {SIDECAR_PUSH_TIMEOUT_S:g} s" if push in late else push.exception()
        if problem is not None:
            log.info("sidecars of %s wait for %s's next heartbeat: %s", video["name"], node, problem)


async def drain(connection: FrameStream) -> None:
    """Read and drop what the uploader still sends until it has seen our Error and sent
    End, which leaves the connection clean for its next request.

    Closing with its chunks unread would make the kernel answer with a reset, which can
    destroy the Error frame before the uploader reads it. An uploader that does not end
    within DRAIN_AFTER_ERROR_S loses the connection.
    """
    try:
        async with asyncio.timeout(DRAIN_AFTER_ERROR_S):
            while not isinstance(await connection.read_frame(timeout=None), End):
                pass
    except (ConnectionError, TimeoutError, protocol.ProtocolError) as exc:
        raise ConnectionClosed("the uploader did not end after a refusal") from exc


async def _receive_chunks(
    master: Master, connection: FrameStream, fanout: blob_writers.Writer, claim: QuotaClaim
):
    """Relay chunks until End, refusing what `claim` cannot cover; returns (size, sha256,
    details, poster)."""
    digest, size, details, poster = hashlib.sha256(), 0, {}, b""
    while True:
        message = await connection.read_expected(Chunk, VideoDetails, End, timeout=UPLOAD_STALL_TIMEOUT_S)
        if isinstance(message, End):
            break
        if isinstance(message, VideoDetails):
            details, poster = media.clean_details(message.extra), message.poster
            continue
        digest.update(message.data)
        size += len(message.data)
        if not claim.cover(size):
            raise OverQuota(OVER_QUOTA_SENTENCE)
        master.counters.bytes_in += len(message.data)
        await fanout.write(message.data)
    if message.size != size or message.sha256 not in ("", digest.hexdigest()):
        raise protocol.RemoteProtocolError(f"upload ended at {message.size} bytes, got {size}")
    return size, digest.hexdigest(), details, poster


async def store_small_blob(
    master: Master, fanout: blob_writers.Writer, data: bytes, fanouts: list[blob_writers.Writer]
) -> StoredBlob:
    """Store bytes that fit in one chunk (a poster) on fresh replicas."""
    fanout = await blob_writers.open_replicas(master, fanout, fanouts)
    await fanout.write(data)
    sha256 = hashlib.sha256(data).hexdigest()
    return StoredBlob(fanout.blob_id, len(data), sha256, await fanout.finish(len(data), sha256))


def name_refusal(master: Master, name: str, user: permissions.User) -> Error | None:
    """Why `user`'s new upload may not take `name` (a video has it, an upload in progress
    holds it, or it looks like one of those), or None if it may.

    A look-alike is named only if it is a video `user` may list: the name of an unlisted
    video is its link, and naming a private one or another account's unfinished upload
    would turn a near guess ("aIice" for "alice") into the exact name."""
    if name in master.index.videos:
        return Error("exists", names.taken(name))
    if name in master.uploading:
        return Error("exists", names.being_uploaded(name))
    similar = master.lookalike_videos.find(name, master.index.videos.keys() | master.uploading)
    if similar is None:
        return None
    video = master.index.videos.get(similar)
    if video is not None and permissions.may_list(user, video):
        return Error("exists", names.looks_like(name, similar))
    return Error("exists", names.looks_like_unseen(name))


def refusal(user: permissions.User | None, request: PutVideo) -> Error | None:
    """Why the account may not start this upload, or None if it may."""
    if user is None:
        return Error("unauthenticated", "Sign in to upload videos.")
    if not permissions.may_upload(user):
        return Error("forbidden", "Your account may watch videos but not upload them.")
    if request.visibility not in permissions.VISIBILITIES:
        return Error("bad_request", permissions.VISIBILITY_SENTENCE)
    if not permissions.within_quota(user, max(request.size, 0)):
        return Error("over_quota", permissions.quota_sentence(user))
    return None
