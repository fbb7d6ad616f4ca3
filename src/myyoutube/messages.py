"""The protocol's vocabulary: one frozen dataclass per message type (no I/O, no framing).

Theory of operation
-------------------
Each class is one message type. `TYPE` is its wire code; at most one field is `bytes`
and travels as a frame's data, the others travel in its JSON meta (protocol.py encodes,
decodes and type-checks every field). This module holds the messages every connection
speaks (Error, Ok, Keepalive, Chunk, End) and the web's requests about videos; families
of their own live beside it: account_messages.py (sign-in and accounts),
read_messages.py (reading a video's bytes), resumable_messages.py (tus uploads) and
cluster_messages.py (datanodes and the master, blobs between nodes). `Message` is the
union of them all and `MESSAGE_TYPES` maps wire codes to classes; a duplicate code fails
at import.

Callers import these names from `myyoutube.protocol`, which re-exports them with the
framing; this module exists so the vocabulary and the wire format read apart.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

from myyoutube.account_messages import (
    AddUser,
    EnsureAdmin,
    ListUsers,
    Login,
    Logout,
    RemoveUser,
    SetPassword,
    SetVisibility,
    UpdateUser,
    WhoIs,
)
from myyoutube.cluster_messages import (
    AppendBlob,
    BackupIndex,
    BlobEntry,
    BlockReportChunk,
    ChainAck,
    ChainResumeBlob,
    ChainWriteBlob,
    Commands,
    DeleteBlob,
    FetchSource,
    Heartbeat,
    ListSidecars,
    PutSidecars,
    ReadBlob,
    Register,
    SealBlob,
    SidecarBatch,
    StoreRendition,
    WriteBlob,
)
from myyoutube.read_messages import LocateVideo, OpenLocalBlob, ReadFailed, ReadVideo, VideoLocation
from myyoutube.resumable_messages import (
    AppendUpload,
    CreateUpload,
    FinishUpload,
    ReadUpload,
    TerminateUpload,
    UploadStatus,
)

__all__ = [
    "MESSAGE_TYPES",
    "AddUser",
    "AppendBlob",
    "AppendUpload",
    "BackupIndex",
    "BlobEntry",
    "BlockReportChunk",
    "ChainAck",
    "ChainResumeBlob",
    "ChainWriteBlob",
    "Chunk",
    "Commands",
    "CountView",
    "CreateUpload",
    "DeleteBlob",
    "DeleteVideo",
    "End",
    "EnsureAdmin",
    "Error",
    "FetchSource",
    "FinishUpload",
    "GetRenditions",
    "GetStatus",
    "Heartbeat",
    "Keepalive",
    "ListSidecars",
    "ListUsers",
    "ListVideos",
    "LocateVideo",
    "Login",
    "Logout",
    "Message",
    "Ok",
    "OpenLocalBlob",
    "PurgeOrphans",
    "PutSidecars",
    "PutVideo",
    "ReadBlob",
    "ReadFailed",
    "ReadUpload",
    "ReadVideo",
    "Register",
    "RemoveUser",
    "SealBlob",
    "SetPassword",
    "SetVisibility",
    "SidecarBatch",
    "StatVideo",
    "StoreRendition",
    "TerminateUpload",
    "UpdateUser",
    "UpdateVideo",
    "UploadStatus",
    "VideoDetails",
    "VideoInfo",
    "VideoList",
    "VideoLocation",
    "WhoIs",
    "WriteBlob",
]


@dataclass(frozen=True)
class Error:
    """Either direction: the request failed. `code` is machine-readable, `message` human."""

    TYPE: typing.ClassVar[int] = 4
    code: str
    message: str


@dataclass(frozen=True)
class Ok:
    """A request that needs no answer beyond success."""

    TYPE: typing.ClassVar[int] = 5
    info: dict


@dataclass(frozen=True)
class Keepalive:
    """Either direction, while a request is in progress and the sender has nothing else to
    say yet (a datanode waiting on its disk, a master failing over): proof of life, so the
    receiver's silence timer can be short without cutting off a slow but healthy peer."""

    TYPE: typing.ClassVar[int] = 8


@dataclass(frozen=True)
class Chunk:
    """A piece of a blob or video, at most CHUNK_BYTES, in order."""

    TYPE: typing.ClassVar[int] = 6
    data: bytes


@dataclass(frozen=True)
class End:
    """The end of a chunk stream. `sha256` is hex of everything sent, or '' if unknown."""

    TYPE: typing.ClassVar[int] = 7
    size: int
    sha256: str


# Web -> master. Requests about videos and the cluster carry `user`: the account the web
# front end signed the request in as ('' for an anonymous visitor). The master decides
# what that account may do (permissions.py) before it acts.


