"""HTTP GET/HEAD of a stored video: which status, which bytes, which headers.

Theory of operation
-------------------
`decide` is a pure function from (method, request headers, video size, validators) to a
`Decision`: a status code, the byte ranges of the video to send as the body, and the
response headers. The aiohttp handler does all I/O; it sends `Decision.headers` and then
exactly `Decision.ranges`, wrapping each in `multipart_part_header` and ending with
`multipart_closing` when there are two or more. Nothing here raises on what a client sent:
an invalid or hostile header turns into the response RFC 9110 prescribes for it, most often
"ignore the header and send the whole video" (200), which is always a correct answer.

Steps, in the order RFC 9110 §13.2.2 fixes: If-Match, else If-Unmodified-Since (failure is
412); If-None-Match, else If-Modified-Since (failure is 304); then, for GET only (§14.2),
If-Range and Range. HEAD gets the headers a GET without Range would get (§9.3.2). The
conditions and the validators they compare with are preconditions.py's.

Multiple ranges are answered with one 206 multipart/byteranges response (§14.6), guarded
against amplification, since §14.2 lets a server ignore sets that look like an attack:
  * more than MAX_RANGES range-specs, or a Range header longer than MAX_RANGE_HEADER_BYTES,
    is ignored (200): such sets only cost per-part work and header bytes;
  * if the requested ranges add up to more bytes than the video, Range is ignored (200):
    "bytes=0-,0-,0-" must not turn one video into many copies of it;
  * overlapping ranges, and ranges at most COALESCE_GAP_BYTES apart, are merged
    (§15.3.7.2); if one range is left the answer is a plain single-part 206. Parts keep
    the order the client asked for them in (§15.3.7.2 SHOULD).

Bodiless answers: 304 carries only what §15.4.5 asks for (ETag, Last-Modified,
Cache-Control) plus Accept-Ranges, and no Content-Length, since a 304's Content-Length would
describe the 200 it replaces. 412 and 416 carry the validators, `Content-Length: 0` (their
body is empty, and saying so keeps the connection reusable) and `Cache-Control: no-store`,
so no cache replays an answer that depends on this request's conditions. A 416 also says
`Content-Range: bytes */SIZE` (§15.5.17).

A zero-length video ignores Range altogether and answers 200 with an empty body: §14.2
allows a server to ignore Range when the representation has no content, and §14.4 has no
Content-Range able to describe the nothing a satisfiable "bytes=-5" would select.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate

from myyoutube import preconditions
from myyoutube.preconditions import Validators

# Real clients (players, download managers) send one range, PDF-style viewers a handful;
# more parts only cost a part header each and are a known amplification pattern (§14.2).
MAX_RANGES = 16
# Sixteen range-specs of two 20-digit offsets fit in ~700 bytes; a longer header is junk
# or an attack, and refusing it before parsing bounds the work spent on it.
MAX_RANGE_HEADER_BYTES = 1024
# A separate part costs ~90+ bytes of part header (boundary, Content-Type, Content-Range);
# sending a smaller gap between two ranges is cheaper than starting a new part (§15.3.7.2).
COALESCE_GAP_BYTES = 80
# The caller chooses (decide's `cache_control`). Every cached copy is revalidated (the ETag
# makes that a cheap 304) before each use: a video made private, deleted or replaced under
# its name stops being served at once, by shared caches too. A freshness lifetime would let
# a proxy keep showing a video its owner just made private to anyone, for that long. A
# public video's bytes may still be kept by shared caches (a 304 saves every byte of them);
# anything else only by the viewer's own.
PUBLIC_CACHE = "public, no-cache"
PRIVATE_CACHE = "private, no-cache"
# 412 and 416 depend on this request's conditions; a cache must never replay them.
_UNCACHEABLE = "no-store"

# [0-9], not \d: \d also matches non-ASCII digits, which DIGIT (RFC 5234) does not.
_RANGE_SPEC_RE = re.compile(r"([0-9]+)-([0-9]*)|-([0-9]+)")
# Boundary characters legal in RFC 2046 that are also tchars, so no quoting is needed.
_BOUNDARY_RE = re.compile(r"[0-9A-Za-z'+_.-]{1,70}")
_CONTROL_CHAR_RE = re.compile(r"[\x00-\x1f\x7f]")

_CONDITIONAL_HEADERS = (
    "range",
    "if-range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
)
_LIST_HEADERS = ("if-match", "if-none-match")


@dataclass(frozen=True)
class ByteRange:
    """Bytes [start, stop) of the video; never empty."""

    start: int
    stop: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.stop:
            raise ValueError(f"bad byte range [{self.start}, {self.stop})")

    @property
    def length(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Decision:
    """What to answer. The body is exactly `ranges`: () means send no body.

    200: one range covering the video (none if empty or HEAD). 206: one range for a
    single-part answer, two or more for multipart/byteranges. 304, 412, 416: ().
    """

    status: int
    ranges: tuple[ByteRange, ...]
    headers: dict[str, str]

    @property
    def is_multipart(self) -> bool:
        return self.status == 206 and len(self.ranges) > 1


def decide(
    method: str,
    request_headers: Mapping[str, str],
    size: int,
    content_type: str,
    validators: Validators,
    boundary: str,
    cache_control: str = PUBLIC_CACHE,
) -> Decision:
    """Decide the response to a GET or HEAD of a video of `size` bytes; `cache_control`
    goes on answers a cache may keep (PUBLIC_CACHE or PRIVATE_CACHE)."""
    _check_server_inputs(method, size, content_type, boundary)
    headers = _normalize_headers(request_headers)
    failed_status = preconditions.failed_status(headers, validators)
    if failed_status is not None:
        return _bodiless(failed_status, validators, size, cache_control)
    # §14.2: GET is the only method for which range handling is defined; a HEAD answers
    # with what a plain GET would carry.
    ranges = _select_ranges(headers, size, validators) if method == "GET" else None
    if ranges is None:
        body = (ByteRange(0, size),) if method == "GET" and size > 0 else ()
        return Decision(200, body, _body_headers(validators, content_type, size, cache_control))
    if not ranges:
        return _bodiless(416, validators, size, cache_control)
    if len(ranges) == 1:
        headers = _body_headers(validators, content_type, ranges[0].length, cache_control)
        headers["Content-Range"] = _content_range(ranges[0], size)
        return Decision(206, (ranges[0],), headers)
    body_length = len(multipart_closing(boundary)) + sum(
        len(multipart_part_header(part, size, content_type, boundary)) + part.length for part in ranges
    )
    multipart_type = f"multipart/byteranges; boundary={boundary}"
    return Decision(206, tuple(ranges), _body_headers(validators, multipart_type, body_length, cache_control))


def multipart_part_header(part: ByteRange, size: int, content_type: str, boundary: str) -> bytes:
    """The delimiter and headers that precede one part's bytes in multipart/byteranges.

    The leading CRLF belongs to the delimiter (RFC 2046 §5.1.1); before the first part it
    reads as an empty preamble, which every multipart parser accepts.
    """
    return (
        f"\r\n--{boundary}\r\nContent-Type: {content_type}\r\n"
        f"Content-Range: {_content_range(part, size)}\r\n\r\n"
    ).encode("ascii")


def multipart_closing(boundary: str) -> bytes:
    """The close-delimiter that ends a multipart/byteranges body."""
    return f"\r\n--{boundary}--\r\n".encode("ascii")


def _check_server_inputs(method: str, size: int, content_type: str, boundary: str) -> None:
    # These come from the handler and the store, never from the client: raising is right.
    if method not in ("GET", "HEAD"):
        raise ValueError(f"decide() handles GET and HEAD only, got {method!r}")
    if size < 0:
        raise ValueError(f"negative size {size}")
    if not content_type.isascii() or _CONTROL_CHAR_RE.search(content_type):
        raise ValueError(f"content type unfit for a header: {content_type!r}")
    if not _BOUNDARY_RE.fullmatch(boundary):
        raise ValueError(f"boundary must match {_BOUNDARY_RE.pattern}: {boundary!r}")


def _normalize_headers(request_headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-cased names of the headers we read, each field's lines combined (items(), not
    dict(): a CIMultiDictProxy yields a repeated field once per line)."""
    values_by_name: dict[str, list[str]] = {}
    for name, value in request_headers.items():
        lowered = name.lower()
        if lowered in _CONDITIONAL_HEADERS:
            values_by_name.setdefault(lowered, []).append(value)
    normalized: dict[str, str] = {}
    for name, values in values_by_name.items():
        if name in _LIST_HEADERS:
            # §5.3: lines of a list-based field combine, in order, with commas.
            normalized[name] = ", ".join(values)
        else:
            # A singleton field sent twice is invalid; "" is invalid for every parser below,
            # so the field is treated as present but unusable.
            normalized[name] = values[0] if len(values) == 1 else ""
    return normalized


