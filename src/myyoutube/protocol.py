"""The one binary protocol spoken between web, master and datanodes (sans-IO).

Theory of operation
-------------------
Every internal connection carries a sequence of frames. A frame is::

    u32  body_length   bytes after this field, checked against MAX_FRAME_BYTES first
    u8   message_type  selects one of the frozen dataclasses of messages.py
    u32  meta_length   checked against MAX_META_BYTES
    meta               a UTF-8 JSON object holding the message's non-bytes fields
    data               the rest: the message's single `bytes` field, if it has one

Control messages are small JSON objects; bulk bytes (`Chunk.data`) travel raw after the
meta, so a 256 KiB video chunk costs one memcpy rather than a base64 round trip.

Which fields each message has, and how a decoded JSON value is checked against its
field's type, is message_fields.py.

This module does no I/O, in the manner of h11: `encode(message)` turns a message into bytes
and a `FrameDecoder` is fed whatever bytes arrived and hands back complete messages (a
stream adapter may instead let the socket write into the decoder's own buffers). Every
declared length is checked against a named maximum *before* the bytes behind it are
accepted, and every field is type-checked, so a hostile peer can at worst get its own
connection closed with a `RemoteProtocolError`. `stream.py` is the only place where frames
meet sockets.
"""

from __future__ import annotations

import collections
import json
import re
import struct
import typing

# Bulk bytes move in chunks of this size at every hop (web -> master -> datanodes and back).
# 256 KiB keeps per-frame Python overhead small (4096 frames per GiB) while a slow viewer
# pins at most a few chunks of memory per hop.
CHUNK_BYTES = 256 * 1024

# Frames up to this size are assembled in each decoder's scratch buffer, many per socket
# read; a larger one (a video chunk) gets a buffer of its own and is received straight
# into it. Requests, answers and keepalives are far smaller, and every connection holds
# this much for its whole life, so it is kept small.
SCRATCH_BYTES = 16 * 1024

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


# The messages themselves live in messages.py; they are part of this module's interface,
# so `from myyoutube.protocol import Chunk` is how every role imports them.
from myyoutube.message_fields import CONVERTERS, DATA_FIELD, FIELDS, REQUIRED, WrongType  # noqa: E402
from myyoutube.messages import *  # noqa: E402, F403
from myyoutube.messages import MESSAGE_TYPES, Chunk, Message  # noqa: E402  (named for readers and mypy)

# A Chunk's meta is always the empty object: its frames are made and read without JSON,
# which is most of the per-chunk cost at every hop of a stream.
_EMPTY_META = b"{}"

# One encoder for every frame: json.dumps with options builds a new one per call, which
# costs more than encoding a request's few fields.
_META_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

# A JSON escape of a UTF-16 surrogate (\uD800-\uDFFF), in either case.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def encode(message: Message) -> bytes:
    """Serialize one message into a complete frame."""
    cls = type(message)
    if cls is Chunk:
        return _encode_chunk(typing.cast(Chunk, message).data)
    if cls not in FIELDS:
        raise LocalProtocolError(f"not a protocol message: {cls.__name__}")
    data_field = DATA_FIELD[cls]
    data = getattr(message, data_field) if data_field else b""
    meta_fields = {name: getattr(message, name) for name in FIELDS[cls] if name != data_field}
    try:
        meta = _META_ENCODER.encode(meta_fields).encode()
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


def _decode_body(
    message_type: int, meta_bytes: bytearray | memoryview, data: bytearray | memoryview
) -> Message:
    """A message from its type, its meta and its data part (a bytearray received straight
    into place is kept as it is; a view into the decoder's scratch is copied out)."""
    if message_type == Chunk.TYPE and meta_bytes == _EMPTY_META:
        # A bytearray serves every reader of Chunk.data as bytes would (length, slices,
        # writes to files and sockets, hashing), and keeping it saves a copy per chunk.
        return Chunk(typing.cast(bytes, data) if isinstance(data, bytearray) else bytes(data))
    cls = MESSAGE_TYPES.get(message_type)
    if cls is None:
        raise RemoteProtocolError(f"unknown message type {message_type}")
    try:
        raw = bytes(meta_bytes)
        meta = json.loads(raw.decode())
        # A string we could not encode again (a lone surrogate from a "\ud800" escape)
        # would crash whichever handler echoes it; refuse it at the door. Only an escape
        # can make one (the strict UTF-8 decoder refuses encoded surrogates), so the
        # costly check runs only on meta that holds such an escape.
        if _SURROGATE_ESCAPE.search(raw):
            json.dumps(meta, ensure_ascii=False).encode()
    except (UnicodeError, ValueError, RecursionError) as exc:
        # RecursionError: "[[[[..." nested past Python's stack, well inside MAX_META_BYTES.
        raise RemoteProtocolError(f"{cls.__name__}: meta is not UTF-8 JSON") from exc
    if not isinstance(meta, dict):
        raise RemoteProtocolError(f"{cls.__name__}: meta is not a JSON object")
    data_field = DATA_FIELD[cls]
    converters = CONVERTERS[cls]
    if not (REQUIRED[cls] - {data_field} <= meta.keys() <= converters.keys()):
        raise RemoteProtocolError(f"{cls.__name__}: fields {sorted(meta)} != {sorted(converters)}")
    for name, convert in converters.items():
        if name not in meta:
            continue  # a defaulted field the sender did not know
        try:
            meta[name] = convert(meta[name])
        except WrongType:
            kind = FIELDS[cls][name]
            shown = kind.__name__ if isinstance(kind, type) else str(kind)
            raise RemoteProtocolError(f"{cls.__name__}.{name} is not {shown}") from None
    if data_field is not None:
        meta[data_field] = bytes(data)
    elif data:
        raise RemoteProtocolError(f"{cls.__name__} carries unexpected data bytes")
    return cls(**meta)


