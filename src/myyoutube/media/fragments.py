"""The fragment index of a fragmented MP4: the byte ranges HLS playlists point into.

Theory of operation
-------------------
A rendition is one fragmented MP4 (written with `empty_moov` and a fragment per
keyframe): `ftyp` and `moov` first (the *init segment*: codecs and sizes, no samples),
then one `moof` (sample table) + `mdat` (samples) pair per ~2 s, then an `mfra` trailer
that progressive players use to seek. Each pair is one HLS segment, served as a byte
range of the rendition's one blob: no per-segment files.

`index_file` walks the top-level box headers (seeking, never reading the media) and
reads only `moov` and each `moof`, a few KB each. From `moov` it takes each track's
timescale and handler, the video's size and the RFC 6381 codec string (`avc1.640028`
from the avcC box, `mp4a.40.2` from the esds box) that a master playlist announces. From
each `moof` it sums the sample durations in the track runs (`trun`, falling back to the
defaults in `tfhd` and `trex`): the segment's duration.

The result, `FragmentIndex`, is small, JSON-serialisable (`to_json`, stored beside the
rendition) and all that `hls.py` needs to write playlists.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from myyoutube.media.boxes import Box, boxes_in, child, file_boxes

# The init segment (ftyp + an empty moov) is a few KB; a fragment's moof lists ~16 bytes
# per sample, ~3 KB for 2 s of 60 fps video and its audio. Anything much larger is not a
# file we wrote, and is refused rather than read into memory.
MAX_INIT_BYTES = 1024 * 1024
MAX_MOOF_BYTES = 1024 * 1024

INDEX_FORMAT_VERSION = 1

# tfhd and trun flags (ISO/IEC 14496-12, 8.8.7 and 8.8.8): which optional fields follow.
_TFHD_BASE_DATA_OFFSET = 0x1
_TFHD_SAMPLE_DESCRIPTION_INDEX = 0x2
_TFHD_DEFAULT_SAMPLE_DURATION = 0x8
_TRUN_DATA_OFFSET = 0x1
_TRUN_FIRST_SAMPLE_FLAGS = 0x4
_TRUN_SAMPLE_FIELDS = (0x100, 0x200, 0x400, 0x800)  # duration, size, flags, composition offset
_TRUN_SAMPLE_DURATION = 0x100
# Bytes in a VisualSampleEntry / AudioSampleEntry before their child boxes.
_VISUAL_SAMPLE_ENTRY_BYTES = 78
_AUDIO_SAMPLE_ENTRY_BYTES = 28


class NotFragmented(Exception):
    """The file is not a fragmented MP4 this module can index; str(exc) says why."""


@dataclass(frozen=True)
class Segment:
    """One moof+mdat pair: its bytes and its duration in the index's timescale."""

    offset: int
    length: int
    ticks: int


@dataclass(frozen=True)
class FragmentIndex:
    """Where a rendition's init segment and media segments are, and what it holds."""

    size: int  # bytes in the whole file
    init_length: int  # the init segment is bytes [0, init_length)
    timescale: int  # ticks per second of the segments' durations (the video track's)
    codecs: str  # RFC 6381, as HLS CODECS wants: "avc1.640028,mp4a.40.2"
    width: int
    height: int
    segments: tuple[Segment, ...]

    @property
    def duration_s(self) -> float:
        return sum(segment.ticks for segment in self.segments) / self.timescale

    def segment_s(self, segment: Segment) -> float:
        return segment.ticks / self.timescale

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": INDEX_FORMAT_VERSION,
                "size": self.size,
                "init": self.init_length,
                "timescale": self.timescale,
                "codecs": self.codecs,
                "width": self.width,
                "height": self.height,
                "segments": [[s.offset, s.length, s.ticks] for s in self.segments],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> FragmentIndex:
        data = json.loads(text)
        if data.get("version") != INDEX_FORMAT_VERSION:
            raise ValueError(f"unknown fragment index version {data.get('version')!r}")
        return cls(
            size=data["size"],
            init_length=data["init"],
            timescale=data["timescale"],
            codecs=data["codecs"],
            width=data["width"],
            height=data["height"],
            segments=tuple(Segment(*triple) for triple in data["segments"]),
        )


@dataclass(frozen=True)
class _Track:
    handler: bytes  # b"vide", b"soun"
    timescale: int
    default_duration: int  # from trex, 0 if none
    codec: str | None
    width: int
    height: int


