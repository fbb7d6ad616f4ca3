"""The one binary protocol spoken between web, master and datanodes (sans-IO).

Theory of operation
-------------------
Every internal connection carries a sequence of frames. A frame is::

    u32  body_length   bytes after this field, checked against MAX_FRAME_BYTES first
    u8   message_type  selects one of the frozen dataclasses below
    u32  meta_length   checked against MAX_META_BYTES
    meta               a UTF-8 JSON object holding the message's non-bytes fields
    data               the rest: the message's single `bytes` field, if it has one

Control messages are small JSON objects; bulk bytes (`Chunk.data`) travel raw after the
meta, so a 256 KiB video chunk costs one memcpy rather than a base64 round trip.

This module does no I/O, in the manner of h11: `encode(message)` turns a message into bytes
and a `FrameDecoder` is fed whatever bytes arrived and hands back complete messages. Every
declared length is checked against a named maximum *before* the bytes behind it are
accepted, and every field is type-checked, so a hostile peer can at worst get its own
connection closed with a `RemoteProtocolError`. `stream.py` is the only place where frames
meet sockets.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import typing
from dataclasses import dataclass

# Bulk bytes move in chunks of this size at every hop (web -> master -> datanodes and back).
# 256 KiB keeps per-frame Python overhead small (4096 frames per GiB) while a slow viewer
# pins at most a few chunks of memory per hop.
CHUNK_BYTES = 256 * 1024

# The largest JSON meta a peer may declare. The biggest legitimate one is a full listing;
# block reports travel in chunks far below it (REPORT_CHUNK_ENTRIES).
MAX_META_BYTES = 8 * 1024 * 1024

# A datanode's full block report travels in chunks of at most this many [blob_id, size]
# entries. An entry is ~52 bytes of JSON, so a chunk is ~0.5 MB: 16 times below
# MAX_META_BYTES whatever the sizes, and decoded by the master in a few milliseconds
# between other work. Heartbeat deltas and the master's delete lists carry at most this
# many blob ids too, so no control frame of any size of node comes near the cap.
REPORT_CHUNK_ENTRIES = 10_000

# The most blobs one full report may declare. We promise 1,000,000 blobs per datanode; the
# master holds a node's whole report in memory (~150 bytes an entry, 300 MB at this bound),
# so this is also the most one node can make it buffer. Larger is a protocol error.
MAX_REPORT_BLOBS = 2_000_000

_PREFIX = struct.Struct("!IBI")  # body_length, message_type, meta_length
PREFIX_BYTES = _PREFIX.size
_TYPE_AND_META_LENGTH_BYTES = PREFIX_BYTES - 4

# No frame may declare more than a full meta plus a full chunk of data.
MAX_FRAME_BYTES = _TYPE_AND_META_LENGTH_BYTES + MAX_META_BYTES + CHUNK_BYTES


class ProtocolError(Exception):
    """The byte stream broke the protocol; the connection must be closed."""


class LocalProtocolError(ProtocolError):
    """We were asked to send something the protocol forbids (a bug on our side)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids; close its connection only."""


# --- Messages ---------------------------------------------------------------------------
# Each class is one message type. `TYPE` is its wire code; at most one field is `bytes`
# and travels as the frame's data, the others travel in the JSON meta.


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
    """Stat and read in one round trip: the master answers VideoInfo (the record), then
    streams up to `length` bytes of the video's `part` ('video' or 'poster') from `offset`
    as Chunk* then End, or Error at any point. `length` -1 means to the end; the range is
    clamped to the part's size (see ranges.clamp), so an offset at or past the end reads
    nothing."""

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
    """Store a new blob; Chunk* and End follow, answered by End (size and sha256 stored)."""

    TYPE: typing.ClassVar[int] = 30
    blob_id: str


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
)

MESSAGE_TYPES: dict[int, type] = {cls.TYPE: cls for cls in typing.get_args(Message)}
assert len(MESSAGE_TYPES) == len(typing.get_args(Message)), "duplicate message TYPE codes"


def _field_types(cls: type) -> dict[str, typing.Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


_FIELDS: dict[type, dict[str, typing.Any]] = {cls: _field_types(cls) for cls in MESSAGE_TYPES.values()}


def _data_field(cls: type) -> str | None:
    names = [name for name, kind in _FIELDS[cls].items() if kind is bytes]
    assert len(names) <= 1, f"{cls.__name__} has more than one bytes field"
    return names[0] if names else None


_DATA_FIELD: dict[type, str | None] = {cls: _data_field(cls) for cls in MESSAGE_TYPES.values()}


class _WrongType(Exception):
    """A JSON value is not the type its field declares."""


# What JSON decoding may give for each plain field type. json.loads makes exactly these
# types, so `type(value) in ...` is the check, and a JSON true (a bool) never passes as an
# int: bool is a subclass of int, but not the same type.
_JSON_TYPES: dict[type, tuple[type, ...]] = {float: (int, float)}


def _converter(kind: typing.Any) -> typing.Callable[[object], object]:
    """A function giving a decoded JSON value as the declared `kind`, or raising
    _WrongType. `list[X]` checks every element; `tuple[X, Y]` is a JSON array of exactly
    those types, handed on as a tuple (so a message decodes equal to the one encoded).
    Block reports hold up to REPORT_CHUNK_ENTRIES pairs, so the common shapes are checked
    without a function call per element."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is tuple:
        return _tuple_converter([_converter(arg) for arg in args], args)
    if origin is list:
        return _list_converter(_converter(args[0]), args[0])
    allowed = _JSON_TYPES.get(kind, (kind,))

    def convert_plain(value: object) -> object:
        if type(value) not in allowed:
            raise _WrongType
        return value

    return convert_plain