# How an HTTP server's answer begins, which no frame prefix does (its length would be
# 1,213,486,160 bytes).
_HTTP_ANSWER = b"HTTP/"


def _check_prefix(buffer: bytearray, offset: int) -> tuple[int, int, int]:
    """The frame prefix at `offset`, its declared lengths checked before any byte behind it
    is accepted: (body_length, message_type, meta_length)."""
    body_length, message_type, meta_length = _PREFIX.unpack_from(buffer, offset)
    if body_length > MAX_FRAME_BYTES:
        if buffer[offset : offset + len(_HTTP_ANSWER)] == _HTTP_ANSWER:
            # A role pointed at a web front end's port read "HTTP" as a length.
            raise RemoteProtocolError("the peer answered in HTTP: is that a web front end's port?")
        raise RemoteProtocolError(f"frame of {body_length} bytes exceeds MAX_FRAME_BYTES")
    if meta_length > MAX_META_BYTES:
        raise RemoteProtocolError(f"meta of {meta_length} bytes exceeds MAX_META_BYTES")
    if meta_length > body_length - _TYPE_AND_META_LENGTH_BYTES:
        raise RemoteProtocolError("meta length runs past the end of the frame")
    if body_length - _TYPE_AND_META_LENGTH_BYTES - meta_length > CHUNK_BYTES:
        raise RemoteProtocolError("frame data exceeds CHUNK_BYTES")
    return body_length, message_type, meta_length


