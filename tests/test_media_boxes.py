"""Tests for myyoutube.media.boxes and sniff.needs_faststart: MP4 box headers (pure)."""

from __future__ import annotations

import struct

from myyoutube.media.boxes import Box, boxes_in, child, file_boxes
from myyoutube.media.sniff import needs_faststart


def box(kind: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def large_box(kind: bytes, payload: bytes) -> bytes:
    """A box with a 64-bit size (size field 1)."""
    return struct.pack(">I", 1) + kind + struct.pack(">Q", 16 + len(payload)) + payload


def kinds(data: bytes, **bounds) -> list[bytes]:
    return [found.kind for found in boxes_in(data, **bounds)]


def test_boxes_are_walked_end_to_end():
    """ftyp, a 64-bit-size mdat and a free box are found with their offsets and sizes."""
    data = box(b"ftyp", b"isom") + large_box(b"mdat", b"x" * 100) + box(b"free")
    found = list(boxes_in(data))
    assert found == [Box(b"ftyp", 0, 12, 8), Box(b"mdat", 12, 116, 16), Box(b"free", 128, 8, 8)]
    assert found[1].payload_offset == 28 and found[1].end == 128


def test_size_zero_runs_to_the_end_of_the_space():
    """A size-0 box takes the rest of its enclosing space."""
    data = box(b"ftyp") + struct.pack(">I", 0) + b"mdat" + b"y" * 50
    assert list(boxes_in(data))[-1] == Box(b"mdat", 8, 58, 8)


def test_walk_stops_at_a_cut_or_malformed_header():
    """A header cut short, a size below 8 or a box past the space ends the walk, no error."""
    assert kinds(box(b"ftyp") + b"\x00\x00\x00") == [b"ftyp"]
    assert kinds(box(b"ftyp") + struct.pack(">I", 4) + b"junk") == [b"ftyp"]
    assert kinds(box(b"ftyp") + struct.pack(">I", 999) + b"mdat") == [b"ftyp"]
    assert kinds(box(b"ftyp") + struct.pack(">I", 1) + b"mdat" + b"\x00\x00") == [b"ftyp"]


def test_walk_of_a_prefix_may_run_past_the_buffer():
    """With the space's real end given, boxes whose payload is beyond the buffer are seen."""
    data = box(b"ftyp") + struct.pack(">I", 10_000) + b"moov"
    assert kinds(data) == [b"ftyp"]
    assert kinds(data, space_end=1 << 40) == [b"ftyp", b"moov"]


def test_child_finds_a_box_inside_another_after_its_own_fields():
    """child() looks inside a container box, skipping fixed fields before its children."""
    inner = box(b"tkhd", b"\x00" * 4) + box(b"mdia", box(b"mdhd"))
    data = box(b"trak", inner)
    trak = next(boxes_in(data))
    mdia = child(data, trak, b"mdia")
    assert mdia is not None and child(data, mdia, b"mdhd") == Box(b"mdhd", 28, 8, 8)
    assert child(data, trak, b"stbl") is None
    entry = box(b"avc1", b"\x00" * 6 + box(b"avcC", b"\x01\x64\x00\x28"))
    parent = next(boxes_in(entry))
    assert child(entry, parent, b"avcC", skip=6) is not None


class CountingFile:
    """A real open file that counts the bytes read from it."""

    def __init__(self, file) -> None:
        self.file, self.read_bytes = file, 0

    def seek(self, offset: int) -> int:
        return self.file.seek(offset)

    def read(self, count: int) -> bytes:
        data = self.file.read(count)
        self.read_bytes += len(data)
        return data


def test_file_walk_reads_only_headers(tmp_path):
    """Walking a 10 MB file of four boxes reads at most 16 bytes per box."""
    path = tmp_path / "big.mp4"
    path.write_bytes(
        box(b"ftyp", b"isom")
        + box(b"moov", b"m" * 100)
        + large_box(b"mdat", bytes(10_000_000))
        + box(b"mfra")
    )
    with open(path, "rb") as file:
        counting = CountingFile(file)
        found = list(file_boxes(counting, path.stat().st_size))
    assert [b.kind for b in found] == [b"ftyp", b"moov", b"mdat", b"mfra"]
    assert counting.read_bytes <= 16 * len(found)


def test_faststart_is_needed_when_mdat_comes_first():
    """mdat before moov needs faststart; moov first does not; neither seen yet does not."""
    ftyp = box(b"ftyp", b"isom\x00\x00\x02\x00")
    assert needs_faststart(ftyp + box(b"free") + struct.pack(">I", 50_000) + b"mdat")
    assert needs_faststart(ftyp + large_box(b"mdat", b"z" * 10))
    assert not needs_faststart(ftyp + struct.pack(">I", 50_000) + b"moov")
    assert not needs_faststart(ftyp)
    assert not needs_faststart(ftyp + struct.pack(">I", 70_000) + b"wide")  # the next header is beyond
