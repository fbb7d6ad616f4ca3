"""The protocol's vocabulary: one frozen dataclass per message type (no I/O, no framing).

Theory of operation
-------------------
Each class is one message type. `TYPE` is its wire code; at most one field is `bytes`
and travels as a frame's data, the others travel in its JSON meta (protocol.py encodes,
decodes and type-checks every field). Web -> master requests come first, then the
datanode <-> master control messages, then master -> datanode blob requests.
`MESSAGE_TYPES` maps wire codes to classes; a duplicate code fails at import.

Callers import these names from `myyoutube.protocol`, which re-exports them with the
framing; this module exists so the vocabulary and the wire format read apart.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field

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
    "Login",
    "Logout",
    "Message",
    "Ok",
    "PurgeOrphans",
    "PutVideo",
    "ReadBlob",
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
    "UpdateVideo",
    "UploadStatus",
    "VideoDetails",
    "VideoInfo",
    "VideoList",
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
class ReadVideo:
    """Stat and read in one round trip: the master answers VideoInfo (the video's name,
    visibility, uploaded_at and parts: what answering HTTP needs), then streams up to
    `length` bytes of the video's `part` ('video' or 'poster') from `offset` as Chunk*
    then End, or Error at any point. `length` -1 means to the end; the range is clamped
    to the part's size (see ranges.clamp), so an offset at or past the end reads nothing."""

    TYPE: typing.ClassVar[int] = 15
    name: str
    part: str
    offset: int
    length: int
    user: str


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


# Web -> master: resumable uploads (tus, codes 60-65). A session holds an open blob on its
# replicas; its bytes grow by appends and become a video at FinishUpload. Every request
# names the session's owner: another account's session is answered as not found.


@dataclass(frozen=True)
class CreateUpload:
    """Open an upload session of `length` bytes: the name is reserved at once (Error
    'exists' if taken) and the quota checked. Ok({"upload": {...}}), the session."""

    TYPE: typing.ClassVar[int] = 60
    user: str
    name: str
    visibility: str
    title: str
    length: int


@dataclass(frozen=True)
class UploadStatus:
    """Ask for a session (its offset, length, name, expiry): Ok({"upload": {...}})."""

    TYPE: typing.ClassVar[int] = 61
    user: str
    upload_id: str


@dataclass(frozen=True)
class AppendUpload:
    """Append to a session at `offset` (its confirmed offset, else Error 'conflict'): once
    the master says Ok, Chunk* and End(size=bytes sent) follow; the answer is
    Ok({"upload": {...}}) once every live replica fsynced them."""

    TYPE: typing.ClassVar[int] = 62
    user: str
    upload_id: str
    offset: int


@dataclass(frozen=True)
class ReadUpload:
    """Read back a session's confirmed bytes: Ok({"size": n}), then Chunk* and End."""

    TYPE: typing.ClassVar[int] = 63
    user: str
    upload_id: str


@dataclass(frozen=True)
class FinishUpload:
    """Make a complete session a video of `content_type` (its blob is the original). After
    Ok, the uploader sends VideoDetails (optional) and End, as after PutVideo's chunks.
    Answered by VideoInfo."""

    TYPE: typing.ClassVar[int] = 64
    user: str
    upload_id: str
    content_type: str


@dataclass(frozen=True)
class TerminateUpload:
    """Drop a session and its partial replicas; Ok."""

    TYPE: typing.ClassVar[int] = 65
    user: str
    upload_id: str


# Web -> master: accounts (codes 50-59). Passwords travel only inside the cluster's
# authenticated connections and are never logged; tokens are 32 random bytes in hex, of
# which the master keeps only a SHA-256.


@dataclass(frozen=True)
class Login:
    """Check a password and open a session; `kind` is 'browser-session' or 'api-token'.
    Answered by Ok({"token": ..., "user": {...}}) or Error('refused'), the same refusal
    for an unknown account and a wrong password."""

    TYPE: typing.ClassVar[int] = 50
    username: str
    password: str
    kind: str


@dataclass(frozen=True)
class WhoIs:
    """Which account does this token sign in? Ok({"user": {...}}) or Error('unauthenticated')."""

    TYPE: typing.ClassVar[int] = 51
    token: str


@dataclass(frozen=True)
class Logout:
    """Revoke a token (at once, for every web front end); Ok even if it was unknown."""

    TYPE: typing.ClassVar[int] = 52
    token: str


@dataclass(frozen=True)
class AddUser:
    """An admin (`user`) creates an account; `quota_bytes` -1 means the master's default.
    Ok({"user": {...}}), or Error('exists'/'bad_request'/'forbidden')."""

    TYPE: typing.ClassVar[int] = 53
    user: str
    username: str
    password: str
    role: str
    quota_bytes: int


