"""The web front end: HTML pages and the HTTP API, relaying bytes to and from the master.

Theory of operation
-------------------
The front end holds no video bytes of its own. An upload is read from the multipart body
one chunk at a time (`read_chunk`, never `post()`, which would buffer the whole video),
sniffed for a known container from its first bytes, and written to the master, which
only asks for the next chunk once every replica drained the last. A stream asks the pure
`ranges.decide` what to answer, then relays exactly those byte ranges from the master,
chunk by chunk, each `write` waiting for the viewer's socket to drain. So memory per
request is a few chunks whatever the video's size, and a slow viewer slows the datanode
read rather than filling a buffer.

Every failure a user can cause is answered with a JSON `{"error": "<sentence>"}` and the
right 4xx; bounded slots for uploads and streams answer 503 with Retry-After when full.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import socket
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from myyoutube import names, ranges
from myyoutube.client import MasterClient, RequestFailed
from myyoutube.stream import SOCKET_BUFFER_BYTES
from myyoutube.web import metrics, pages, uploads

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")

# Multipart framing around the file (boundaries, part headers) is small; Content-Length may
# exceed --max-upload-bytes by this much before we refuse it up front.
MULTIPART_OVERHEAD_BYTES = 64 * 1024

# A paused player stops reading; past this the stream is dropped (the player asks for
# its range again on resume). Shorter than the master's own stall timeout, so the web
# front end is the one that ends the relay, cleanly.
VIEWER_STALL_TIMEOUT_S = 90.0

# Search terms are names or parts of names; names are at most 255 bytes.
MAX_QUERY_CHARS = names.MAX_NAME_BYTES

# An upload's status code for each reason the master can refuse it.
_MASTER_ERROR_STATUS = {
    "exists": 409,
    "bad_name": 400,
    "not_found": 404,
    "no_space": 507,
    "unavailable": 503,
    "bad_request": 400,
}

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; "
        "script-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

MASTER = web.AppKey("master", MasterClient)
LIMITS = web.AppKey("limits", dict)
METRICS = web.AppKey("metrics", metrics.WebMetrics)


def error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


class Slots:
    """A bounded count of requests of one kind; past the bound, 503 rather than a queue."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit, self.what, self.used = limit, what, 0

    @asynccontextmanager
    async def take(self):
        if self.used >= self.limit:
            raise web.HTTPServiceUnavailable(
                text=json.dumps({"error": f"Too many {self.what} at once; try again in a few seconds."}),
                content_type="application/json",
                headers={"Retry-After": "5"},
            )
        self.used += 1
        try:
            yield
        finally:
            self.used -= 1


