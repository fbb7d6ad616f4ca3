"""Resumable uploads, as the master runs them: durable sessions of open blobs.

Theory of operation
-------------------
`CreateUpload` reserves the name, records the blob id pending and a session in the index
(upload_sessions.py) with `replication` nodes chosen for it (at most MAX_SESSIONS are open
in all, MAX_SESSIONS_PER_ACCOUNT per account). Every `AppendUpload` is checked here
against the session (its owner, its confirmed offset) under the session's lock, relayed
to the session's replicas by append_relay.py, and then its new offset, the replicas that
confirmed it and a new expiry are written to the index, and only then is the uploader told.

`ReadUpload` reads the confirmed bytes back (the web probes the file and makes the poster
from them). `FinishUpload` seals the open replicas into an ordinary blob (each node gives
the sha256 it kept while appending; they must agree), which becomes the video's original
as is, and commits the video exactly as a plain upload does (uploads.commit: poster,
index transaction, transcode jobs). `TerminateUpload`, and expiry for sessions idle past
`--upload-expiry`, retire the blob and delete every copy, former replicas' included.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
import uuid
from typing import TYPE_CHECKING, Any

from myyoutube import media, names, permissions, replica_reads, videotext
from myyoutube.master import append_relay, blob_writers, open_replicas, registrations, transfer, uploads
from myyoutube.master.index import NameTaken
from myyoutube.master.upload_sessions import Session
from myyoutube.protocol import (
    AppendUpload,
    CreateUpload,
    End,
    Error,
    FinishUpload,
    Ok,
    PutVideo,
    ReadUpload,
    TerminateUpload,
    UploadStatus,
    VideoDetails,
    VideoInfo,
)
from myyoutube.quietlog import QuietLog
from myyoutube.stream import ConnectionClosed, FrameStream

if TYPE_CHECKING:
    from myyoutube.master.server import Master

log = logging.getLogger(__name__)
quiet = QuietLog(log)

# tus's Expiration extension: a session nobody appended to for this long is removed with
# its bytes (PeerTube and tusd keep unfinished uploads about a day).
DEFAULT_UPLOAD_EXPIRY_S = 24 * 3600.0

# How often, at most, sessions are checked for expiry: a session outlives its expiry by at
# most this (or a quarter of the expiry, when that is shorter, as in tests).
EXPIRY_CHECK_MAX_S = 60.0

# Sessions open at once, across all accounts: each holds a reserved name and open files
# on its replicas; a flood of creations must not hold the whole namespace.
MAX_SESSIONS = 1000
# Sessions one account may hold open at once. Without a bound of its own, one account
# could take every one of MAX_SESSIONS (a thousand 1-byte creations take two seconds) and
# so stop every other account's uploads until they expire. A browser sends its files one
# after the other, and a few left behind by closed tabs still leave room.
MAX_SESSIONS_PER_ACCOUNT = 32

# Deleting a finished session's copies is best effort (a node down now deletes the sealed
# blob at its next report; see the report in the README for open leftovers).
DELETE_TIMEOUT_S = 5.0

NO_SUCH_UPLOAD = "There is no such upload; it may have expired, been cancelled or finished."


class Resumable:
    def __init__(self, master: Master, expiry_s: float) -> None:
        self.master = master
        self.expiry_s = expiry_s
        self.table = master.index.upload_sessions
        for session in list(self.table.sessions.values()):
            video = master.index.videos.get(session.name)
            if video is not None and video["blob_id"] == session.blob_id:
                self.table.remove(session.upload_id)  # committed just before a crash
                continue
            master.uploading.add(session.name)
            master.in_flight.add(session.blob_id)
            self._claim(session).cover(session.length)  # the room it held before the restart

    def _claim(self, session: Session) -> uploads.QuotaClaim:
        """The session's hold on its owner's quota: its declared length, from creation to
        its end, so an account's sessions and plain uploads together fit its quota."""
        return uploads.QuotaClaim(self.master, session.owner, session.name)

    def handlers(self) -> dict[type, Any]:
        return {
            CreateUpload: self._create,
            UploadStatus: self._status,
            AppendUpload: self._append,
            ReadUpload: self._read,
            FinishUpload: self._finish,
            TerminateUpload: self._terminate,
        }

    def _owned(self, upload_id: str, user: str) -> Session | None:
        """The session if it exists and belongs to `user` (others' are not found)."""
        session = self.table.sessions.get(upload_id)
        return session if session is not None and session.owner == user else None

    # --- creation and status ----------------------------------------------------------

    async def _create(self, connection: FrameStream, request: CreateUpload) -> None:
        master = self.master
        try:
            name = names.clean_name(request.name)
            # Checked here as an edit is, whatever the web checked: a title stored unchecked
            # made every later edit of the video's description fail on it.
            title = videotext.clean_title(request.title) if request.title else ""
        except names.BadName as exc:
            await connection.write_frame(Error("bad_name", str(exc)))
            return
        except videotext.BadText as exc:
            await connection.write_frame(Error("bad_request", str(exc)))
            return
        user = master.accounts.user(request.user)
        announced = PutVideo(name, "", request.user, request.visibility, request.length)
        refusal = uploads.refusal(user, announced)  # the same rules as a plain upload
        if refusal is None:
            assert user is not None, "uploads.refusal refuses anonymous uploads"
            refusal = uploads.name_refusal(master, name, user) or self._count_refusal(user.name)
        if refusal is None:
            await registrations.datanodes_registered(master)
        now = time.time()
        nodes = master.state.place(master.replication, now, master.rng) if refusal is None else []
        if refusal is None and len(nodes) < master.min_replicas:
            failure = blob_writers.placement_failure(master, len(nodes))
            refusal = Error(failure.code, str(failure))
        if refusal is not None:
            await connection.write_frame(refusal)
            return
        assert user is not None, "uploads.refusal refuses anonymous uploads"
        session = Session(
            uuid.uuid4().hex, uuid.uuid4().hex, name, user.name, request.visibility, title,
            request.length, 0, nodes, [], now, now + self.expiry_s,
        )  # fmt: skip
        claim = self._claim(session)
        if not claim.cover(request.length, fresh=True):  # with uploads running
            await connection.write_frame(Error("over_quota", permissions.quota_sentence(user)))
            return
        try:
            master.index.ownership.begin_blob(session.blob_id, now)
            self.table.add(session)
        except BaseException:
            # The index refused (its disk full or failing; Master.handle answers): the room
            # held goes back, or it would stay held until the master restarts. The name
            # and blob are marked only below, once the session exists to end them.
            claim.release()
            raise
        master.uploading.add(name)
        master.in_flight.add(session.blob_id)
        log.info("upload %s of %s (%d bytes) opened on %s", session.upload_id, name, request.length, nodes)
        await connection.write_frame(Ok({"upload": session.public()}))

    def _count_refusal(self, owner: str) -> Error | None:
        """Why no new session may open now (too many in all, or for this account), or None."""
        if len(self.table.sessions) >= MAX_SESSIONS:
            return Error("unavailable", "Too many uploads are in progress; try again later.")
        held = sum(1 for session in self.table.sessions.values() if session.owner == owner)
        if held >= MAX_SESSIONS_PER_ACCOUNT:
            return Error(
                "too_many",
                f"You have {held} unfinished uploads; finish or cancel some of them "
                "(or wait for them to expire) before starting another.",
            )
        return None

    async def _status(self, connection: FrameStream, request: UploadStatus) -> None:
        session = self._owned(request.upload_id, request.user)
        if session is None:
            await connection.write_frame(Error("not_found", NO_SUCH_UPLOAD))
            return
        await connection.write_frame(Ok({"upload": session.public()}))

    # --- appends ----------------------------------------------------------------------

    async def _append(self, connection: FrameStream, request: AppendUpload) -> None:
        session = self._owned(request.upload_id, request.user)
        if session is None:
            await connection.write_frame(Error("not_found", NO_SUCH_UPLOAD))
            return
        async with session.lock:
            refusal = self._append_refusal(session, request.offset)
            if refusal is not None:
                await connection.write_frame(refusal)
                return
            appended = await append_relay.append(self.master, self.table, connection, session)
            if appended is None:
                return
            self._confirmed(session, *appended)
        await connection.write_frame(Ok({"upload": session.public()}))

    def _append_refusal(self, session: Session, offset: int) -> Error | None:
        if self.table.sessions.get(session.upload_id) is not session:
            return Error("not_found", NO_SUCH_UPLOAD)  # ended while we waited for the lock
        if offset != session.offset:
            return Error(
                "conflict", f"The upload is at byte {session.offset}, not {offset}; resume from there."
            )
        return None

    def _confirmed(self, session: Session, offset: int, nodes: list[str]) -> None:
        """Record durably that `nodes` hold the first `offset` bytes."""
        session.former = sorted(set(session.former) | (set(session.replicas) - set(nodes)))
        session.offset, session.replicas = offset, nodes
        session.expires_at = time.time() + self.expiry_s
        self.table.save(session)

    async def _read(self, connection: FrameStream, request: ReadUpload) -> None:
        session = self._owned(request.upload_id, request.user)
        if session is None:
            await connection.write_frame(Error("not_found", NO_SUCH_UPLOAD))
            return
        async with session.lock:
            await connection.write_frame(Ok({"size": session.offset}))

            async def consume(data: bytes) -> None:
                await connection.write_chunk(data, timeout=uploads.UPLOAD_STALL_TIMEOUT_S)

            master = self.master
            try:
                async with connection.keepalive():
                    await replica_reads.relay_blob(
                        session.blob_id,
                        0,
                        session.offset,
                        session.replicas,
                        master.pools,
                        consume,
                        master.read_failed,
                        master.stall_s,
                    )
            except transfer.ReplicationFailed as exc:
                await connection.write_frame(Error("unavailable", str(exc)))
                return
            except replica_reads.ConsumerGone as exc:
                raise ConnectionClosed("the reader left mid-read") from exc
        await connection.write_frame(End(size=session.offset, sha256=""))

    async def _finish(self, connection: FrameStream, request: FinishUpload) -> None:
        session = self._owned(request.upload_id, request.user)
        if session is None:
            await connection.write_frame(Error("not_found", NO_SUCH_UPLOAD))
            return
        async with session.lock:
            if self.table.sessions.get(session.upload_id) is not session or session.offset != session.length:
                await connection.write_frame(
                    Error(
                        "conflict",
                        f"The upload has {session.offset} of its {session.length} bytes; send the rest first.",
                    )
                )
                return
            video, sealed = await self._commit(connection, session, request)
            if video is None:
                return
            leftovers = set(session.replicas + session.former) - set(sealed)
            await self._end(session, committed=True, leftovers=leftovers)
        self.master.counters.uploads += 1
        log.info("upload %s committed as %s", session.upload_id, session.name)
        await connection.write_frame(VideoInfo(video=self.master.public_video(video)))

    async def _commit(
        self, connection: FrameStream, session: Session, request: FinishUpload
    ) -> tuple[dict | None, list[str]]:
        """Seal and commit: the session's blob becomes the video's original (byte for byte,
        as a plain upload's) and its transcode jobs are queued with the commit. The video
        and the nodes holding the sealed blob, or (None, []) after answering the refusal."""
        master, fanouts, claim = self.master, list[blob_writers.Writer](), self._claim(session)
        fields = {"name": session.name, "content_type": request.content_type, "owner": session.owner}
        fields.update(visibility=session.visibility, **({"title": session.title} if session.title else {}))
        try:
            await connection.write_frame(Ok({}))
            details, poster = await _details_then_end(connection)
            main = await open_replicas.seal(master, session)
            if not claim.cover(main.size, fresh=True):  # exact, against uploads committed meanwhile
                raise uploads.OverQuota(uploads.OVER_QUOTA_SENTENCE)
            video = await uploads.commit(master, fanouts, [main], details, poster, fields)
        except (transfer.ReplicationFailed, NameTaken, uploads.OverQuota) as exc:
            await blob_writers.abort_fanouts(master, fanouts)  # the poster's, if it was stored
            code = "exists" if isinstance(exc, NameTaken) else exc.code
            await connection.write_frame(Error(code, str(exc)))
            await uploads.drain(connection)
            return None, []
        except BaseException:
            await blob_writers.abort_fanouts(master, fanouts)
            raise
        finally:
            master.in_flight.difference_update(f.blob_id for f in fanouts)
        return video, main.nodes

    async def _terminate(self, connection: FrameStream, request: TerminateUpload) -> None:
        session = self._owned(request.upload_id, request.user)
        if session is None:
            await connection.write_frame(Error("not_found", NO_SUCH_UPLOAD))
            return
        async with session.lock:
            if self.table.sessions.get(session.upload_id) is session:
                await self._end(session, committed=False, leftovers=set(session.replicas + session.former))
        log.info("upload %s of %s terminated", session.upload_id, session.name)
        await connection.write_frame(Ok({}))

    async def _end(self, session: Session, committed: bool, leftovers: set[str]) -> None:
        """Forget the session; unless its blob became the video, retire it. Copies on
        `leftovers` are deleted (best effort: a retired blob also goes at its holder's next
        report)."""
        master = self.master
        self.table.remove(session.upload_id)  # first: if the index refuses, nothing ended
        self._claim(session).release()  # before any await: a committed video is counted once
        master.uploading.discard(session.name)
        master.in_flight.discard(session.blob_id)
        if not committed:
            master.index.ownership.abandon_blobs([session.blob_id], time.time())
        deletes = [transfer.delete_blob(master.pools, node, session.blob_id) for node in sorted(leftovers)]
        try:
            async with asyncio.timeout(DELETE_TIMEOUT_S):
                await asyncio.gather(*deletes, return_exceptions=True)
        except TimeoutError:
            log.warning("upload %s: some copies could not be deleted yet", session.upload_id)

    async def expire_forever(self) -> None:
        """Remove sessions idle past their expiry, with their bytes."""
        while True:
            await asyncio.sleep(min(EXPIRY_CHECK_MAX_S, self.expiry_s / 4))
            now = time.time()
            for session in list(self.table.sessions.values()):
                if session.expires_at < now and not session.lock.locked():
                    log.info("upload %s of %s expired", session.upload_id, session.name)
                    try:
                        await self._end(
                            session, committed=False, leftovers=set(session.replicas + session.former)
                        )
                    except sqlite3.Error as exc:
                        # The index cannot be written (its disk full): the session stays
                        # for the next sweep, and this task, and so the master, go on.
                        quiet.warning("could not expire upload %s yet: %s", session.upload_id, exc)


async def _details_then_end(connection: FrameStream) -> tuple[dict, bytes]:
    """What the web learnt of the file (VideoDetails, optional), then End."""
    details: dict = {}
    poster = b""
    while True:
        message = await connection.read_expected(VideoDetails, End, timeout=uploads.UPLOAD_STALL_TIMEOUT_S)
        if isinstance(message, End):
            return details, poster
        details, poster = media.clean_details(message.extra), message.poster