@dataclass(frozen=True)
class ListUsers:
    """An admin asks for every account: Ok({"users": [{...}, ...]})."""

    TYPE: typing.ClassVar[int] = 54
    user: str


@dataclass(frozen=True)
class RemoveUser:
    """An admin removes an account; its sessions end, its videos stay (owned by the name)."""

    TYPE: typing.ClassVar[int] = 55
    user: str
    username: str


@dataclass(frozen=True)
class SetPassword:
    """An admin, or the account itself, sets a new password; every session of the
    account ends."""

    TYPE: typing.ClassVar[int] = 56
    user: str
    username: str
    password: str


@dataclass(frozen=True)
class SetVisibility:
    """The owner or an admin changes who may see a video; answered by VideoInfo."""

    TYPE: typing.ClassVar[int] = 57
    user: str
    name: str
    visibility: str


@dataclass(frozen=True)
class EnsureAdmin:
    """A web front end started with --admin-password-file: create the `admin` account
    with this password, or reset it if it has another. Ok({"changed": bool})."""

    TYPE: typing.ClassVar[int] = 58
    password: str


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


# Datanode <-> master, on the datanode's control connection. Every datanode frame
# (Register, Heartbeat, BlockReportChunk) is answered by one Commands.

# A blob held by a datanode, as a block report lists it: (blob_id, size in bytes).
BlobEntry = tuple[str, int]


@dataclass(frozen=True)
class Register:
    """Datanode -> master, first on its control connection: who it is and its space.
    `incarnation` is new each time the datanode process starts, so the master knows
    whether the reports it applied still describe this process's disk."""

    TYPE: typing.ClassVar[int] = 20
    node_id: str  # stable across restarts and address changes: the node's identity
    address: str  # where the master and peers reach it now
    capacity_bytes: int
    used_bytes: int
    incarnation: str


@dataclass(frozen=True)
class Heartbeat:
    """Datanode -> master, every interval: alive, space, and what changed on its disk
    since report `base_seq`, the last one the master acknowledged. `seq` numbers this
    report; it grows with every report (full or not) of one incarnation."""

    TYPE: typing.ClassVar[int] = 21
    capacity_bytes: int
    used_bytes: int
    seq: int
    base_seq: int
    added: list[BlobEntry]
    removed: list[str]
    corrupt: list[str]
    # Transcoding (master/jobs.py): how many jobs this node may run at once (its
    # --transcode-slots), the jobs running here with their progress (0..1; each renews
    # the job's lease) and jobs that failed since the last heartbeat, with the reason.
    transcode_slots: int = 0
    transcoding: list[tuple[str, float]] = field(default_factory=list)
    transcode_failures: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Commands:
    """Master -> datanode, answering each datanode frame: blobs to delete, the last report
    the master applied, whether it wants a full block report now, and the heartbeat
    interval the cluster runs at (configuration comes from the master)."""

    TYPE: typing.ClassVar[int] = 22
    delete_blobs: list[str]
    acked_seq: int
    full_report: bool
    heartbeat_s: float  # the master's interval, which every datanode adopts
    # Transcode jobs leased to this node (each a dict: job_id, video, source_blob,
    # source_size, rung, holds_source) and job ids it must stop (deleted, re-leased).
    transcode_jobs: list[dict] = field(default_factory=list)
    cancel_jobs: list[str] = field(default_factory=list)
    # Newer metadata sidecars for blobs the node holds (sidecars.py), at most
    # SIDECARS_PER_COMMANDS; the node keeps the highest version of each.
    sidecars: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class BlockReportChunk:
    """Datanode -> master: part of full report `seq`, which lists `total` blobs in all.
    Chunks follow each other until the one marked `final`."""

    TYPE: typing.ClassVar[int] = 24
    seq: int
    total: int
    blobs: list[BlobEntry]
    final: bool


# Master -> datanode, on a data connection.


@dataclass(frozen=True)
class WriteBlob:
    """Store a new blob; Chunk* and End follow, answered by End (size and sha256 stored).
    `sidecar` (if not empty) is the blob's metadata, published with it."""

    TYPE: typing.ClassVar[int] = 30
    blob_id: str
    sidecar: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ReadBlob:
    """Stream `length` bytes of a blob from `offset`, checksums verified: Chunk* then End."""

    TYPE: typing.ClassVar[int] = 31
    blob_id: str
    offset: int
    length: int


@dataclass(frozen=True)
class DeleteBlob:
    """Remove a blob's files; answered by Ok even if it was already gone."""

    TYPE: typing.ClassVar[int] = 32
    blob_id: str