@dataclass(frozen=True)
class PutVideo:
    """Start an upload of a named video; Chunk* and End follow once the master says Ok.
    `visibility` is one of permissions.VISIBILITIES; `size` the bytes announced (-1 if
    unknown), so an upload over the user's quota is refused before its first byte."""

    TYPE: typing.ClassVar[int] = 10
    name: str
    content_type: str
    user: str
    visibility: str
    size: int


@dataclass(frozen=True)
class ListVideos:
    """Ask for one page of committed videos: `query` '' lists all, else searches titles,
    descriptions and names. `sort` is one of listing.SORT_NAMES or '' (newest, or
    relevance for a search); `cursor` is a page's `next` ('' for the first page)."""

    TYPE: typing.ClassVar[int] = 11
    query: str
    sort: str
    cursor: str
    limit: int
    user: str


@dataclass(frozen=True)
class VideoList:
    """Answer to ListVideos: video dicts (name, title, size, uploaded_at, views, ...; in a
    search also title_highlight) and the cursor of the next page, '' after the last."""

    TYPE: typing.ClassVar[int] = 12
    videos: list
    next: str


@dataclass(frozen=True)
class StatVideo:
    """Ask for one video's record; answered by VideoInfo or Error('not_found')."""

    TYPE: typing.ClassVar[int] = 13
    name: str
    user: str


@dataclass(frozen=True)
class VideoInfo:
    """One video's public record (name, size, sha256, content_type, uploaded_at, ...)."""

    TYPE: typing.ClassVar[int] = 14
    video: dict


@dataclass(frozen=True)
class VideoDetails:
    """Sent by the uploader after the last Chunk, before End: what the file turned out to
    be (duration_s, width, height, codec, bitrate, remuxed) and a JPEG poster (may be b'')."""

    TYPE: typing.ClassVar[int] = 18
    extra: dict
    poster: bytes


@dataclass(frozen=True)
class DeleteVideo:
    """Remove a video from the index and, eventually, from every datanode."""

    TYPE: typing.ClassVar[int] = 16
    name: str
    user: str


@dataclass(frozen=True)
class GetStatus:
    """Ask for the cluster's status (datanodes, replication queue, totals)."""

    TYPE: typing.ClassVar[int] = 17
    user: str


@dataclass(frozen=True)
class PurgeOrphans:
    """An operator's word: blobs the datanodes hold that the index never knew are garbage;
    delete them. Answered by Ok({"purged": count})."""

    TYPE: typing.ClassVar[int] = 19
    user: str


@dataclass(frozen=True)
class UpdateVideo:
    """Set a video's title and description (both, as they are to be); answered by
    VideoInfo, or Error('not_found') or Error('bad_request') with the reason."""

    TYPE: typing.ClassVar[int] = 40
    name: str
    title: str
    description: str
    user: str


@dataclass(frozen=True)
class CountView:
    """A viewer started watching a video; the master counts it unless this viewer was
    counted for it recently. Answered by Ok({"views": count, "counted": bool})."""

    TYPE: typing.ClassVar[int] = 41
    name: str
    viewer: str
    user: str


# Web -> master: what the HLS playlists of a video are made from.


@dataclass(frozen=True)
class GetRenditions:
    """The fragment indexes of a video's finished renditions: answered by VideoInfo,
    then Ok({"indexes": {height: FragmentIndex JSON}}), or Error('not_found')."""

    TYPE: typing.ClassVar[int] = 72
    name: str
    user: str


Message: typing.TypeAlias = (
    Error
    | Ok
    | Keepalive
    | Chunk
    | End
    | PutVideo
    | ListVideos
    | VideoList
    | StatVideo
    | VideoInfo
    | VideoDetails
    | ReadVideo
    | DeleteVideo
    | GetStatus
    | PurgeOrphans
    | UpdateVideo
    | CountView
    | Login
    | WhoIs
    | Logout
    | AddUser
    | ListUsers
    | RemoveUser
    | SetPassword
    | UpdateUser
    | SetVisibility
    | EnsureAdmin
    | Register
    | Heartbeat
    | Commands
    | BlockReportChunk
    | WriteBlob
    | ReadBlob
    | DeleteBlob
    | FetchSource
    | StoreRendition
    | GetRenditions
    | LocateVideo
    | VideoLocation
    | ReadFailed
    | OpenLocalBlob
    | ChainWriteBlob
    | ChainResumeBlob
    | ChainAck
    | CreateUpload
    | UploadStatus
    | AppendUpload
    | ReadUpload
    | FinishUpload
    | TerminateUpload
    | AppendBlob
    | SealBlob
    | ListSidecars
    | SidecarBatch
    | PutSidecars
    | BackupIndex
)

MESSAGE_TYPES: dict[int, type] = {cls.TYPE: cls for cls in typing.get_args(Message)}
assert len(MESSAGE_TYPES) == len(typing.get_args(Message)), "duplicate message TYPE codes"
