"""An asyncio client of the master, used by the web front end, tools and tests.

Theory of operation
-------------------
Requests travel on pooled, already-authenticated connections (pool.py): a call leases a
connection, sends one request, reads the answer and gives the connection back; the
master's `Error` frames surface as `RequestFailed(code, message)`.

Uploads and reads are streams (master_streams.py). `start_upload` opens an upload and
returns an `Upload` to which bytes are written; `open_read` stats and opens a read in one
round trip: the master answers with what the read needs of the video's record (name,
visibility, uploaded_at, parts), then the `VideoRead` yields its bytes. A client given
`DirectReads` (the web front end's) asks the master where the bytes are instead, and
reads them from the datanodes itself (direct_reads.py).

A client acts for one account (`user`, '' for anonymous), named in every request about
videos or the cluster; `as_user(name)` gives a client for another account on the same
pool, which is how the web front end asks for each signed-in visitor.
"""

from __future__ import annotations

import builtins
import copy
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from myyoutube import links, listing, protocol, read_plan
from myyoutube.account_messages import KEEP_QUOTA
from myyoutube.direct_reads import DirectRead, DirectReads, FailureReports
from myyoutube.master_streams import MASTER_SILENCE_S, Upload, VideoRead
from myyoutube.permissions import PUBLIC, User
from myyoutube.pool import ConnectionPool, Lease
from myyoutube.protocol import (
    AddUser,
    AppendUpload,
    BackupIndex,
    Chunk,
    CountView,
    CreateUpload,
    DeleteVideo,
    End,
    EnsureAdmin,
    FinishUpload,
    GetRenditions,
    GetStatus,
    ListUsers,
    ListVideos,
    LocateVideo,
    Login,
    Logout,
    Ok,
    PurgeOrphans,
    PutVideo,
    ReadFailed,
    ReadUpload,
    ReadVideo,
    RemoveUser,
    SetPassword,
    SetVisibility,
    StatVideo,
    TerminateUpload,
    UpdateUser,
    UpdateVideo,
    UploadStatus,
    VideoInfo,
    VideoList,
    VideoLocation,
    WhoIs,
)
from myyoutube.quietlog import QuietLog
from myyoutube.replica_reads import ReplicationFailed
from myyoutube.stream import RequestFailed
from myyoutube.tls_contexts import Tls

__all__ = ["MasterClient", "OpenRead", "RequestFailed"]

M = TypeVar("M", bound=protocol.Message)

quiet = QuietLog(logging.getLogger(__name__))

# A read under way, through the master or from the datanodes: both take their bytes with
# next_chunk() and end with close().
OpenRead = VideoRead | DirectRead

# Waiting for the answer to PutVideo: the master opens replicas first, each allowed a
# handshake and a stall period, replacing any that refuse.
OPEN_UPLOAD_TIMEOUT_S = 30.0

# Idle connections a client keeps to the master. A web front end runs dozens of streams
# and uploads at once; with fewer kept than it uses in a busy second, every burst would
# close and reopen connections (and leave sockets in TIME_WAIT).
MAX_IDLE_TO_MASTER = 128