@web.middleware
async def errors_and_headers(request: web.Request, handler):
    """JSON errors for every failure (never a traceback) and security headers on all."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.content_type != "application/json" and exc.status >= 400:
            response = error(
                exc.status,
                _http_error_sentence(exc),
                **{k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")},
            )
        else:
            response = exc
    except RequestFailed as exc:
        response = error(_MASTER_ERROR_STATUS.get(exc.code, 502), exc.message)
    except (OSError, TimeoutError) as exc:
        log.warning("%s %s: master unreachable: %s", request.method, request.path, exc)
        response = error(
            503, "The storage cluster is not answering; try again shortly.", **{"Retry-After": "5"}
        )
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        response = error(500, "Something went wrong on our side; it has been logged.")
    if not response.prepared:
        response.headers.update(SECURITY_HEADERS)
    return response


def _http_error_sentence(exc: web.HTTPException) -> str:
    if exc.status == 404:
        return "There is nothing at this address."
    if exc.status == 405:
        return f"This address does not accept {exc.method}." if hasattr(exc, "method") else exc.reason
    return exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason


# --- pages -----------------------------------------------------------------------------


async def home(request: web.Request) -> web.Response:
    return web.Response(text=pages.home_page(), content_type="text/html")


async def watch(request: web.Request) -> web.Response:
    try:
        video = await request.app[MASTER].stat(request.match_info["name"])
    except RequestFailed as exc:
        if exc.code != "not_found":
            raise
        return web.Response(
            text=pages.not_found_page("No video by that name."), status=404, content_type="text/html"
        )
    return web.Response(text=pages.watch_page(video), content_type="text/html")


# --- listing ---------------------------------------------------------------------------


async def listar(request: web.Request) -> web.Response:
    return web.json_response({"videos": await request.app[MASTER].list("")})


async def search(request: web.Request) -> web.Response:
    query = request.query.get("q", "")
    if len(query) > MAX_QUERY_CHARS:
        return error(400, f"The search text is longer than {MAX_QUERY_CHARS} characters.")
    return web.json_response({"videos": await request.app[MASTER].list(query.strip())})


async def delete(request: web.Request) -> web.Response:
    await request.app[MASTER].delete(request.match_info["name"])
    return web.json_response({"deleted": request.match_info["name"]})


async def api_status(request: web.Request) -> web.Response:
    return web.json_response(await request.app[MASTER].status())


async def purge_orphans(request: web.Request) -> web.Response:
    return web.json_response({"purged": await request.app[MASTER].purge_orphans()})


async def status_page(request: web.Request) -> web.Response:
    return web.Response(text=pages.status_page(await request.app[MASTER].status()), content_type="text/html")


async def prometheus(request: web.Request) -> web.Response:
    try:
        report = await request.app[MASTER].status()
    except (OSError, TimeoutError, RequestFailed):
        report = None  # reported as myyoutube_up{role="master"} 0
    return web.Response(
        body=request.app[METRICS].render(report), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


# --- streaming -------------------------------------------------------------------------


async def stream(request: web.Request) -> web.StreamResponse:
    video = await request.app[MASTER].stat(request.match_info["name"])
    return await _serve(request, video, "video", video["size"], video["sha256"], video["content_type"])


async def thumbnail(request: web.Request) -> web.StreamResponse:
    """The poster, with the same validators, caching and ranges as the video itself."""
    video = await request.app[MASTER].stat(request.match_info["name"])
    if not video.get("has_thumbnail"):
        return error(404, "This video has no poster.")
    return await _serve(
        request, video, "poster", video["thumbnail_size"], video["thumbnail_sha256"], "image/jpeg"
    )


async def _serve(
    request: web.Request, video: dict, part: str, size: int, sha256: str, content_type: str
) -> web.StreamResponse:
    """Answer GET/HEAD of one stored blob as ranges.decide says, relaying its bytes."""
    validators = ranges.Validators(etag=f'"{sha256}"', last_modified=video["uploaded_at"])
    boundary = secrets.token_hex(16)
    decision = ranges.decide(request.method, request.headers, size, content_type, validators, boundary)
    if not decision.ranges:
        return web.Response(status=decision.status, headers=decision.headers)
    counters = request.app[METRICS]
    viewer = request.transport.get_extra_info("socket") if request.transport else None
    if viewer is not None:
        # The same cap as inside the cluster: a paused player must not pull megabytes
        # ahead into this socket's kernel buffer (see stream.SOCKET_BUFFER_BYTES).
        viewer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)
    async with request.app[LIMITS]["streams"].take():
        with counters.active_streams.track_inprogress():
            response = web.StreamResponse(status=decision.status, headers=decision.headers)
            response.headers.update(SECURITY_HEADERS)
            await response.prepare(request)

            async def send(data: bytes) -> None:
                # A viewer that takes nothing for this long is gone; free the stream slot.
                async with asyncio.timeout(VIEWER_STALL_TIMEOUT_S):
                    await response.write(data)
                counters.stream_bytes.inc(len(data))

            for byte_range in decision.ranges:
                if decision.is_multipart:
                    await send(ranges.multipart_part_header(byte_range, size, content_type, boundary))
                async for data in request.app[MASTER].read(
                    video["name"], byte_range.start, byte_range.length, part=part
                ):
                    await send(data)
            if decision.is_multipart:
                await send(ranges.multipart_closing(boundary))
            await response.write_eof()
            return response


# --- uploads -------------------------------------------------------------------------


async def upload(request: web.Request) -> web.Response:
    limits = request.app[LIMITS]
    limit = limits["max_upload_bytes"]
    if request.content_length is not None and request.content_length > limit + MULTIPART_OVERHEAD_BYTES:
        return error(413, str(uploads.too_large(limit)))
    if request.content_type != "multipart/form-data":
        return error(400, "Send the video as multipart/form-data with a field named 'file'.")
    async with limits["uploads"].take():
        try:
            video = await uploads.receive(request, request.app[MASTER], limit, limits["spool_dir"])
        except uploads.UploadRefused as exc:
            return error(exc.status, str(exc))
    request.app[METRICS].uploads.inc()
    request.app[METRICS].upload_bytes.inc(video["size"])
    return web.json_response({k: video[k] for k in ("name", "size", "sha256")}, status=201)


# --- application -----------------------------------------------------------------------


def make_app(
    master: MasterClient,
    max_upload_bytes: int,
    max_uploads: int,
    max_streams: int,
    spool_dir: Path | None = None,
) -> web.Application:
    app = web.Application(middlewares=[errors_and_headers])
    app[MASTER] = master
    app[METRICS] = metrics.WebMetrics()
    app[LIMITS] = {
        "max_upload_bytes": max_upload_bytes,
        "spool_dir": spool_dir,
        "uploads": Slots(max_uploads, "uploads"),
        "streams": Slots(max_streams, "streams"),
    }
    app.router.add_get("/", home)
    app.router.add_get("/watch/{name}", watch)
    app.router.add_get("/listar", listar)
    app.router.add_get("/search", search)
    app.router.add_post("/upload", upload)
    app.router.add_get("/stream/{name}", stream)  # add_get also answers HEAD
    app.router.add_get("/thumbnail/{name}", thumbnail)
    app.router.add_delete("/videos/{name}", delete)
    app.router.add_get("/api/status", api_status)
    app.router.add_post("/api/admin/purge-orphans", purge_orphans)
    app.router.add_get("/status", status_page)
    app.router.add_get("/metrics", prometheus)
    app.router.add_static("/static", STATIC_DIR)
    return app
