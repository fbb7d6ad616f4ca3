"""GET/HEAD /stream/{name}, /original/{name} and /thumbnail/{name}: stored bytes by range.

Theory of operation
-------------------
One read starts a stream: `read_plan.guess` says which bytes a player's request most
likely wants (the whole video, or one range from a given offset), and the read is opened
(client.open_read): the master answers with the video's record (the part of it a read
needs) and where its bytes are, and the web reads them from the datanodes itself
(direct_reads.py; through the master with --relay-reads). The pure `ranges.decide` then
settles the answer from the record (validators, size, RFC 9110); if it picked exactly
the guessed range, the bytes on their way are the body, otherwise the read is dropped
and the decided ranges are read afresh. Conditional requests stat first.
A 412 or 416 carries ranges.py's headers and a JSON sentence, like every refusal.

The status line and headers go out only once the first bytes of the body are in hand, so
every failure before that (the video was deleted, no replica answers, the master is
restarting) is a clean JSON 404/503 with Retry-After. After the headers, a failure can
only cut the response short: the connection is aborted and the player sees a truncated
body, never a second HTTP response inside the first one.

Which bytes a route serves is a *part* of the video, each a blob the master names in the
record's `parts` with its size, sha256 (the strong ETag) and content type: 'video' (what
/stream plays: the best web rendition, or the original), 'original' (the file as
uploaded, sent as a download), 'poster', and each rendition by height (web/hls.py).

Each chunk is written with `await response.write`, which waits for the viewer's socket to
drain, so a slow viewer slows the datanode read instead of filling a buffer. A viewer that
takes fewer bytes than `--min-stream-rate` over a window is cut off (pace.py). That is
also what ends the stream of a player that stopped reading for good: the minimum is
always positive, so a window in which nothing was taken is always too slow, and the
player asks for its range again when it resumes. A timer per write would only repeat it
(at ~2 % of the web's CPU per 64 KiB range).

The master is asked as the visitor, so a video they may not see is a 404. A public
video may be kept in shared caches, any other only privately, and every copy is
revalidated on each use (ranges.PUBLIC_CACHE), so making a video private takes effect at
once. Stream slots are bounded in all and per client address.
"""

from __future__ import annotations

import logging
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable

from aiohttp import web

from myyoutube import permissions, preconditions, ranges, read_plan
from myyoutube.client import MasterClient, OpenRead, RequestFailed
from myyoutube.quietlog import QuietLog
from myyoutube.web import viewers
from myyoutube.web.auth import client_address
from myyoutube.web.common import LIMITS, METRICS, SECURITY_HEADERS, error, master_for
from myyoutube.web.pace import enforce_rate

log = logging.getLogger(__name__)
quiet = QuietLog(log)


class _HeadersWithBody(web.StreamResponse):
    """A stream response whose status line and headers leave with the first body bytes,
    in one write (one system call, one TCP segment for a small range): prepare() runs
    only once those bytes are in hand anyway. aiohttp's own Response does the same; with
    an aiohttp that no longer reads this attribute, headers go out on their own again."""

    _send_headers_immediately = False


# Passed to ranges.decide for an answer that cannot be multipart; it never reaches a client.
_SINGLE_PART_BOUNDARY = "single-part"
# What a refused conditional or range request is told (ranges.py decides; its answers
# have no body of their own).
_REFUSALS = {
    412: "The file has changed since the version this request names (If-Match or "
    "If-Unmodified-Since); fetch it again.",
    416: "The range asked for lies past the end of the file ({size} bytes); ask for a range within it.",
}


class ViewerGone(Exception):
    """The viewer closed the connection or stopped reading: routine, not a failure."""


async def stream(request: web.Request) -> web.StreamResponse:
    viewers.report_view(request)
    return await serve(request, "video")


async def thumbnail(request: web.Request) -> web.StreamResponse:
    """The poster, with the same validators, caching and ranges as the video itself."""
    return await serve(request, "poster")


async def original(request: web.Request) -> web.StreamResponse:
    """The file as uploaded, byte for byte, as a download under its own name."""
    return await serve(request, "original")


def _describe(video: dict, part: str) -> tuple[int, preconditions.Validators, str]:
    """(size, validators, content type) of a video's part (see transcoding.part_blob on
    the master: 'video', 'original', 'poster' or a rendition's height); 404 if none."""
    described = video.get("parts", {}).get(part)
    if described is None:
        raise RequestFailed(
            "not_found", "This video has no such part." if part != "poster" else "This video has no poster."
        )
    # The 'video' part is the original until a rendition is made, then the rendition:
    # other bytes under the same upload date. A date validator for it would let a client's
    # If-Range splice ranges of the two files (or If-Modified-Since keep a replaced copy),
    # so it has only its ETag; every other part's bytes never change after their upload.
    made = None if part == "video" else video["uploaded_at"]
    validators = preconditions.Validators(etag=f'"{described["sha256"]}"', last_modified=made)
    return described["size"], validators, described["content_type"]


async def _open(master: MasterClient, request: web.Request, part: str) -> tuple[dict, OpenRead | None]:
    """The video's record, and the read its answer most likely needs (None if unguessable)."""
    name = request.match_info["name"]
    guess = read_plan.guess(request.method, request.headers)
    if guess is None:
        return await master.stat(name), None
    read = await master.open_read(name, *guess, part=part)
    return read.video, read