def index_file(path: Path) -> FragmentIndex:
    """The fragment index of the fragmented MP4 at `path`, or NotFragmented."""
    with open(path, "rb") as file:
        size = path.stat().st_size
        tracks: dict[int, _Track] | None = None
        init_length, segments, pending_moof = 0, [], None
        for box in file_boxes(file, size):
            if box.kind == b"moov":
                tracks, init_length = _tracks(_read(file, box, MAX_INIT_BYTES)), box.end
            elif box.kind == b"moof":
                if tracks is None:
                    raise NotFragmented("a moof comes before the moov")
                pending_moof = (box, _fragment_seconds(_read(file, box, MAX_MOOF_BYTES), tracks))
            elif box.kind == b"mdat" and pending_moof is not None:
                moof, seconds = pending_moof
                segments.append((moof.offset, box.end - moof.offset, seconds))
                pending_moof = None
    if tracks is None or not segments:
        raise NotFragmented("the file has no moov, or no moof+mdat fragments")
    return _index(size, init_length, tracks, segments)


def _index(size: int, init_length: int, tracks: dict[int, _Track], segments: list) -> FragmentIndex:
    video = next((track for track in tracks.values() if track.handler == b"vide"), None)
    if video is None:
        raise NotFragmented("the file has no video track")
    codecs = [track.codec for track in sorted(tracks.values(), key=lambda t: t.handler != b"vide")]
    return FragmentIndex(
        size=size,
        init_length=init_length,
        timescale=video.timescale,
        codecs=",".join(codec for codec in codecs if codec),
        width=video.width,
        height=video.height,
        segments=tuple(
            Segment(offset, length, round(seconds * video.timescale)) for offset, length, seconds in segments
        ),
    )


def _read(file, box: Box, limit: int) -> bytes:
    """A whole box (header included) as bytes, refusing one larger than `limit`."""
    if box.size > limit:
        raise NotFragmented(f"a {box.kind.decode(errors='replace')} box of {box.size} bytes is too large")
    file.seek(box.offset)
    data = file.read(box.size)
    if len(data) != box.size:
        raise NotFragmented("the file ends inside a box")
    return data


def _u32(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 4], "big")


def _version_and_flags(data: bytes, box: Box) -> tuple[int, int]:
    word = _u32(data, box.payload_offset)
    return word >> 24, word & 0xFFFFFF


def _tracks(moov_bytes: bytes) -> dict[int, _Track]:
    """Track id -> track, from a moov box's bytes."""
    moov = next(boxes_in(moov_bytes), None)
    if moov is None or moov.kind != b"moov":
        raise NotFragmented("the moov box is malformed")
    defaults = _trex_durations(moov_bytes, moov)
    tracks = {}
    for trak in (box for box in boxes_in(moov_bytes, moov.payload_offset, moov.end) if box.kind == b"trak"):
        tkhd, mdia = child(moov_bytes, trak, b"tkhd"), child(moov_bytes, trak, b"mdia")
        if tkhd is None or mdia is None:
            raise NotFragmented("a track lacks its tkhd or mdia box")
        mdhd, hdlr = child(moov_bytes, mdia, b"mdhd"), child(moov_bytes, mdia, b"hdlr")
        if mdhd is None or hdlr is None:
            raise NotFragmented("a track lacks its mdhd or hdlr box")
        track_id = _u32(moov_bytes, tkhd.payload_offset + (20 if moov_bytes[tkhd.payload_offset] else 12))
        timescale = _u32(moov_bytes, mdhd.payload_offset + (20 if moov_bytes[mdhd.payload_offset] else 12))
        handler = moov_bytes[hdlr.payload_offset + 8 : hdlr.payload_offset + 12]
        codec, width, height = _sample_entry(moov_bytes, mdia)
        tracks[track_id] = _Track(handler, timescale, defaults.get(track_id, 0), codec, width, height)
    return tracks


def _trex_durations(data: bytes, moov: Box) -> dict[int, int]:
    """Track id -> default sample duration, from moov/mvex/trex."""
    mvex = child(data, moov, b"mvex")
    if mvex is None:
        return {}
    return {
        _u32(data, trex.payload_offset + 4): _u32(data, trex.payload_offset + 12)
        for trex in boxes_in(data, mvex.payload_offset, mvex.end)
        if trex.kind == b"trex"
    }