# Datanode -> master, on a connection of their own (codes 70-79): a transcoding node
# fetches a job's source it does not hold and stores the rendition it made.


@dataclass(frozen=True)
class FetchSource:
    """Stream the source video of a job leased to the asking node: answered by
    Ok({"size": n}), then Chunk* and End, or Error."""

    TYPE: typing.ClassVar[int] = 70
    job_id: str


@dataclass(frozen=True)
class StoreRendition:
    """Store the rendition a leased job made: `size` bytes follow as Chunk* and End once
    the master says Ok; `fragment_index` is its media.FragmentIndex.to_json(). Answered
    by Ok once replicated and committed (the job is then done), or Error."""

    TYPE: typing.ClassVar[int] = 71
    job_id: str
    size: int
    fragment_index: str


# Web -> master: what the HLS playlists of a video are made from.


@dataclass(frozen=True)
class GetRenditions:
    """The fragment indexes of a video's finished renditions: answered by VideoInfo,
    then Ok({"indexes": {height: FragmentIndex JSON}}), or Error('not_found')."""

    TYPE: typing.ClassVar[int] = 72
    name: str
    user: str


# Master or datanode -> datanode (codes 95-99): write pipelines and their recovery.


@dataclass(frozen=True)
class ChainWriteBlob:
    """Store a new blob and pass it on to `downstream` (datanode addresses, in order): a
    write pipeline. Answered by Ok {"chain": nodes in it}, then Chunk* and End, answered
    by Ok {"stored": nodes that stored it, "failed": {node: why}, "size", "sha256"}."""

    TYPE: typing.ClassVar[int] = 95
    blob_id: str
    downstream: list[str]


@dataclass(frozen=True)
class ChainResumeBlob:
    """Pipeline recovery (chain_acks.py): reopen this node's partial copy of a chain write
    at `offset` (bytes past it are dropped) and go on as ChainWriteBlob does, passing the
    resume on to `downstream`. Only a blob this node was chain-writing a short while ago
    (datanode/pipeline.py keeps it for PARKED_KEEP_S) can be resumed; Error 'not_found' or
    'short' otherwise."""

    TYPE: typing.ClassVar[int] = 96
    blob_id: str
    offset: int
    downstream: list[str]


@dataclass(frozen=True)
class ChainAck:
    """Up a write pipeline, between its Ok and its final answer: every byte before
    `offset` is written by the sender and by every node behind it that is still in the
    chain; `lost` names the nodes dropped behind the sender so far (each the one that
    failed, not those cut off behind it)."""

    TYPE: typing.ClassVar[int] = 97
    offset: int
    lost: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AppendBlob:
    """Master -> datanode: append to an open (resumable) blob from `offset`; bytes it
    holds past `offset` were never confirmed and are dropped, and offset 0 creates it.
    After Ok: Chunk* then End(size=the new length); the node fsyncs and answers
    End(size, ''). Error 'short' if it holds fewer than `offset` bytes."""

    TYPE: typing.ClassVar[int] = 66
    blob_id: str
    offset: int


@dataclass(frozen=True)
class SealBlob:
    """Master -> datanode: publish an open blob of exactly `size` bytes as a complete one
    (idempotent); answered by End(size, sha256)."""

    TYPE: typing.ClassVar[int] = 67
    blob_id: str
    size: int


# Recovery (codes 80-89): rebuilding the index from what the datanodes hold.


@dataclass(frozen=True)
class ListSidecars:
    """Master -> datanode, on a data connection: send the metadata sidecar of every blob
    held, as SidecarBatch frames until the one marked `final`."""

    TYPE: typing.ClassVar[int] = 80


@dataclass(frozen=True)
class SidecarBatch:
    """Datanode -> master: some sidecars (each a dict, see master/sidecars.py), at most
    SIDECARS_PER_BATCH of them and SIDECAR_BATCH_BYTES of JSON; `held_without` counts blobs held
    without a sidecar among those this batch covers."""

    TYPE: typing.ClassVar[int] = 81
    sidecars: list[dict]
    held_without: int
    final: bool


@dataclass(frozen=True)
class BackupIndex:
    """Web -> master, for an admin: a consistent copy of the index, streamed as Chunk*
    then End (size and sha256)."""

    TYPE: typing.ClassVar[int] = 82
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
    | BackupIndex
)

MESSAGE_TYPES: dict[int, type] = {cls.TYPE: cls for cls in typing.get_args(Message)}
assert len(MESSAGE_TYPES) == len(typing.get_args(Message)), "duplicate message TYPE codes"