class MasterClient:
    def __init__(
        self, host: str, port: int, tls: Tls | None, user: str = "", direct: DirectReads | None = None
    ) -> None:
        """A client of the master at host:port; `tls` is the caller's certificate (a web
        one), None on an unencrypted development cluster; `user` the account requests are
        made for ('' is anonymous); `direct`, if given, reads videos' bytes from the
        datanodes (direct_reads.py) rather than through the master."""
        self.host, self.port = host, port
        self.user = user
        self.direct = direct
        # Failed direct reads, told to the master in the background (shared by as_user copies).
        self._failure_reports = FailureReports(self._tell_read_failed)
        self.pool = ConnectionPool(
            lambda: links.connect(host, port, tls, expect_role="master"),
            MAX_IDLE_TO_MASTER,
            links.RevokedPeers(tls) if tls is not None else None,
        )

    def as_user(self, user: User | str | None) -> MasterClient:
        """A client acting for `user` (None: anonymous) on this client's pool. Close only
        the original: they share their connections."""
        name = user.name if isinstance(user, User) else (user or "")
        if name == self.user:  # e.g. an anonymous viewer's: every stream asks for one
            return self
        acting = copy.copy(self)
        acting.user = name
        return acting

    async def _ask(self, request: protocol.Message, *answers: type[M]) -> M:
        async def attempt(lease: Lease) -> M:
            await lease.connection.write_frame(request)
            answer = await lease.connection.read_expected(*answers)
            lease.done()
            return answer

        return await self.pool.call(attempt)

    async def start_upload(
        self, name: str, content_type: str, visibility: str = PUBLIC, size: int = -1
    ) -> Upload:
        """Reserve a name and open replicas; RequestFailed if refused (exists, bad_name,
        over_quota...). `size` is the announced size, -1 if unknown."""
        request = PutVideo(
            name=name, content_type=content_type, user=self.user, visibility=visibility, size=size
        )
        return await self._open_upload(request, VideoInfo)

    async def _open_upload(
        self, request: protocol.Message, answer: type[VideoInfo | Ok], offset: int = 0
    ) -> Upload:
        """Send a request the master answers Ok to before bytes follow; the Upload of
        bytes going to `offset` of the blob."""

        async def attempt(lease: Lease) -> None:
            await lease.connection.write_frame(request)
            await lease.connection.read_expected(Ok, timeout=OPEN_UPLOAD_TIMEOUT_S)

        lease, _ = await self.pool.start(attempt)
        return Upload(self.pool, lease, answer, offset)

    # --- resumable uploads (tus sessions kept by the master) -------------------------------

    async def create_upload(self, name: str, length: int, visibility: str = PUBLIC, title: str = "") -> dict:
        """Open a resumable upload of `length` bytes: the session (id, offset, expires_at...)."""
        request = CreateUpload(user=self.user, name=name, visibility=visibility, title=title, length=length)
        return (await self._ask(request, Ok)).info["upload"]

    async def upload_status(self, upload_id: str) -> dict:
        return (await self._ask(UploadStatus(user=self.user, upload_id=upload_id), Ok)).info["upload"]

    async def append_upload(self, upload_id: str, offset: int) -> Upload:
        """Append to a session at `offset`: write the bytes, then `finish()` gives the
        session with its new offset. RequestFailed('conflict') if the offset is not its own."""
        return await self._open_upload(
            AppendUpload(user=self.user, upload_id=upload_id, offset=offset), Ok, offset
        )

    async def finish_upload(self, upload_id: str, content_type: str) -> Upload:
        """Commit a complete session: `finish(details, poster)` on the answer gives the
        video, whose original is the session's blob."""
        request = FinishUpload(user=self.user, upload_id=upload_id, content_type=content_type)
        return await self._open_upload(request, VideoInfo)

    async def read_upload(self, upload_id: str) -> AsyncIterator[bytes]:
        """Yield a session's confirmed bytes, in chunks."""

        async def attempt(lease: Lease) -> int:
            await lease.connection.write_frame(ReadUpload(user=self.user, upload_id=upload_id))
            return (await lease.connection.read_expected(Ok, timeout=MASTER_SILENCE_S)).info["size"]

        lease, size = await self.pool.start(attempt)
        read = VideoRead(self.pool, lease, {}, 0, size)
        try:
            async for data in read:
                yield data
        finally:
            read.close()

    async def terminate_upload(self, upload_id: str) -> None:
        await self._ask(TerminateUpload(user=self.user, upload_id=upload_id), Ok)

    async def open_read(
        self, name: str, offset: int, length: int, part: str = "video", reuse: bool = True
    ) -> OpenRead:
        """Stat a video and start reading its `part` (`length` -1: to the end): from the
        datanodes if this client reads directly (with its first chunk in hand), else
        through the master, in one round trip. RequestFailed('not_found') if there is no
        such video or part. Without `reuse`, a direct read asks the master where the part
        is even if it answered a moment ago (location_cache.py): for a caller holding a
        record it has just been given, whose bytes the read must match."""
        if self.direct is None:
            return await self._open_relayed(name, offset, length, part)

        def locate() -> Awaitable[VideoLocation]:
            return self._ask(LocateVideo(name=name, part=part, user=self.user), VideoLocation)

        try:
            key = (self.user, name, part)
            report = self._failure_reports.report
            return await self.direct.open_part(key, locate, offset, length, report, reuse)
        except ReplicationFailed as exc:
            quiet.warning("cannot read %s from the datanodes (%s); reading it through the master", name, exc)
            return await self._open_relayed(name, offset, length, part)

    async def _change(self, request: protocol.Message, *answers: type[M]) -> M:
        """`_ask` for a request that changes a video or an account: afterwards, where
        parts are and who may read them is asked of the master anew. Not after a refusal
        (an Error: nothing changed), or anyone could empty the cache with requests the
        master refuses; after any other failure the change may have been made."""
        refused = False
        try:
            return await self._ask(request, *answers)
        except RequestFailed:
            refused = True
            raise
        finally:
            if not refused and self.direct is not None:
                self.direct.locations.forget_all()

    async def _tell_read_failed(self, node: str, why: str) -> None:
        await self._ask(ReadFailed(node=node, why=why), Ok)

    async def _open_relayed(self, name: str, offset: int, length: int, part: str) -> VideoRead:
        async def attempt(lease: Lease) -> dict:
            await lease.connection.write_frame(
                ReadVideo(name=name, part=part, offset=offset, length=length, user=self.user)
            )
            return (await lease.connection.read_expected(VideoInfo, timeout=MASTER_SILENCE_S)).video

        lease, video = await self.pool.start(attempt)
        size = read_plan.part_size(video, part)
        start, count = read_plan.clamp(offset, length, size)
        return VideoRead(self.pool, lease, video, start, count)

    async def read(self, name: str, offset: int, length: int, part: str = "video") -> AsyncIterator[bytes]:
        """Yield the bytes [offset, offset+length) of a video (or its poster), in chunks."""
        read = await self.open_read(name, offset, length, part)
        try:
            while data := await read.next_chunk():
                yield data
        finally:
            read.close()

    async def renditions(self, name: str) -> tuple[dict, dict[str, str]]:
        """A video's record and its renditions' fragment indexes (height -> JSON)."""
        request = GetRenditions(name=name, user=self.user)

        async def attempt(lease: Lease) -> tuple[dict, dict[str, str]]:
            await lease.connection.write_frame(request)
            video = (await lease.connection.read_expected(VideoInfo)).video
            indexes = (await lease.connection.read_expected(Ok)).info["indexes"]
            lease.done()
            return video, indexes

        return await self.pool.call(attempt)

    async def stat(self, name: str) -> dict:
        return (await self._ask(StatVideo(name=name, user=self.user), VideoInfo)).video

    async def list_page(
        self, query: str = "", sort: str = "", cursor: str = "", limit: int = listing.DEFAULT_PAGE_LIMIT
    ) -> VideoList:
        """One page of videos (a search if `query`), and the cursor of the next ('' if none)."""
        request = ListVideos(query=query, sort=sort, cursor=cursor, limit=limit, user=self.user)
        return await self._ask(request, VideoList)

    async def list(self, query: str = "", sort: str = "") -> list[dict]:
        """Every video listed (or found), page after page."""
        videos: list[dict] = []
        cursor = ""
        while True:
            page = await self.list_page(query, sort, cursor, listing.MAX_PAGE_LIMIT)
            videos += page.videos
            if not page.next:
                return videos
            cursor = page.next

    async def update_video(self, name: str, title: str | None = None, description: str | None = None) -> dict:
        """Change a video's title and/or description (None keeps it); its updated record."""
        if title is None or description is None:
            current = await self.stat(name)
            title = current["title"] if title is None else title
            description = current["description"] if description is None else description
        request = UpdateVideo(name=name, title=title, description=description, user=self.user)
        return (await self._ask(request, VideoInfo)).video

    async def count_view(self, name: str, viewer: str) -> dict:
        """Report that `viewer` started watching `name`: {"views": count, "counted": bool}."""
        return (await self._ask(CountView(name=name, viewer=viewer, user=self.user), Ok)).info

    async def delete(self, name: str) -> None:
        await self._change(DeleteVideo(name=name, user=self.user), Ok)

    async def set_visibility(self, name: str, visibility: str) -> dict:
        request = SetVisibility(user=self.user, name=name, visibility=visibility)
        return (await self._change(request, VideoInfo)).video

    async def purge_orphans(self) -> int:
        """Have the master delete every blob its index does not know; how many."""
        return (await self._ask(PurgeOrphans(user=self.user), Ok)).info["purged"]

    async def backup_index(self) -> AsyncIterator[bytes]:
        """Yield a consistent copy of the master's index (an admin's request), in chunks;
        RequestFailed if the copy did not arrive whole."""
        lease = await self.pool.acquire()
        try:
            await lease.connection.write_frame(BackupIndex(user=self.user))
            digest, size = hashlib.sha256(), 0
            while True:
                message = await lease.connection.read_expected(Chunk, End, timeout=MASTER_SILENCE_S)
                if isinstance(message, End):
                    break
                digest.update(message.data)
                size += len(message.data)
                yield message.data
            if (message.size, message.sha256) != (size, digest.hexdigest()):
                raise RequestFailed("checksum", "The index backup arrived damaged; try again.")
            lease.done()
        finally:
            self.pool.release(lease)

    async def status(self) -> dict:
        return (await self._ask(GetStatus(user=self.user), Ok)).info

    # --- accounts -------------------------------------------------------------------------

    async def login(self, username: str, password: str, kind: str) -> tuple[str, User]:
        """(token, account) for a correct password; RequestFailed('refused') otherwise."""
        info = (await self._ask(Login(username=username, password=password, kind=kind), Ok)).info
        return info["token"], User.from_dict(info["user"])

    async def who_is(self, token: str) -> User:
        """The account a token signs in; RequestFailed('unauthenticated') if none."""
        return User.from_dict((await self._ask(WhoIs(token=token), Ok)).info["user"])

    async def logout(self, token: str) -> None:
        await self._ask(Logout(token=token), Ok)

    async def add_user(
        self, username: str, password: str, role: str, quota_bytes: int = -1, current_password: str = ""
    ) -> dict:
        """Add an account; an admin one takes the asker's `current_password` too."""
        request = AddUser(
            user=self.user,
            username=username,
            password=password,
            role=role,
            quota_bytes=quota_bytes,
            current_password=current_password,
        )
        return (await self._ask(request, Ok)).info["user"]

    async def list_users(self) -> builtins.list[dict]:
        return (await self._ask(ListUsers(user=self.user), Ok)).info["users"]

    async def remove_user(self, username: str, current_password: str = "") -> None:
        """Remove an account; an admin one takes the asker's `current_password` too."""
        # A change: whose videos may be seen, and by whom.
        await self._change(
            RemoveUser(user=self.user, username=username, current_password=current_password), Ok
        )

    async def update_user(
        self, username: str, role: str = "", quota_bytes: int = KEEP_QUOTA, current_password: str = ""
    ) -> dict:
        """Change an account's role ('' keeps it) and quota (KEEP_QUOTA keeps it, -1: the
        master's default); the account as it is now. An admin account, or one made admin,
        takes the asker's `current_password` too."""
        request = UpdateUser(
            user=self.user,
            username=username,
            role=role,
            quota_bytes=quota_bytes,
            current_password=current_password,
        )
        return (await self._change(request, Ok)).info["user"]  # a role decides what its account may see

    async def set_password(self, username: str, password: str, current_password: str = "") -> None:
        """Set `username`'s password; one's own, or another admin's, takes the asker's
        `current_password` too."""
        await self._ask(
            SetPassword(
                user=self.user, username=username, password=password, current_password=current_password
            ),
            Ok,
        )

    async def ensure_admin(self, password: str) -> bool:
        """Create or reset the admin account; whether anything changed."""
        return (await self._ask(EnsureAdmin(password=password), Ok)).info["changed"]

    def close(self) -> None:
        self.pool.close()
        if self.direct is not None:
            self.direct.close()
