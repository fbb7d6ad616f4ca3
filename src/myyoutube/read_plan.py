"""Which bytes of a video to ask the master for before its size is known (pure).

Theory of operation
-------------------
A stream request costs one round trip to the master when the web can guess the answer's
byte range from the request alone: no Range means the whole video, `bytes=N-` and
`bytes=A-B` mean one range starting at N or A. `guess` returns that range, and the master
answers a `ReadVideo` with the video's record first, then those bytes clamped to the
video's size (`clamp`, applied identically on both sides). The web then runs the full RFC
9110 decision (`ranges.decide`) with the record; if it selects exactly the clamped range,
the bytes already on their way are the answer. Otherwise (an If-Range that did not match,
a range past the end) the read is dropped and the decision served with fresh reads.

`guess` declines (None) where the answer depends on the validators before any byte is
sent (If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since: most end in 304 or
412) or on the size (suffix ranges, several ranges): those stat first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# A single `bytes=first-[last]` range-spec, as players send it; anything else is left to
# ranges.decide. 18 digits keep every value below 2**63, well past any video size.
_SIMPLE_RANGE_RE = re.compile(r"[ \t]*bytes[ \t]*=[ \t]*([0-9]{1,18})-([0-9]{0,18})[ \t]*", re.IGNORECASE)

_PRECONDITIONS = ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")


def guess(method: str, headers: Mapping[str, str]) -> tuple[int, int] | None:
    """(offset, length or -1 for "to the end") the answer will most likely carry, or None
    if the web should stat first."""
    if method != "GET" or any(name in headers for name in _PRECONDITIONS):
        return None
    field = headers.get("Range")
    if field is None:
        return (0, -1)
    match = _SIMPLE_RANGE_RE.fullmatch(field)
    if match is None:
        return None
    first, last = int(match[1]), match[2]
    if not last:
        return (first, -1)
    if int(last) < first:
        return None
    return (first, int(last) - first + 1)


def clamp(offset: int, length: int, size: int) -> tuple[int, int]:
    """[offset, offset+length) within [0, size), as (offset, length); length -1 reads to
    the end. An offset at or past the end reads nothing."""
    if offset < 0 or length < -1:
        raise ValueError(f"bad read of {length} bytes at {offset}")
    start = min(offset, size)
    stop = size if length == -1 else min(size, start + length)
    return start, stop - start


def part_size(video: Mapping, part: str) -> int:
    """The size in bytes of a video record's `part` ('video', 'original', 'poster' or a
    rendition's height, as listed in its `parts`); 0 if it has no such part."""
    parts = video.get("parts")
    if parts is None:  # a record without parts (written by hand): the video and its poster
        return int(video["size"] if part == "video" else video.get("thumbnail_size") or 0)
    return int(parts.get(part, {}).get("size", 0))