def _tuple_converter(
    items: list[typing.Callable[[object], object]], args: tuple
) -> typing.Callable[[object], object]:
    plain = [_JSON_TYPES.get(arg, (arg,)) for arg in args] if all(isinstance(a, type) for a in args) else None

    def convert_tuple(value: object) -> object:
        if type(value) is not list or len(value) != len(items):
            raise _WrongType
        if plain is not None:
            for element, allowed in zip(value, plain, strict=True):
                if type(element) not in allowed:
                    raise _WrongType
            return tuple(value)
        return tuple([convert(element) for convert, element in zip(items, value, strict=True)])

    return convert_tuple


def _list_converter(
    item: typing.Callable[[object], object], arg: typing.Any
) -> typing.Callable[[object], object]:
    allowed = _JSON_TYPES.get(arg, (arg,)) if isinstance(arg, type) else None

    def convert_list(value: object) -> object:
        if type(value) is not list:
            raise _WrongType
        if allowed is not None:
            for element in value:
                if type(element) not in allowed:
                    raise _WrongType
            return value
        return [item(element) for element in value]

    return convert_list


_CONVERTERS: dict[type, dict[str, typing.Callable[[object], object]]] = {
    cls: {name: _converter(kind) for name, kind in fields.items() if kind is not bytes}
    for cls, fields in _FIELDS.items()
}


# A Chunk's meta is always the empty object: its frames are made and read without JSON,
# which is most of the per-chunk cost at every hop of a stream.
_EMPTY_META = b"{}"


def encode(message: Message) -> bytes:
    """Serialize one message into a complete frame."""
    cls = type(message)
    if cls is Chunk:
        return _encode_chunk(typing.cast(Chunk, message).data)
    if cls not in _FIELDS:
        raise LocalProtocolError(f"not a protocol message: {cls.__name__}")
    data_field = _DATA_FIELD[cls]
    data = getattr(message, data_field) if data_field else b""
    meta_fields = {name: getattr(message, name) for name in _FIELDS[cls] if name != data_field}
    try:
        meta = json.dumps(meta_fields, separators=(",", ":"), ensure_ascii=False).encode()
    except (UnicodeError, ValueError, TypeError) as exc:
        raise LocalProtocolError(f"{cls.__name__} cannot be encoded: {exc}") from exc
    if len(meta) > MAX_META_BYTES:
        raise LocalProtocolError(f"{cls.__name__} meta is {len(meta)} bytes, over MAX_META_BYTES")
    if len(data) > CHUNK_BYTES:
        raise LocalProtocolError(f"{cls.__name__} data is {len(data)} bytes, over CHUNK_BYTES")
    body_length = _TYPE_AND_META_LENGTH_BYTES + len(meta) + len(data)
    return b"".join((_PREFIX.pack(body_length, cls.TYPE, len(meta)), meta, data))


def chunk_header(data_length: int) -> bytes:
    """Everything of a Chunk frame before its data: a sender may write it and the data as
    two buffers (one vectored write) instead of joining them into a new frame."""
    if data_length > CHUNK_BYTES:
        raise LocalProtocolError(f"Chunk data is {data_length} bytes, over CHUNK_BYTES")
    body_length = _TYPE_AND_META_LENGTH_BYTES + len(_EMPTY_META) + data_length
    return _PREFIX.pack(body_length, Chunk.TYPE, len(_EMPTY_META)) + _EMPTY_META


def _encode_chunk(data: bytes) -> bytes:
    return chunk_header(len(data)) + data