def _select_ranges(headers: dict[str, str], size: int, validators: Validators) -> list[ByteRange] | None:
    """The ranges to answer 206 with; [] for 416; None to ignore Range and send it all."""
    range_value = headers.get("range")
    if range_value is None or size == 0:
        return None
    # §13.1.5: If-Range is only evaluated with a Range; if false, the client's partial copy
    # is stale, so the whole video is the useful answer, even for an unsatisfiable Range.
    if_range = headers.get("if-range")
    if if_range is not None and not preconditions.if_range_matches(if_range, validators):
        return None
    requested = _parse_range_header(range_value, size)
    if requested is None:
        return None
    satisfiable = [byte_range for byte_range in requested if byte_range is not None]
    if not satisfiable:
        return []  # §14.1.1: no range-spec is satisfiable
    if sum(byte_range.length for byte_range in satisfiable) > size:
        return None  # more bytes than the video: the overlap-amplification attack (§14.2)
    return _coalesce(satisfiable)


def _parse_range_header(field_value: str, size: int) -> list[ByteRange | None] | None:
    """Each range-spec resolved against `size` (None if unsatisfiable), or None if the
    header is to be ignored: too long, another unit, invalid, or too many ranges (§14.2).
    """
    if len(field_value) > MAX_RANGE_HEADER_BYTES:  # characters; non-ASCII is invalid anyway
        return None
    unit, equals, range_set = field_value.strip(" \t").partition("=")
    if not equals or unit.lower() != "bytes":  # §14.1: range units are case-insensitive
        return None
    resolved: list[ByteRange | None] = []
    for element in range_set.split(","):
        element = element.strip(" \t")  # OWS around commas (§5.6.1)
        if not element:
            continue  # empty list elements are skipped (§5.6.1.2)
        if len(resolved) == MAX_RANGES:
            return None  # one range-spec more than we serve
        spec = _RANGE_SPEC_RE.fullmatch(element)
        if spec is None:
            return None
        first, last, suffix = spec.groups()
        if suffix is not None:
            # §14.1.2: the last N bytes, all of them if the video is shorter; N=0 selects
            # nothing and is unsatisfiable.
            suffix_length = int(suffix)
            start = max(0, size - suffix_length)
            resolved.append(ByteRange(start, size) if suffix_length else None)
        elif last and int(last) < int(first):
            return None  # §14.1.2: last-pos before first-pos makes the range-set invalid
        else:
            # §14.1.2: a last-pos past the end, or none, means "to the end"; a first-pos
            # at or past the end is unsatisfiable.
            stop = min(int(last) + 1, size) if last else size
            resolved.append(ByteRange(int(first), stop) if int(first) < size else None)
    # §14.1.1: range-set is 1#range-spec, so a set of only empty elements is invalid.
    return resolved or None


