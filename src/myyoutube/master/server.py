"""The master: the video index, the datanode registry, uploads, reads and repair.

Theory of operation
-------------------
Every connection to the master starts with one request frame, dispatched by its type:

* `Register` opens a datanode's control connection, served by control.py: heartbeats
  and block reports on it are answered with `Commands`. `PurgeOrphans` is answered there too.
* `PutVideo` (from the web front end) reserves the name, places the blob on
  `replication` random live datanodes, relays the chunks through a `ReplicaFanout`, and
  commits the video to the index only once enough replicas confirmed size and sha256.
* `LocateVideo` tells the web where a video's part is, with a grant to read it from the
  datanodes itself; `ReadVideo` relays a byte range from the replicas instead, failing
  over mid-stream (both in reads.py).
* `ListVideos`, `StatVideo`, `UpdateVideo` (title and description), `CountView` (once
  per viewer and video within views.VIEW_WINDOW_S), `DeleteVideo` and `SetVisibility`
  are answered from the index by video_requests.py; `GetStatus` from the index and state.
* Account requests (`Login`, `WhoIs`, `AddUser`...) are answered by accounts.py.

Every request about videos or the cluster names the account it is made for (`user`, ''
for anonymous). The master checks it against permissions.py before acting, whatever the
web front end already checked: a video the account may not see is answered as if it did
not exist (`not_found`, so private names do not leak), an act it may not do is
`forbidden`, and an upload past its quota is `over_quota`, refused before the first byte
when the size is announced and as soon as the bytes pass it otherwise.

A repair task (repair.py) copies under-replicated blobs in the background.
Decisions live in state.py; this module only carries them out.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
import unicodedata
from collections.abc import Awaitable, Callable
from typing import Any

from myyoutube import names, permissions, read_grants
from myyoutube.lookalikes import Lookalikes
from myyoutube.master import (
    backup,
    catalogue,
    control,
    reads,
    rendition_transfers,
    resumable,
    sidecars,
    status,
    transcoding,
    transfer,
    uploads,
    video_requests,
    views,
)
from myyoutube.master.accounts import Accounts
from myyoutube.master.index import Index
from myyoutube.master.repair_plan import Repair
from myyoutube.master.reservations import Reservations
from myyoutube.master.state import ClusterState
from myyoutube.pool import DatanodePools
from myyoutube.protocol import (
    Error,
    GetStatus,
    Message,
    Ok,
    PutVideo,
    Register,
)
from myyoutube.quietlog import QuietLog
from myyoutube.stream import DEFAULT_STALL_S, ConnectionClosed, FrameStream
from myyoutube.tls_contexts import Tls

log = logging.getLogger(__name__)
quiet = QuietLog(log)

# Connections served at once: datanode control connections plus web requests (each upload
# or stream holds one). Past this, new connections wait for a slot.
MAX_CONNECTIONS = 512

DATANODE_ONLY = frozenset({"datanode"})
WEB_ONLY = frozenset({"web"})

# How often retired blob ids older than blob_ownership.RETIRED_KEEP_S, and expired tokens, are forgotten.
RETIRED_PRUNE_EVERY_S = 3600.0


class Master:
    def __init__(
        self,
        index: Index,
        state: ClusterState,
        tls: Tls | None,
        replication: int,
        min_replicas: int,
        accounts: Accounts,
        stall_s: float = DEFAULT_STALL_S,
        rng: random.Random | None = None,
        private: bool = False,
        upload_expiry_s: float = resumable.DEFAULT_UPLOAD_EXPIRY_S,
    ) -> None:
        self.index = index
        self.private = private  # --private: no request of anonymous visitors is answered
        self.accounts = accounts
        self.state = state
        self.stall_s = stall_s  # silence after which a datanode mid-request is taken for frozen
        # What the web's read grants are signed with (read_grants.py): new at each start,
        # so a restart voids the grants given before it.
        self.read_key = read_grants.new_key()
        self.pools = DatanodePools(tls, transfer.MAX_IDLE_PER_DATANODE)
        self.replication = replication
        self.min_replicas = min_replicas
        self.rng = rng or random.Random()
        self.uploading: set[str] = set()  # names reserved by uploads in progress
        self.reservations = Reservations()  # quota held by uploads in progress
        self.lookalike_videos = Lookalikes()  # "сat.mp4" (Cyrillic с) is refused beside "cat.mp4"
        self.in_flight: set[str] = set()  # blobs being written (uploads and repairs)
        self.repair_load: dict[str, int] = {}  # node -> copies running through it
        self.repairs: dict[str, Repair] = {}  # blob -> copy in progress
        self.repairs_ended = 0  # copies finished or failed: a reason to plan again
        self.recent_views = views.RecentViews()
        self.counters = status.Counters()
        self.transcoding = transcoding.Transcoding(self)
        self.rendition_transfers = rendition_transfers.RenditionTransfers(self)
        self.write_pipeline = True  # uploads go down a chain of datanodes (pipeline.py), not fan-out
        self.resumable = resumable.Resumable(self, upload_expiry_s)
        self.sidecars = sidecars.SidecarDelivery(index)
        self.control = control.Control(self)  # datanodes' control connections, and their orphans
        self.video_requests = video_requests.VideoRequests(self)
        self.reads = reads.Reads(self)
        # Built once: a dispatch per request (a player asks a range every few seconds)
        # must not rebuild the table of every handler.
        self._handler_table = self._handlers()

    def connection_accepted(self) -> None:
        self.counters.connections_accepted += 1

    def public_video(self, video: dict) -> dict:
        """A video's record as clients see it: internal blob ids stay inside, the poster's
        size and checksum go out (the web serves it with an ETag)."""
        public = {k: v for k, v in video.items() if k not in ("blob_id", "poster_blob_id")}
        poster = self.index.replicas.get(video.get("poster_blob_id") or "")
        public["has_thumbnail"] = poster is not None
        if poster is not None:
            public["thumbnail_size"], public["thumbnail_sha256"] = poster.size, poster.sha256
        public.update(self.transcoding.public_fields(video))
        return public

    def read_record(self, video: dict) -> dict:
        """What a read needs of a video to answer HTTP: name, visibility, upload time
        (Last-Modified) and parts (size, sha256, type). Not the whole public record: a
        player asks a range every few seconds, and each answer would encode it all."""
        return {
            "name": video["name"],
            "visibility": video["visibility"],
            "uploaded_at": video["uploaded_at"],
            "parts": self.transcoding.parts(video),
        }

    def _handlers(self) -> dict[type, Callable[[FrameStream, Any], Awaitable[None]]]:
        # Each handler takes the request type it is filed under (Any: a dict cannot say so).
        return {
            PutVideo: self._put,
            GetStatus: self._status,
            **self.video_requests.handlers(),
            **self.reads.handlers(),
            **self.control.handlers(),
            **self.accounts.handlers(),
            **self.rendition_transfers.handlers(),
            **self.resumable.handlers(),
            **backup.handlers(self),
        }

    def allowed_roles(self) -> dict[type, frozenset[str]]:
        """Who may send what (checked by links.py on TLS links): datanodes register and
        run transcode jobs, every other request is the web front end's."""
        from_datanodes = (Register, *rendition_transfers.DATANODE_REQUESTS)
        return {kind: DATANODE_ONLY if kind in from_datanodes else WEB_ONLY for kind in self._handler_table}

    async def handle(self, connection: FrameStream, request: Message) -> None:
        handler = self._handler_table.get(type(request))
        if handler is None:
            await connection.write_frame(Error("bad_request", f"the master cannot {type(request).__name__}"))
            return
        acting = getattr(request, "user", None)  # requests made on someone's behalf say whose
        if acting is not None and not permissions.may_ask(self.accounts.user(acting), self.private):
            await connection.write_frame(Error("forbidden", "This site is private; sign in first."))
            return
        try:
            await handler(connection, request)
        except sqlite3.Error as exc:
            await self._index_failed(connection, request, exc)

    async def _index_failed(self, connection: FrameStream, request: Message, exc: sqlite3.Error) -> None:
        """The index could not be written (its disk full, read-only or failing): the
        asker gets a sentence, the log one line per kind every few seconds, not a
        traceback per request. The link ends: the request may be half-way through."""
        quiet.log(logging.ERROR, "cannot use the index for %s: %s", type(request).__name__, exc)
        if "full" in str(exc):
            refusal = Error(
                "no_space", "The master's disk is full; nothing can be stored until space is freed."
            )
        else:
            refusal = Error("unavailable", "The master cannot use its index right now; try again shortly.")
        await connection.write_frame(refusal)
        raise ConnectionClosed(f"{type(request).__name__} failed: the index: {exc}") from exc

    # --- uploads --------------------------------------------------------------------------

    async def _put(self, connection: FrameStream, request: PutVideo) -> None:
        try:
            name = names.clean_name(request.name)
        except names.BadName as exc:
            await connection.write_frame(Error("bad_name", str(exc)))
            return
        user = self.accounts.user(request.user)
        refusal = uploads.refusal(user, request)
        if refusal is not None:
            await connection.write_frame(refusal)
            return
        assert user is not None, "uploads.refusal refuses anonymous uploads"
        taken = uploads.name_refusal(self, name, user)
        if taken is not None:
            await connection.write_frame(taken)
            return
        claim = uploads.QuotaClaim(self, user.name, name)
        if not claim.cover(max(request.size, 0), fresh=True):  # with the uploads still running
            await connection.write_frame(Error("over_quota", permissions.quota_sentence(user)))
            return
        self.uploading.add(name)
        try:
            access = {"owner": user.name, "visibility": request.visibility}
            await uploads.receive(self, connection, name, request.content_type, access, claim)
        finally:
            self.uploading.discard(name)
            claim.release()

    def read_failed(self, node: str, why: str) -> None:
        """A read from `node` failed or stalled: new reads go elsewhere for a while."""
        self.counters.read_failovers += 1
        self.state.read_failed(node, time.time())

    def visible(self, name: str, user: str) -> dict | None:
        """The video `name` if the account `user` may see it; None as if it did not exist.
        Names are stored in NFC (names.clean_name); the same name typed in another form
        (macOS keyboards and file names give NFD) finds the same video."""
        video = self.index.videos.get(name) or self.index.videos.get(unicodedata.normalize("NFC", name))
        if video is None or not permissions.may_view(self.accounts.user(user), video):
            return None
        return video

    async def admin_only(self, connection: FrameStream, user: str) -> bool:
        if permissions.may_admin(self.accounts.user(user)):
            return True
        await connection.write_frame(Error("forbidden", "Only an admin may see or change the cluster."))
        return False

    async def _status(self, connection: FrameStream, request: GetStatus) -> None:
        if not await self.admin_only(connection, request.user):
            return
        report = status.cluster_report(self, time.time())
        await connection.write_frame(Ok(report))

    # --- background tasks -----------------------------------------------------------------

    async def prune_retired_forever(self) -> None:
        while True:
            await asyncio.sleep(RETIRED_PRUNE_EVERY_S)
            self.prune(time.time())

    def prune(self, now: float) -> None:
        """Forget retired blob ids older than blob_ownership.RETIRED_KEEP_S, and expired
        tokens. An index that cannot be written (its disk full) is pruned next time: the
        error must not end the task, which would take the master down with it."""
        try:
            self.index.ownership.prune_retired(now)
            self.index.users.prune_expired(now)
        except sqlite3.Error as exc:
            log.warning("could not prune the index: %s", exc)

    async def flush_views_forever(self) -> None:
        while True:
            await asyncio.sleep(catalogue.VIEWS_FLUSH_S)
            try:
                self.index.catalogue.flush_views()
            except sqlite3.Error as exc:  # the counts stay in memory for the next try
                log.warning("could not write view counts to the index: %s", exc)
