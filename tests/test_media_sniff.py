"""Tests for myyoutube.media.sniff: container type from the first bytes, never from a name."""

from __future__ import annotations

import random
from fractions import Fraction

import av
import numpy as np
import pytest

from myyoutube.media import SNIFF_BYTES, sniff

# --- hand-made headers ------------------------------------------------------------------------

MP4 = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + b"\x00\x00\x00\x08free"
M4V = b"\x00\x00\x00\x18ftypM4V \x00\x00\x00\x01M4V mp42"
MP4_3GP = b"\x00\x00\x00\x14ftyp3gp4\x00\x00\x02\x003gp4"
QUICKTIME = b"\x00\x00\x00\x14ftypqt  \x20\x05\x03\x00qt  " + b"\x00\x00\x00\x08wide"
# EBML header: magic, size, then EBMLVersion..., DocType (0x4282) with its string.
WEBM = (
    b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08"
    b"\x42\x82\x84webm\x42\x87\x81\x04\x42\x85\x81\x02"
)
MATROSKA = (
    b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08"
    b"\x42\x82\x88matroska\x42\x87\x81\x04\x42\x85\x81\x02"
)
EBML_OTHER = b"\x1a\x45\xdf\xa3\x9b\x42\x86\x81\x01\x42\x82\x84abcd\x42\x87\x81\x01"
OGG = b"OggS\x00\x02" + b"\x00" * 8 + b"\x12\x34\x56\x78" + b"\x00" * 8 + b"\x01\x1e\x01vorbis"
AVI = b"RIFF\x24\x10\x00\x00AVI LIST\x0c\x01\x00\x00hdrlavih"
WAV = b"RIFF\x24\x10\x00\x00WAVEfmt \x10\x00\x00\x00"
TS = b"".join(b"\x47\x40\x00\x10" + bytes(184) for _ in range(3))
MPEG_PS = b"\x00\x00\x01\xba\x44\x00\x04\x00\x04\x01\x01\x89\xc3\xf8\x00\x00\x01\xbb"


@pytest.mark.parametrize(
    "prefix, expected",
    [
        (MP4, "video/mp4"),
        (M4V, "video/mp4"),
        (MP4_3GP, "video/mp4"),
        (QUICKTIME, "video/quicktime"),
        (WEBM, "video/webm"),
        (MATROSKA, "video/x-matroska"),
        (OGG, "video/ogg"),
        (AVI, "video/x-msvideo"),
        (TS, "video/mp2t"),
        (MPEG_PS, "video/mpeg"),
    ],
    ids=["mp4", "m4v", "3gp", "quicktime", "webm", "matroska", "ogg", "avi", "mpeg-ts", "mpeg-ps"],
)
def test_known_container_headers(prefix, expected):
    """Each container's signature bytes map to its MIME type."""
    assert sniff(prefix) == expected
    assert sniff(prefix + bytes(SNIFF_BYTES)) == expected  # trailing bytes do not matter


@pytest.mark.parametrize(
    "prefix",
    [
        b"",
        b"\x00",
        b"\x00\x00\x00\x20ftyp",  # ftyp with no brand yet
        EBML_OTHER,  # EBML but neither webm nor matroska
        b"\x1a\x45\xdf\xa3",  # bare EBML magic
        WAV,  # RIFF but not AVI
        b"RIFF",
        TS[: 3 * 188 - 1],  # too short to see three sync bytes
        b"\x47" + bytes(187) + b"\x47" + bytes(187) + b"\x00" + bytes(187),  # third sync missing
        b"Hello, this is a plain text file.\n" * 40,
        b"<!DOCTYPE html><html><body>not a video</body></html>",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
        b"PK\x03\x04\x14\x00\x00\x00",
        b"ID3\x04\x00\x00\x00\x00\x00\x00",
    ],
    ids=lambda prefix: repr(prefix[:12]),
)
def test_unknown_or_too_short_prefixes_are_none(prefix):
    """Text, other formats, empty and truncated signatures are not recognised as video."""
    assert sniff(prefix) is None


def test_random_bytes_are_none():
    """A hundred random 4 KiB prefixes are never taken for video."""
    rng = random.Random(2024)
    for _ in range(100):
        prefix = rng.randbytes(SNIFF_BYTES)
        if prefix[:1] == b"\x47":  # keep clear of a chance TS sync at offset 0
            prefix = b"\x00" + prefix[1:]
        assert sniff(prefix) is None


def test_webm_doctype_beyond_sniff_bytes_not_seen():
    """A 'webm' string past SNIFF_BYTES is ignored: only the header is consulted."""
    prefix = b"\x1a\x45\xdf\xa3" + bytes(SNIFF_BYTES) + b"webm"
    assert sniff(prefix) is None


def test_name_is_never_consulted():
    """sniff takes only bytes, so a text file named like a video is still None."""
    assert sniff(b"cat.mp4") is None


# --- real files muxed with PyAV ---------------------------------------------------------------

CONTAINERS = [
    ("mp4", "libx264", {"movflags": "+faststart"}, "video/mp4"),
    ("mov", "libx264", {}, "video/quicktime"),
    ("webm", "libvpx", {}, "video/webm"),
    ("matroska", "libx264", {}, "video/x-matroska"),
    ("ogg", "libvpx", {}, "video/ogg"),
    ("avi", "mpeg4", {}, "video/x-msvideo"),
    ("mpegts", "mpeg2video", {}, "video/mp2t"),
    ("mpeg", "mpeg2video", {}, "video/mpeg"),
]


def mux(path, container_format: str, codec: str, options: dict[str, str]) -> bytes:
    """A few 64x48 frames encoded with `codec` in `container_format`, written to `path`."""
    with av.open(str(path), "w", format=container_format, options=options) as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = Fraction(1, 10)
        for index in range(4):
            rgb = np.full((48, 64, 3), index * 40, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path.read_bytes()


@pytest.mark.parametrize(
    "container_format, codec, options, expected", CONTAINERS, ids=[c[0] for c in CONTAINERS]
)
def test_real_files_from_ffmpeg_muxers(tmp_path, container_format, codec, options, expected):
    """The first SNIFF_BYTES of a file written by FFmpeg's muxer sniff as the right type."""
    data = mux(tmp_path / "video", container_format, codec, options)
    assert len(data) > 0
    assert sniff(data[:SNIFF_BYTES]) == expected
