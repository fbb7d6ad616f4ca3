"""ISO BMFF (MP4) box headers: where each box starts, how long it is, what it is.

Theory of operation
-------------------
An MP4 file is a sequence of boxes, each a 4-byte big-endian size and a 4-character type,
then its payload; size 1 means a 64-bit size follows the type, size 0 means "to the end
of the enclosing space". Container boxes (moov, trak, moof, traf, ...) hold more boxes.

`boxes_in` walks the boxes of a byte buffer (pure); it needs only each box's header to be
present, so it also walks the first few KB of a file whose boxes run on far beyond it.
`file_boxes` walks a file's top-level boxes by seeking from header to header, reading 16
bytes per box whatever the file's size: a 2 GB rendition is indexed in a few hundred
small reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

BOX_HEADER_BYTES = 8
LARGE_BOX_HEADER_BYTES = 16  # size field 1: a 64-bit size follows the type


@dataclass(frozen=True)
class Box:
    """One box: its type, where it starts, its size (header included) and header length."""

    kind: bytes
    offset: int
    size: int
    header: int

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def payload_offset(self) -> int:
        return self.offset + self.header


def parse_header(head: bytes, offset: int, space_end: int) -> Box | None:
    """The box whose header starts `head` (at least 16 bytes if there are that many), found
    at file offset `offset` in a space ending at `space_end`; None if the header is cut off
    or malformed (a size smaller than its own header, or past the space)."""
    if len(head) < BOX_HEADER_BYTES:
        return None
    size, kind, header = int.from_bytes(head[:4], "big"), bytes(head[4:8]), BOX_HEADER_BYTES
    if size == 1:
        if len(head) < LARGE_BOX_HEADER_BYTES:
            return None
        size, header = int.from_bytes(head[8:16], "big"), LARGE_BOX_HEADER_BYTES
    elif size == 0:
        size = space_end - offset
    if size < header or offset + size > space_end:
        return None
    return Box(kind, offset, size, header)


def boxes_in(
    data: bytes, start: int = 0, end: int | None = None, space_end: int | None = None
) -> Iterator[Box]:
    """The boxes laid end to end in `data[start:end]`; offsets are indexes into `data`.

    `space_end` (default `end`) is where the enclosing space really ends, when `data` is
    only the beginning of it: boxes may then run past the buffer.
    """
    end = len(data) if end is None else end
    space_end = end if space_end is None else space_end
    offset = start
    while offset + BOX_HEADER_BYTES <= end:
        box = parse_header(data[offset : offset + LARGE_BOX_HEADER_BYTES], offset, space_end)
        if box is None:
            return
        yield box
        offset = box.end


def child(data: bytes, parent: Box, kind: bytes, skip: int = 0) -> Box | None:
    """The first box of type `kind` inside `parent` (whose bytes are in `data`), after
    `skip` bytes of the parent's own fields."""
    start = parent.payload_offset + skip
    return next((box for box in boxes_in(data, start, parent.end) if box.kind == kind), None)


def file_boxes(file: BinaryIO, file_size: int) -> Iterator[Box]:
    """The top-level boxes of an open file, reading only their headers."""
    offset = 0
    while offset + BOX_HEADER_BYTES <= file_size:
        file.seek(offset)
        box = parse_header(file.read(LARGE_BOX_HEADER_BYTES), offset, file_size)
        if box is None:
            return
        yield box
        offset = box.end
