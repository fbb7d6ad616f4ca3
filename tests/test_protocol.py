"""Tests for myyoutube.protocol: frame encoding, incremental decoding and every limit."""

from __future__ import annotations

import dataclasses
import itertools
import json
import struct
import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from myyoutube import protocol
from myyoutube.protocol import (
    CHUNK_BYTES,
    MAX_FRAME_BYTES,
    MAX_META_BYTES,
    MESSAGE_TYPES,
    PREFIX_BYTES,
    BlockReportChunk,
    Chunk,
    Commands,
    CountView,
    End,
    Error,
    FrameDecoder,
    GetStatus,
    Heartbeat,
    ListVideos,
    LocalProtocolError,
    Ok,
    ReadBlob,
    RemoteProtocolError,
    UpdateVideo,
    VideoList,
    encode,
)

PREFIX = struct.Struct("!IBI")
TYPE_AND_META = PREFIX_BYTES - 4  # the u8 type and u32 meta_length inside body_length


# --- helpers ------------------------------------------------------------------------------


def field_types(cls: type) -> dict[str, type]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


SAMPLE_VALUES: dict[object, object] = {
    str: 'caf\u00e9 \u2603 "quoted" \\ video.mp4',
    int: 1_234_567_890_123,
    bool: True,
    float: 2.5,
    dict: {"name": "cat.mp4", "size": 3, "nested": {"list": [1, 2.5, None, True, "x"]}},
    list: [["0" * 32, 17], {"k": "v"}, "plain", 4],
    list[str]: ["0" * 32, "caf\u00e9"],
    list[tuple[str, int]]: [("0" * 32, 17), ("f" * 32, 0)],
    list[tuple[str, float]]: [("0" * 32, 0.25), ("f" * 32, 1)],
    list[tuple[str, str]]: [("0" * 32, "caf\u00e9 failed")],
    list[dict]: [{"job_id": "0" * 32, "rung": {"height": 240}}],
    bytes: bytes(range(256)) * 3,
}


def sample(cls: type) -> object:
    """An instance of a message class with a distinctive value in every field."""
    return cls(**{name: SAMPLE_VALUES[kind] for name, kind in field_types(cls).items()})


def raw_frame(message_type: int, meta: bytes, data: bytes = b"") -> bytes:
    """A frame with honest lengths around arbitrary meta and data bytes."""
    return PREFIX.pack(TYPE_AND_META + len(meta) + len(data), message_type, len(meta)) + meta + data


def json_frame(cls: type, meta: object, data: bytes = b"") -> bytes:
    return raw_frame(cls.TYPE, json.dumps(meta).encode(), data)


def decode_all(data: bytes) -> list:
    decoder = FrameDecoder()
    decoder.feed(data)
    messages = []
    while (message := decoder.next_frame()) is not None:
        messages.append(message)
    assert decoder.buffered == 0
    return messages


def decode_one(frame: bytes):
    decoder = FrameDecoder()
    decoder.feed(frame)
    return decoder.next_frame()


ALL_CLASSES = sorted(MESSAGE_TYPES.values(), key=lambda cls: cls.TYPE)


# --- round trips ----------------------------------------------------------------------------


def test_message_types_cover_every_class_with_its_code():
    """MESSAGE_TYPES maps each wire code to the class carrying that TYPE, and every message
    class in the module is in it (no two share a code)."""
    declared = {cls for cls in vars(protocol).values() if isinstance(cls, type) and hasattr(cls, "TYPE")}
    assert set(MESSAGE_TYPES.values()) == declared
    assert all(code == cls.TYPE for code, cls in MESSAGE_TYPES.items())
    assert MESSAGE_TYPES[6] is Chunk and MESSAGE_TYPES[17] is GetStatus


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda cls: cls.__name__)
def test_every_message_type_round_trips(cls):
    """encode then decode gives back an equal message for every type in MESSAGE_TYPES."""
    message = sample(cls)
    frame = encode(message)
    assert frame[4] == cls.TYPE
    assert struct.unpack("!I", frame[:4])[0] == len(frame) - 4
    decoded = decode_one(frame)
    assert decoded == message
    assert type(decoded) is cls


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda cls: cls.__name__)
def test_every_message_type_decodes_byte_at_a_time(cls):
    """Feeding a frame one byte at a time yields nothing until the last byte, then the message."""
    frame = encode(sample(cls))
    decoder = FrameDecoder()
    for index, byte in enumerate(frame):
        assert decoder.next_frame() is None
        decoder.feed(bytes([byte]))
        expected_needed = PREFIX_BYTES - index - 1 if index + 1 < PREFIX_BYTES else len(frame) - index - 1
        assert decoder.bytes_needed() == expected_needed
    assert decoder.next_frame() == sample(cls)
    assert decoder.next_frame() is None
    assert decoder.buffered == 0
    assert decoder.bytes_needed() == PREFIX_BYTES