def _sample_entry(data: bytes, mdia: Box) -> tuple[str | None, int, int]:
    """(RFC 6381 codec string or None, width, height) of a track's first sample entry."""
    minf = child(data, mdia, b"minf")
    stbl = minf and child(data, minf, b"stbl")
    stsd = stbl and child(data, stbl, b"stsd")
    entry = stsd and next(boxes_in(data, stsd.payload_offset + 8, stsd.end), None)
    if entry is None:
        return None, 0, 0
    if entry.kind in (b"avc1", b"avc3"):
        fields = entry.payload_offset
        width, height = (
            int.from_bytes(data[fields + 24 : fields + 26], "big"),
            int.from_bytes(data[fields + 26 : fields + 28], "big"),
        )
        avcc = child(data, entry, b"avcC", skip=_VISUAL_SAMPLE_ENTRY_BYTES)
        codec = None
        if avcc is not None:
            profile, compatibility, level = data[avcc.payload_offset + 1 : avcc.payload_offset + 4]
            codec = f"{entry.kind.decode()}.{profile:02x}{compatibility:02x}{level:02x}"
        return codec, width, height
    if entry.kind == b"mp4a":
        esds = child(data, entry, b"esds", skip=_AUDIO_SAMPLE_ENTRY_BYTES)
        object_type = _aac_object_type(data[esds.payload_offset + 4 : esds.end]) if esds else None
        return (f"mp4a.40.{object_type}" if object_type else "mp4a.40.2"), 0, 0
    return None, 0, 0


def _aac_object_type(descriptors: bytes) -> int | None:
    """The audio object type (2 = AAC-LC) in an esds box's descriptors: the first 5 bits
    of the DecoderSpecificInfo (tag 5), inside DecoderConfig (tag 4), inside ES (tag 3)."""
    position = 0
    while position < len(descriptors):
        tag, position = descriptors[position], position + 1
        length = 0
        for _ in range(4):  # the length is 1-4 bytes, 7 bits each, high bit = more
            byte, position = descriptors[position], position + 1
            length = (length << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        if tag == 0x03:
            flags = descriptors[position + 2]
            position += 3 + (2 if flags & 0x80 else 0) + (2 if flags & 0x20 else 0)
            if flags & 0x40:
                position += 1 + descriptors[position]
        elif tag == 0x04:
            position += 13  # objectTypeIndication .. avgBitrate
        elif tag == 0x05:
            return descriptors[position] >> 3 if length else None
        else:
            position += length
    return None


def _fragment_seconds(moof_bytes: bytes, tracks: dict[int, _Track]) -> float:
    """How long a fragment plays: the longest of its track runs, in seconds."""
    moof = next(boxes_in(moof_bytes), None)
    if moof is None or moof.kind != b"moof":
        raise NotFragmented("a moof box is malformed")
    longest = 0.0
    for traf in (box for box in boxes_in(moof_bytes, moof.payload_offset, moof.end) if box.kind == b"traf"):
        tfhd = child(moof_bytes, traf, b"tfhd")
        if tfhd is None:
            raise NotFragmented("a traf box lacks its tfhd")
        track = tracks.get(_u32(moof_bytes, tfhd.payload_offset + 4))
        if track is None or not track.timescale:
            continue
        default = _tfhd_default_duration(moof_bytes, tfhd) or track.default_duration
        ticks = sum(
            _trun_ticks(moof_bytes, trun, default)
            for trun in boxes_in(moof_bytes, traf.payload_offset, traf.end)
            if trun.kind == b"trun"
        )
        longest = max(longest, ticks / track.timescale)
    return longest


def _tfhd_default_duration(data: bytes, tfhd: Box) -> int:
    _, flags = _version_and_flags(data, tfhd)
    if not flags & _TFHD_DEFAULT_SAMPLE_DURATION:
        return 0
    position = tfhd.payload_offset + 8  # version/flags, track_ID
    position += 8 if flags & _TFHD_BASE_DATA_OFFSET else 0
    position += 4 if flags & _TFHD_SAMPLE_DESCRIPTION_INDEX else 0
    return _u32(data, position)


def _trun_ticks(data: bytes, trun: Box, default_duration: int) -> int:
    """The summed sample durations of one track run."""
    _, flags = _version_and_flags(data, trun)
    count = _u32(data, trun.payload_offset + 4)
    if not flags & _TRUN_SAMPLE_DURATION:
        return count * default_duration
    position = trun.payload_offset + 8
    position += 4 if flags & _TRUN_DATA_OFFSET else 0
    position += 4 if flags & _TRUN_FIRST_SAMPLE_FLAGS else 0
    stride = 4 * sum(1 for field in _TRUN_SAMPLE_FIELDS if flags & field)
    if position + count * stride > trun.end:
        raise NotFragmented("a trun box lists more samples than it holds")
    return sum(_u32(data, position + index * stride) for index in range(count))


def peak_bitrate(index: FragmentIndex) -> int:
    """The highest segment bitrate in bits/s (what HLS calls BANDWIDTH)."""
    return max(
        (math.ceil(s.length * 8 / index.segment_s(s)) for s in index.segments if s.ticks),
        default=0,
    )


def average_bitrate(index: FragmentIndex) -> int:
    """Segment bytes over the playing time, in bits/s (HLS AVERAGE-BANDWIDTH)."""
    seconds = index.duration_s
    return math.ceil(sum(s.length for s in index.segments) * 8 / seconds) if seconds else 0