def _decode_body(message_type: int, meta_length: int, body: memoryview) -> Message:
    if message_type == Chunk.TYPE and body[:meta_length] == _EMPTY_META:
        return Chunk(bytes(body[meta_length:]))
    cls = MESSAGE_TYPES.get(message_type)
    if cls is None:
        raise RemoteProtocolError(f"unknown message type {message_type}")
    try:
        meta = json.loads(bytes(body[:meta_length]).decode())
        # A string we could not encode again (a lone surrogate from a "\ud800" escape)
        # would crash whichever handler echoes it; refuse it at the door.
        json.dumps(meta, ensure_ascii=False).encode()
    except (UnicodeError, ValueError, RecursionError) as exc:
        # RecursionError: "[[[[..." nested past Python's stack, well inside MAX_META_BYTES.
        raise RemoteProtocolError(f"{cls.__name__}: meta is not UTF-8 JSON") from exc
    if not isinstance(meta, dict):
        raise RemoteProtocolError(f"{cls.__name__}: meta is not a JSON object")
    data_field = _DATA_FIELD[cls]
    converters = _CONVERTERS[cls]
    if set(meta) != set(converters):
        raise RemoteProtocolError(f"{cls.__name__}: fields {sorted(meta)} != {sorted(converters)}")
    for name, convert in converters.items():
        try:
            meta[name] = convert(meta[name])
        except _WrongType:
            kind = _FIELDS[cls][name]
            shown = kind.__name__ if isinstance(kind, type) else str(kind)
            raise RemoteProtocolError(f"{cls.__name__}.{name} is not {shown}") from None
    data = body[meta_length:]
    if data_field is not None:
        meta[data_field] = bytes(data)
    elif data:
        raise RemoteProtocolError(f"{cls.__name__} carries unexpected data bytes")
    return cls(**meta)


class FrameDecoder:
    """Incremental decoder: `feed()` bytes as they arrive, take messages with `next_frame()`.

    `bytes_needed()` tells a stream adapter how much to read next, so it never reads past
    the current frame and never buffers more than one frame.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._body_length: int | None = None  # known once the length prefix has arrived
        self._whole_body: bytes | None = None  # a body fed in one piece, kept as it came

    def feed(self, data: bytes) -> None:
        """Add received bytes. A bad prefix raises from the next next_frame() or
        bytes_needed() call, after every good frame before it was handed out."""
        if (
            self._body_length is not None
            and len(self._buffer) == PREFIX_BYTES
            and len(data) == self.bytes_needed()
        ):
            # The whole body in one piece after its prefix (what a stream adapter reading
            # bytes_needed() gets): decode it where it is instead of copying it in.
            self._whole_body = data
            return
        self._buffer += data

    def _check_prefix(self) -> None:
        if self._body_length is not None or len(self._buffer) < PREFIX_BYTES:
            return
        body_length, _, meta_length = _PREFIX.unpack_from(self._buffer)
        if body_length > MAX_FRAME_BYTES:
            raise RemoteProtocolError(f"frame of {body_length} bytes exceeds MAX_FRAME_BYTES")
        if meta_length > MAX_META_BYTES:
            raise RemoteProtocolError(f"meta of {meta_length} bytes exceeds MAX_META_BYTES")
        if meta_length > body_length - _TYPE_AND_META_LENGTH_BYTES:
            raise RemoteProtocolError("meta length runs past the end of the frame")
        if body_length - _TYPE_AND_META_LENGTH_BYTES - meta_length > CHUNK_BYTES:
            raise RemoteProtocolError("frame data exceeds CHUNK_BYTES")
        self._body_length = body_length

    def bytes_needed(self) -> int:
        """How many more bytes complete the current frame (or its prefix)."""
        self._check_prefix()
        if self._body_length is None:
            return PREFIX_BYTES - len(self._buffer)
        if self._whole_body is not None:
            return 0
        return max(0, 4 + self._body_length - len(self._buffer))

    def next_frame(self) -> Message | None:
        """Return the next complete message, or None until more bytes are fed."""
        self._check_prefix()
        if self._whole_body is not None:
            return self._take_whole_body()
        if self._body_length is None or len(self._buffer) < 4 + self._body_length:
            return None
        frame_end = 4 + self._body_length
        _, message_type, meta_length = _PREFIX.unpack_from(self._buffer)
        body = memoryview(self._buffer)[PREFIX_BYTES:frame_end]
        try:
            message = _decode_body(message_type, meta_length, body)
        finally:
            body.release()
        del self._buffer[:frame_end]
        self._body_length = None
        return message

    def _take_whole_body(self) -> Message:
        assert self._whole_body is not None  # only called when feed() kept a body
        _, message_type, meta_length = _PREFIX.unpack_from(self._buffer)
        body, self._whole_body = memoryview(self._whole_body), None
        del self._buffer[:PREFIX_BYTES]
        self._body_length = None
        try:
            return _decode_body(message_type, meta_length, body)
        finally:
            body.release()

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as messages."""
        return len(self._buffer) + (len(self._whole_body) if self._whole_body is not None else 0)