def test_chunk_data_travels_raw_after_the_meta():
    """A Chunk's bytes follow an empty JSON meta verbatim, with no base64 or JSON."""
    frame = encode(Chunk(b"\x00\xffabc"))
    assert frame == PREFIX.pack(TYPE_AND_META + 2 + 5, 6, 2) + b"{}" + b"\x00\xffabc"


def test_several_frames_in_one_feed_decode_in_order():
    """One feed holding every message type back to back yields all of them in order."""
    messages = [sample(cls) for cls in ALL_CLASSES] + [Chunk(b""), Ok({}), End(0, "")]
    assert decode_all(b"".join(encode(m) for m in messages)) == messages


def test_partial_second_frame_waits_for_the_rest():
    """After one whole frame and half of another, only the first comes out until the rest arrives."""
    first, second = encode(Error("not_found", "no such video")), encode(Chunk(b"x" * 1000))
    decoder = FrameDecoder()
    decoder.feed(first + second[:500])
    assert decoder.next_frame() == Error("not_found", "no such video")
    assert decoder.next_frame() is None
    assert decoder.bytes_needed() == len(second) - 500
    decoder.feed(second[500:])
    assert decoder.next_frame() == Chunk(b"x" * 1000)


def test_full_size_chunk_round_trips():
    """A Chunk of exactly CHUNK_BYTES is encoded and decoded intact."""
    data = bytes(range(256)) * (CHUNK_BYTES // 256)
    assert len(data) == CHUNK_BYTES
    assert decode_one(encode(Chunk(data))) == Chunk(data)


# --- length limits, checked on the prefix -------------------------------------------------------


def test_oversize_frame_rejected_on_the_ninth_byte():
    """A body_length over MAX_FRAME_BYTES raises once the 9-byte prefix is complete, before
    the adapter reads any of the body."""
    prefix = PREFIX.pack(MAX_FRAME_BYTES + 1, Chunk.TYPE, 2)
    decoder = FrameDecoder()
    decoder.feed(prefix[:8])
    assert decoder.bytes_needed() == 1
    with pytest.raises(RemoteProtocolError, match="MAX_FRAME_BYTES"):
        decoder.feed(prefix[8:])
        decoder.bytes_needed()  # the stream adapter asks this next


def test_an_http_answer_is_named_as_one():
    """A role pointed at a web front end's port reads an HTTP answer: it says so, where it
    said "frame of 1213486160 bytes exceeds MAX_FRAME_BYTES" ("HTTP" read as a length)."""
    decoder = FrameDecoder()
    with pytest.raises(RemoteProtocolError, match="answered in HTTP: is that a web front end's port"):
        decoder.feed(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        decoder.bytes_needed()


def test_largest_legal_frame_prefix_is_accepted():
    """A prefix declaring a full meta and a full chunk is accepted and asks for exactly that body."""
    decoder = FrameDecoder()
    decoder.feed(PREFIX.pack(MAX_FRAME_BYTES, Chunk.TYPE, MAX_META_BYTES))
    assert decoder.bytes_needed() == MAX_FRAME_BYTES - TYPE_AND_META
    assert decoder.next_frame() is None


def test_meta_over_max_meta_bytes_rejected_on_the_prefix():
    """A meta_length over MAX_META_BYTES is refused before any meta byte is read."""
    decoder = FrameDecoder()
    with pytest.raises(RemoteProtocolError, match="MAX_META_BYTES"):
        decoder.feed(PREFIX.pack(TYPE_AND_META + MAX_META_BYTES + 1, Ok.TYPE, MAX_META_BYTES + 1))
        decoder.bytes_needed()  # the stream adapter asks this next


def test_meta_length_running_past_the_frame_rejected():
    """A meta_length longer than the body that should contain it is refused on the prefix."""
    decoder = FrameDecoder()
    with pytest.raises(RemoteProtocolError, match="past the end"):
        decoder.feed(PREFIX.pack(TYPE_AND_META + 10, Ok.TYPE, 11))
        decoder.bytes_needed()  # the stream adapter asks this next


@pytest.mark.parametrize("body_length", [0, 1, 4])
def test_body_too_short_for_type_and_meta_length_rejected(body_length):
    """A body_length smaller than the type byte plus meta_length field is refused."""
    decoder = FrameDecoder()
    with pytest.raises(RemoteProtocolError):
        decoder.feed(PREFIX.pack(body_length, Ok.TYPE, 0))
        decoder.bytes_needed()  # the stream adapter asks this next


def test_data_over_chunk_bytes_rejected_on_the_prefix():
    """A frame whose data part would exceed CHUNK_BYTES is refused before the data arrives."""
    decoder = FrameDecoder()
    with pytest.raises(RemoteProtocolError, match="CHUNK_BYTES"):
        decoder.feed(PREFIX.pack(TYPE_AND_META + 2 + CHUNK_BYTES + 1, Chunk.TYPE, 2) + b"{}")
        decoder.bytes_needed()  # the stream adapter asks this next


def test_data_of_exactly_chunk_bytes_accepted_on_the_prefix():
    """A frame declaring exactly CHUNK_BYTES of data passes the prefix checks."""
    decoder = FrameDecoder()
    decoder.feed(PREFIX.pack(TYPE_AND_META + 2 + CHUNK_BYTES, Chunk.TYPE, 2))
    assert decoder.bytes_needed() == 2 + CHUNK_BYTES


# --- body checks ------------------------------------------------------------------------------


@pytest.mark.parametrize("message_type", [0, 9, 99, 128, 200, 255])
def test_unknown_message_type_rejected(message_type):
    """A frame with a type code outside MESSAGE_TYPES raises RemoteProtocolError."""
    assert message_type not in MESSAGE_TYPES
    with pytest.raises(RemoteProtocolError, match=f"unknown message type {message_type}"):
        decode_one(raw_frame(message_type, b"{}"))


@pytest.mark.parametrize("meta", [b"{not json", b"\xff\xfe{}", b"", b'{"mac": "x"', b"\xc3("])
def test_non_json_meta_rejected(meta):
    """Meta that is not valid UTF-8 JSON raises RemoteProtocolError."""
    with pytest.raises(RemoteProtocolError, match="not UTF-8 JSON"):
        decode_one(raw_frame(Error.TYPE, meta))


@pytest.mark.parametrize("meta", [b"[]", b"1", b"null", b'"mac"', b'[{"mac": "x"}]'])
def test_non_object_meta_rejected(meta):
    """Meta that is JSON but not an object raises RemoteProtocolError."""
    with pytest.raises(RemoteProtocolError, match="not a JSON object"):
        decode_one(raw_frame(Error.TYPE, meta))


@pytest.mark.parametrize(
    "meta",
    [
        {"blob_id": "a" * 32, "offset": 0},  # missing length
        {"blob_id": "a" * 32, "offset": 0, "length": 5, "extra": 1},  # extra field
        {"blob_id": "a" * 32, "offset": 0, "size": 5},  # wrong name
        {},
    ],
)
def test_missing_or_extra_fields_rejected(meta):
    """A meta whose keys differ from the message's fields raises RemoteProtocolError."""
    with pytest.raises(RemoteProtocolError, match="fields"):
        decode_one(json_frame(ReadBlob, meta))


def test_chunk_data_in_meta_is_an_extra_field():
    """A Chunk that puts its data in the JSON meta instead of the data part is refused."""
    with pytest.raises(RemoteProtocolError, match="fields"):
        decode_one(json_frame(Chunk, {"data": "abc"}))


HEARTBEAT = {
    "capacity_bytes": 1,
    "used_bytes": 1,
    "seq": 2,
    "base_seq": 1,
    "added": [],
    "removed": [],
    "corrupt": [],
}


@pytest.mark.parametrize(
    "cls, meta",
    [
        (End, {"size": True, "sha256": ""}),  # bool is not an int
        (End, {"size": False, "sha256": ""}),
        (End, {"size": 3.0, "sha256": ""}),
        (End, {"size": "3", "sha256": ""}),
        (End, {"size": None, "sha256": ""}),
        (End, {"size": 3, "sha256": 5}),
        (Error, {"code": ["x"], "message": "m"}),
        (Ok, {"info": []}),
        (Ok, {"info": "{}"}),
        (VideoList, {"videos": {}, "next": ""}),
        (Heartbeat, {**HEARTBEAT, "corrupt": {}}),
        (Heartbeat, {**HEARTBEAT, "corrupt": [7]}),
        (Heartbeat, {**HEARTBEAT, "removed": [None]}),
        (Heartbeat, {**HEARTBEAT, "added": [["b"]]}),  # an entry is [blob_id, size]
        (Heartbeat, {**HEARTBEAT, "added": [["b", 1, 2]]}),
        (Heartbeat, {**HEARTBEAT, "added": [["b", True]]}),
        (Heartbeat, {**HEARTBEAT, "added": [[1, "b"]]}),
        (Heartbeat, {**HEARTBEAT, "added": [{"b": 1}]}),
        (
            Commands,
            {"delete_blobs": [], "acked_seq": 1, "full_report": 1, "heartbeat_s": 3.0, "sidecars": []},
        ),  # an int is not a bool
        (
            Commands,
            {"delete_blobs": [], "acked_seq": 1, "full_report": True, "heartbeat_s": "3", "sidecars": []},
        ),
        (BlockReportChunk, {"seq": 1, "total": 1, "blobs": [["b", 1]], "final": "yes"}),
        (VideoList, {"videos": [], "next": None}),
        (ListVideos, {"query": "", "sort": "", "cursor": "", "limit": "50", "user": ""}),
        (ListVideos, {"query": "", "sort": "", "cursor": "", "limit": True, "user": ""}),
        (UpdateVideo, {"name": "a.mp4", "title": None, "description": "", "user": ""}),
        (CountView, {"name": "a.mp4", "viewer": 7, "user": ""}),
    ],
    ids=lambda value: getattr(value, "__name__", None) or json.dumps(value),
)
def test_wrong_field_types_rejected(cls, meta):
    """A field whose JSON value is not the declared type (bools included) raises RemoteProtocolError."""
    with pytest.raises(RemoteProtocolError, match="is not"):
        decode_one(json_frame(cls, meta))


def test_unexpected_data_on_message_without_bytes_field_rejected():
    """Trailing data bytes on a message with no bytes field raise RemoteProtocolError."""
    with pytest.raises(RemoteProtocolError, match="unexpected data"):
        decode_one(json_frame(Error, {"code": "c", "message": "m"}, data=b"x"))


def test_field_order_in_meta_does_not_matter():
    """Meta keys in any order decode to the same message."""
    frame = raw_frame(ReadBlob.TYPE, b'{"length":9,"offset":4,"blob_id":"b"}')
    assert decode_one(frame) == ReadBlob(blob_id="b", offset=4, length=9)


# --- encode-side limits -----------------------------------------------------------------------


def test_encode_refuses_data_over_chunk_bytes():
    """encode raises LocalProtocolError for a Chunk one byte over CHUNK_BYTES."""
    with pytest.raises(LocalProtocolError, match="CHUNK_BYTES"):
        encode(Chunk(b"x" * (CHUNK_BYTES + 1)))


def test_encode_refuses_meta_over_max_meta_bytes():
    """encode raises LocalProtocolError when the JSON meta exceeds MAX_META_BYTES."""
    with pytest.raises(LocalProtocolError, match="MAX_META_BYTES"):
        encode(VideoList(videos=["x" * MAX_META_BYTES], next=""))


def test_encode_refuses_non_messages():
    """encode raises LocalProtocolError for an object that is not a protocol message."""

    @dataclasses.dataclass(frozen=True)
    class Impostor:
        TYPE: typing.ClassVar[int] = 5
        info: dict

    with pytest.raises(LocalProtocolError, match="not a protocol message"):
        encode(Impostor({}))


# --- hostile payloads found by review ---------------------------------------------------


def test_deeply_nested_meta_is_a_remote_protocol_error():
    """Meta nested 100000 arrays deep (100 KB, well under MAX_META_BYTES) raises RemoteProtocolError."""
    meta = b'{"info":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert len(meta) < MAX_META_BYTES
    with pytest.raises(RemoteProtocolError):
        decode_one(raw_frame(Ok.TYPE, meta))


def test_decoded_strings_can_always_be_re_encoded():
    """A decoded message is either refused with RemoteProtocolError or can be encoded again."""
    frame = raw_frame(Error.TYPE, b'{"code":"not_found","message":"no video \\ud800"}')
    try:
        message = decode_one(frame)
    except RemoteProtocolError:
        return
    assert decode_one(encode(message)) == message


# --- properties -------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

FIELD_STRATEGIES: dict[object, st.SearchStrategy] = {
    str: st.text(max_size=40),
    int: st.integers(-(2**63), 2**63),
    bool: st.booleans(),
    float: st.floats(allow_nan=False, allow_infinity=False),
    list[str]: st.lists(st.text(max_size=40), max_size=5),
    list[tuple[str, int]]: st.lists(
        st.tuples(st.text(max_size=40), st.integers(-(2**63), 2**63)), max_size=5
    ),
    list[tuple[str, float]]: st.lists(
        st.tuples(st.text(max_size=40), st.floats(allow_nan=False, allow_infinity=False)), max_size=5
    ),
    list[tuple[str, str]]: st.lists(st.tuples(st.text(max_size=40), st.text(max_size=40)), max_size=5),
    list[dict]: st.lists(st.dictionaries(st.text(max_size=8), json_values, max_size=4), max_size=3),
    dict: st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    list: st.lists(json_values, max_size=5),
    bytes: st.binary(max_size=3000),
}


def message_strategy(cls: type):
    return st.builds(cls, **{name: FIELD_STRATEGIES[kind] for name, kind in field_types(cls).items()})


messages = st.one_of([message_strategy(cls) for cls in ALL_CLASSES])


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def feed_and_drain(pieces: list[bytes]) -> list:
    """Feed pieces, draining after each; only RemoteProtocolError may escape."""
    decoder = FrameDecoder()
    out = []
    fed = 0
    for piece in pieces:
        decoder.feed(piece)
        fed += len(piece)
        while (message := decoder.next_frame()) is not None:
            out.append(message)
        # Nothing is kept beyond what was fed, and what is kept never exceeds one frame.
        assert decoder.buffered <= fed
        assert decoder.buffered < 4 + MAX_FRAME_BYTES
    return out


PROPERTY_SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(st.lists(messages, min_size=1, max_size=4), st.lists(st.integers(0, 10**6), max_size=12))
def test_valid_frames_in_random_splits_decode_to_equal_messages(sent, cuts):
    """Any sequence of valid messages, fed in any split, decodes to an equal sequence."""
    stream = b"".join(encode(message) for message in sent)
    assert feed_and_drain(split(stream, cuts)) == sent


@PROPERTY_SETTINGS
@given(st.lists(messages, min_size=1, max_size=3))
def test_reading_exactly_bytes_needed_decodes_each_frame(sent):
    """A reader that feeds exactly bytes_needed() at a time gets every message, one per frame."""
    stream = b"".join(encode(message) for message in sent)
    decoder, position, out = FrameDecoder(), 0, []
    while position < len(stream):
        needed = decoder.bytes_needed()
        assert needed > 0
        decoder.feed(stream[position : position + needed])
        position += needed
        if (message := decoder.next_frame()) is not None:
            out.append(message)
            assert decoder.buffered == 0
    assert out == sent


@PROPERTY_SETTINGS
@given(st.binary(max_size=2000), st.lists(st.integers(0, 10**6), max_size=10))
def test_random_bytes_raise_only_remote_protocol_error(garbage, cuts):
    """Arbitrary bytes in arbitrary splits produce messages or RemoteProtocolError, nothing else."""
    try:
        feed_and_drain(split(garbage, cuts))
    except RemoteProtocolError:
        pass


mutations = st.lists(
    st.tuples(
        st.sampled_from(["flip", "set", "insert", "delete", "truncate", "prefix_int"]),
        st.integers(0, 10**6),
        st.integers(0, 255),
    ),
    min_size=1,
    max_size=4,
)


def mutate(frame: bytes, edits) -> bytes:
    data = bytearray(frame)
    for kind, position, value in edits:
        index = position % (len(data) + 1)
        if kind == "flip" and index < len(data):
            data[index] ^= 1 << (value % 8)
        elif kind == "set" and index < len(data):
            data[index] = value
        elif kind == "insert":
            data[index:index] = bytes([value])
        elif kind == "delete":
            del data[index : index + 1 + value % 4]
        elif kind == "truncate":
            del data[index:]
        elif kind == "prefix_int" and len(data) >= PREFIX_BYTES:
            # Rewrite body_length or meta_length to a nearby or extreme value.
            offset = 0 if value % 2 else 5
            current = struct.unpack_from("!I", data, offset)[0]
            candidates = [
                current + 1,
                max(0, current - 1),
                0,
                2**32 - 1,
                MAX_FRAME_BYTES,
                MAX_META_BYTES + 1,
                current * 2,
            ]
            struct.pack_into("!I", data, offset, candidates[value % len(candidates)] % 2**32)
    return bytes(data)


@PROPERTY_SETTINGS
@given(st.lists(messages, min_size=1, max_size=3), mutations, st.lists(st.integers(0, 10**6), max_size=10))
def test_mutated_valid_frames_raise_only_remote_protocol_error(sent, edits, cuts):
    """Valid frames with bytes flipped, inserted, deleted or lengths rewritten never raise anything but RemoteProtocolError."""
    stream = mutate(b"".join(encode(message) for message in sent), edits)
    try:
        decoded = feed_and_drain(split(stream, cuts))
    except RemoteProtocolError:
        return
    # Whatever decoded is made of real messages that encode again to well-formed frames.
    for message in decoded:
        assert type(message) in MESSAGE_TYPES.values()
        assert encode(decode_one(encode(message))) == encode(message)


def test_body_fed_whole_after_its_prefix_decodes_like_any_other():
    """A stream adapter feeds a prefix, then exactly the body (the fast path that skips a
    copy): the message is the same, `buffered` counts it until taken, and what follows
    decodes normally."""
    frames = [encode(Chunk(b"x" * 70_000)), encode(Ok({"after": 1})), encode(Chunk(b"tail"))]
    decoder = FrameDecoder()
    got = []
    for frame in frames:
        decoder.feed(frame[: decoder.bytes_needed()])
        body = frame[PREFIX_BYTES:]
        assert decoder.bytes_needed() == len(body)
        decoder.feed(body)
        assert decoder.buffered == len(frame) and decoder.bytes_needed() == 0
        got.append(decoder.next_frame())
        assert decoder.buffered == 0
    assert got == [Chunk(b"x" * 70_000), Ok({"after": 1}), Chunk(b"tail")]


def test_a_frame_from_a_peer_without_the_newer_fields_decodes_with_their_defaults():
    """A Heartbeat and Commands as a datanode or master from before transcoding sent them
    (no transcode fields) decode, the missing fields taking their defaults."""
    for cls, meta in [
        (Heartbeat, HEARTBEAT),
        (Commands, {"delete_blobs": [], "acked_seq": 1, "full_report": True, "heartbeat_s": 3.0}),
    ]:
        decoder = FrameDecoder()
        decoder.feed(raw_frame(cls.TYPE, json.dumps(meta).encode()))
        message = decoder.next_frame()
        assert isinstance(message, cls)
        assert all(getattr(message, name) == value for name, value in meta.items())


def test_bytes_after_a_protocol_error_are_taken_and_dropped():
    """After a bad prefix the decoder still gives a socket somewhere to put what keeps
    arriving (a BufferedProtocol must never get an empty buffer), drops it, and goes on
    raising the error."""
    decoder = FrameDecoder()
    decoder.feed(PREFIX.pack(MAX_FRAME_BYTES + 1, Chunk.TYPE, 2))
    for _ in range(10):
        with decoder.get_buffer() as target:
            assert len(target) > 0
            target[:] = b"x" * len(target)
            size = len(target)
        decoder.buffer_updated(size)
    with pytest.raises(RemoteProtocolError, match="MAX_FRAME_BYTES"):
        decoder.next_frame()