async def serve(request: web.Request, part: str) -> web.StreamResponse:
    """Answer GET/HEAD of one stored part as ranges.decide says, relaying its bytes."""
    master = master_for(request)
    with request.app[LIMITS]["streams"].take(client_address(request)):
        video, read = await _open(master, request, part)
        try:
            size, validators, content_type = _describe(video, part)
            boundary = _boundary_for(request)
            cache = cache_control(video)
            decision = ranges.decide(
                request.method, request.headers, size, content_type, validators, boundary, cache
            )
            if read is not None and not _is_exactly(decision, read):
                read.close()  # the guess was wrong (If-Range changed, past the end...)
                read = None
            if part == "original":
                decision.headers["Content-Disposition"] = _attachment(video["name"])
            if not decision.ranges:
                if decision.status in _REFUSALS:
                    return _refusal(decision, size)
                return web.Response(status=decision.status, headers=decision.headers)
            first = decision.ranges[0]
            if read is None:  # the record came first (a stat): the read must match it
                read = await master.open_read(video["name"], first.start, first.length, part, reuse=False)
                _require_same_bytes(video, read, part)
            head = await read.next_chunk()  # before any header: a failure here is a clean error
            return await _send(request, decision, (read, head), video, part, size, content_type, boundary)
        finally:
            if read is not None:
                read.close()


def cache_control(video: dict) -> str:
    """What caches may do with an answer about `video`: a public one may be kept in shared
    caches, any other only in the viewer's own; every copy is revalidated before each use."""
    return ranges.PUBLIC_CACHE if video.get("visibility") == permissions.PUBLIC else ranges.PRIVATE_CACHE


def _boundary_for(request: web.Request) -> str:
    """A multipart answer's boundary must be unguessable: a video holding it could fake
    parts. Only a Range that lists several ranges, i.e. has a comma, can be answered in
    parts (Range is a singleton field: two of them are ignored), so other requests skip
    the system call that makes one."""
    return secrets.token_hex(16) if "," in request.headers.get("Range", "") else _SINGLE_PART_BOUNDARY


def _refusal(decision: ranges.Decision, size: int) -> web.Response:
    """A 412 or 416 with ranges.py's headers and, as every refusal, a sentence in JSON."""
    headers = {k: v for k, v in decision.headers.items() if k != "Content-Length"}
    return error(decision.status, _REFUSALS[decision.status].format(size=size), **headers)


def _attachment(name: str) -> str:
    """Content-Disposition for a download saved under the video's own name (RFC 6266:
    an ASCII fallback, then the exact name in RFC 5987 encoding)."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{urllib.parse.quote(name, safe='')}"


def _require_same_bytes(decided: dict, read: OpenRead, part: str) -> None:
    """RequestFailed('unavailable') unless `read` reads the very bytes the answer was
    decided on (its ETag, Content-Length, Content-Range). A read opened after the decision
    (a guess that missed, a multipart answer's later ranges) asks the master afresh, and
    the 'video' part may have become a rendition meanwhile: its bytes must never be
    spliced into an answer about the original."""
    if read.video.get("parts", {}).get(part, {}).get("sha256") != decided["parts"][part]["sha256"]:
        raise RequestFailed("unavailable", "The video changed while it was being read; try again.")


def _is_exactly(decision: ranges.Decision, read: OpenRead) -> bool:
    return len(decision.ranges) == 1 and (decision.ranges[0].start, decision.ranges[0].length) == (
        read.offset,
        read.length,
    )


async def _send(
    request: web.Request,
    decision: ranges.Decision,
    opened: tuple[OpenRead, bytes],
    video: dict,
    part: str,
    size: int,
    content_type: str,
    boundary: str,
) -> web.StreamResponse:
    """Send the headers and every range; `opened` is the first range's read and its first
    bytes. After the headers a failure aborts the connection."""
    counters = request.app[METRICS]
    response = _HeadersWithBody(status=decision.status, headers=decision.headers)
    response.headers.update(SECURITY_HEADERS)
    sent = 0

    async def send(data: bytes) -> None:
        nonlocal sent
        try:
            await response.write(data)
        except ConnectionError as exc:  # the viewer left, or enforce_rate cut it off
            raise ViewerGone(str(exc) or type(exc).__name__) from exc
        counters.stream_bytes.inc(len(data))
        sent += len(data)

    minimum = request.app[LIMITS]["stream_rate"]
    with counters.active_streams.track_inprogress(), enforce_rate(request, minimum, lambda: sent, "viewer"):
        await response.prepare(request)
        try:
            for index, byte_range in enumerate(decision.ranges):
                if decision.is_multipart:
                    await send(ranges.multipart_part_header(byte_range, size, content_type, boundary))
                if index == 0:
                    await _relay(*opened, send)  # serve() closes the first read
                    continue
                read = await master_for(request).open_read(
                    video["name"], byte_range.start, byte_range.length, part, reuse=False
                )
                try:
                    _require_same_bytes(video, read, part)
                    await _relay(read, await read.next_chunk(), send)
                finally:
                    read.close()
            if decision.is_multipart:
                await send(ranges.multipart_closing(boundary))
            await response.write_eof()
        except Exception as exc:
            _cut(request, exc)
    return response


async def _relay(read: OpenRead, data: bytes, send: Callable[[bytes], Awaitable[None]]) -> None:
    """Send `data`, then the rest of `read`."""
    while data:
        await send(data)
        data = await read.next_chunk()


def _cut(request: web.Request, exc: Exception) -> None:
    """End a response whose headers are out: abort the connection, so the client sees a
    short body (never another response written into this one)."""
    if request.transport is not None:
        request.transport.abort()
    if isinstance(exc, ViewerGone):
        log.debug("%s %s: viewer left: %s", request.method, request.raw_path, exc)
    else:
        quiet.warning(
            "%s %s: stream cut after its headers: %s: %s",
            request.method,
            request.raw_path,
            type(exc).__name__,
            exc,
        )