def _coalesce(ranges: list[ByteRange]) -> list[ByteRange]:
    """Merge ranges that overlap or are at most COALESCE_GAP_BYTES apart (§15.3.7.2).

    Merging looks at ranges in offset order; the result keeps the order in which the
    client listed the first range of each merged group (§15.3.7.2 SHOULD).
    """
    if len(ranges) == 1:  # a player's seek, nearly every request: nothing to merge
        return ranges
    by_offset = sorted(range(len(ranges)), key=lambda index: ranges[index].start)
    groups: list[tuple[int, int, int]] = []  # (start, stop, first request index)
    for index in by_offset:
        byte_range = ranges[index]
        if groups and byte_range.start <= groups[-1][1] + COALESCE_GAP_BYTES:
            start, stop, first_index = groups[-1]
            groups[-1] = (start, max(stop, byte_range.stop), min(first_index, index))
        else:
            groups.append((byte_range.start, byte_range.stop, index))
    groups.sort(key=lambda group: group[2])
    return [ByteRange(start, stop) for start, stop, _ in groups]


def _bodiless(status: int, validators: Validators, size: int, cache_control: str) -> Decision:
    """304, 412 or 416: validators and no body (see the module docstring for why)."""
    if status == 304:
        # §15.4.5: the fields a 200 would carry that help caches update; no length.
        return Decision(304, (), _common_headers(validators, cache_control))
    headers = _common_headers(validators, _UNCACHEABLE) | {"Content-Length": "0"}
    if status == 416:
        headers["Content-Range"] = f"bytes */{size}"  # §15.5.17
    return Decision(status, (), headers)


def _common_headers(validators: Validators, cache_control: str) -> dict[str, str]:
    headers = {
        "Accept-Ranges": "bytes",  # §14.3: tells players they may seek with Range
        "ETag": validators.etag,
        "Cache-Control": cache_control,
    }
    date = validators.date()
    if date is not None:
        headers["Last-Modified"] = formatdate(date, usegmt=True)
    return headers


def _body_headers(
    validators: Validators, content_type: str, content_length: int, cache_control: str
) -> dict[str, str]:
    return _common_headers(validators, cache_control) | {
        "Content-Type": content_type,
        "Content-Length": str(content_length),
    }


def _content_range(byte_range: ByteRange, size: int) -> str:
    """§14.4: inclusive first and last byte positions, then the complete length."""
    return f"bytes {byte_range.start}-{byte_range.stop - 1}/{size}"