class FrameDecoder:
    """Incremental decoder: `feed()` bytes as they arrive, take messages with `next_frame()`.

    A stream adapter can instead let the kernel write straight into the decoder, with the
    two calls of asyncio's BufferedProtocol: `get_buffer()` says where the next bytes go,
    `buffer_updated(n)` that n bytes landed there (`feed()` is those two calls with a
    copy). Small frames are assembled in a SCRATCH_BYTES buffer, several per socket read.
    A frame too large for it gets buffers of its own: its meta grows as its bytes arrive,
    then its data gets a buffer of exactly the data's size (at most CHUNK_BYTES, made only
    once the prefix is checked and the whole meta is in), and the socket is read straight
    into it. So a 256 KiB chunk is copied once, by the kernel, between the socket and the
    message that carries it; through a StreamReader it was copied three more times.

    Complete frames are decoded as soon as their last byte arrives and wait in order for
    `next_frame()`; `ready_bytes` says how much they hold, so the adapter can stop reading
    the socket while its reader lags. A protocol error is raised by `next_frame()` once
    every good frame before it has been taken (and by `bytes_needed()` at once).
    """

    def __init__(self) -> None:
        self._scratch = bytearray(SCRATCH_BYTES)
        self._start = 0  # first byte of the scratch not yet decoded
        self._end = 0  # one past the last byte received into the scratch
        self._frame: tuple[int, int, int] | None = None  # the current frame's checked prefix
        self._large_meta: bytearray | None = None  # a large frame's meta, as it arrives
        self._data: bytearray | None = None  # a large frame's data, received in place
        self._data_filled = 0
        self._ready: collections.deque[tuple[Message, int]] = collections.deque()
        self.ready_bytes = 0  # frame bytes of the messages waiting to be taken
        self._error: RemoteProtocolError | None = None

    # --- bytes in ------------------------------------------------------------------------

    def get_buffer(self) -> memoryview:
        """Where the next received bytes go: never empty, never past a large frame's data."""
        if self._data is not None:
            return memoryview(self._data)[self._data_filled :]
        if self._error is not None:
            self._start = self._end = 0  # the connection is closing: what comes is dropped
        if self._start == self._end:
            self._start = self._end = 0
        frame = self._frame
        # A small frame must fit whole behind the undecoded bytes; otherwise, the next prefix.
        wanted = 4 + frame[0] if frame is not None and self._large_meta is None else PREFIX_BYTES
        if self._start + wanted > SCRATCH_BYTES:
            # Move the undecoded bytes to the front, so the whole frame fits behind them.
            held = self._end - self._start
            self._scratch[:held] = self._scratch[self._start : self._end]
            self._start, self._end = 0, held
        return memoryview(self._scratch)[self._end :]

    def buffer_updated(self, nbytes: int) -> None:
        """`nbytes` landed in the buffer get_buffer() returned: decode whatever completed."""
        if self._error is not None:
            return  # the connection is being closed: nothing after the error counts
        if self._data is not None:
            self._data_filled += nbytes
        else:
            self._end += nbytes
        try:
            self._decode_available()
        except RemoteProtocolError as exc:
            self._error = exc

    def feed(self, data: bytes) -> None:
        """Add received bytes."""
        view = memoryview(data)
        while view and self._error is None:
            with self.get_buffer() as target:
                taken = min(len(target), len(view))
                target[:taken] = view[:taken]
            view = view[taken:]
            self.buffer_updated(taken)

    @property
    def failed(self) -> bool:
        """The stream broke the protocol: next_frame() raises once the good frames are taken."""
        return self._error is not None

    # --- frames out ----------------------------------------------------------------------

    def _decode_available(self) -> None:
        while True:
            if self._frame is None:
                if self._end - self._start < PREFIX_BYTES:
                    return
                self._frame = _check_prefix(self._scratch, self._start)
                if 4 + self._frame[0] > SCRATCH_BYTES:
                    self._start += PREFIX_BYTES
                    self._large_meta, self._data_filled = bytearray(), 0
            frame_bytes = 4 + self._frame[0]
            if self._large_meta is not None:
                message = self._continue_large_frame()
                if message is None:
                    return
            elif self._end - self._start < frame_bytes:
                return
            else:
                message = self._decode_from_scratch()
            self._frame = None
            self._ready.append((message, frame_bytes))
            self.ready_bytes += frame_bytes

    def _decode_from_scratch(self) -> Message:
        assert self._frame is not None  # called only once a prefix has been checked
        body_length, message_type, meta_length = self._frame
        meta_start = self._start + PREFIX_BYTES
        data_start, frame_end = meta_start + meta_length, self._start + 4 + body_length
        with memoryview(self._scratch) as view:
            message = _decode_body(message_type, view[meta_start:data_start], view[data_start:frame_end])
        self._start = frame_end
        return message

    def _take_from_scratch(self, most: int) -> bytearray:
        taken = self._scratch[self._start : self._start + min(most, self._end - self._start)]
        self._start += len(taken)
        return taken

    def _continue_large_frame(self) -> Message | None:
        """Move what the scratch holds into the large frame's meta, then its data; the
        message once the frame is complete."""
        assert self._frame is not None and self._large_meta is not None
        body_length, message_type, meta_length = self._frame
        if self._data is None:
            self._large_meta += self._take_from_scratch(meta_length - len(self._large_meta))
            if len(self._large_meta) < meta_length:
                return None
            self._data = bytearray(body_length - _TYPE_AND_META_LENGTH_BYTES - meta_length)
            held = self._take_from_scratch(len(self._data))
            self._data[: len(held)] = held
            self._data_filled = len(held)
        if self._data_filled < len(self._data):
            return None
        message = _decode_body(message_type, self._large_meta, self._data)
        self._large_meta = self._data = None
        return message

    def next_frame(self) -> Message | None:
        """Return the next complete message, or None until more bytes are fed."""
        if self._ready:
            message, frame_bytes = self._ready.popleft()
            self.ready_bytes -= frame_bytes
            return message
        if self._error is not None:
            raise self._error
        return None

    def bytes_needed(self) -> int:
        """How many more bytes complete the current frame (or its prefix); 0 while a
        complete frame waits to be taken."""
        if self._error is not None:
            raise self._error
        if self._ready:
            return 0
        if self._frame is None:
            return PREFIX_BYTES - (self._end - self._start)
        body_length, _, meta_length = self._frame
        if self._large_meta is None:
            return 4 + body_length - (self._end - self._start)
        data_length = body_length - _TYPE_AND_META_LENGTH_BYTES - meta_length
        return meta_length - len(self._large_meta) + data_length - self._data_filled

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as messages."""
        large = 0 if self._large_meta is None else PREFIX_BYTES + len(self._large_meta) + self._data_filled
        return self.ready_bytes + (self._end - self._start) + large
