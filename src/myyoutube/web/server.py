"""The web front end's application: routes from each resource module, errors, headers.

Theory of operation
-------------------
The front end holds no video bytes of its own: uploads (uploads.py) are relayed chunk by
chunk to the master, streams (streaming.py) are relayed range by range from it, so memory
per request is a few chunks whatever the video's size. Routes live in one module per
resource (pages.py, videos.py, streaming.py, uploads.py, admin.py, accounts.py,
signin.py; auth.py's middlewares find who is asking); this module builds the application
from them and owns what every request shares: the error middleware and the security headers.

Every failure a user can cause is answered with a JSON `{"error": "<sentence>"}` and the
right 4xx; bounded slots for uploads and streams answer 503 with Retry-After when full.
Every answer carries an `X-Request-Id`; a failure on our side is logged with it and the
client gets a sentence naming it, never an internal address or an exception's name. A
refusal from the master because of who asked becomes 401 for an anonymous visitor (sign
in first) and 403 for a signed-in one.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

from aiohttp import web

from myyoutube.client import MasterClient, RequestFailed
from myyoutube.quietlog import QuietLog
from myyoutube.rates import MinimumRate
from myyoutube.web import (
    accounts,
    admin,
    auth,
    backup,
    hls,
    metrics,
    pace,
    pages,
    resumable,
    signin,
    streaming,
    uploads,
    videos,
    viewers,
)
from myyoutube.web.common import (
    CONFIG,
    LIMITS,
    MASTER,
    METRICS,
    SECURITY_HEADERS,
    VISITOR,
    LocalDiskFailed,
    Slots,
    WebConfig,
    error,
    wants_html,
)

log = logging.getLogger(__name__)
# A master that is down makes every request fail alike: one line per period, with a count.
quiet = QuietLog(log)

STATIC_DIR = Path(__file__).with_name("static")

# An upload's status code for each reason the master can refuse it.
_MASTER_ERROR_STATUS = {
    "exists": 409,
    "bad_name": 400,
    "not_found": 404,
    "no_space": 507,
    "unavailable": 503,
    "bad_request": 400,
    "forbidden": 403,
    "unauthenticated": 401,
    "over_quota": 413,
    "too_many": 429,
    "refused": 401,
    # An act on an admin account without the asker's own password (the session is fine).
    "confirm": 403,
}


# When a client should try again after the web's own disk failed: an operator frees
# space in minutes, not seconds, but a client waiting longer than this gives up meanwhile.
LOCAL_DISK_RETRY_S = 30


@web.middleware
async def errors_and_headers(request: web.Request, handler):
    """JSON errors for every failure (never a traceback), a request id and security
    headers on all."""
    # An id only ties a client's report to our log lines and guards nothing, so the
    # interpreter's generator makes it: secrets costs a system call on every request.
    request_id = f"{random.getrandbits(64):016x}"
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        navigated = exc.status in pages.ERROR_PAGE_HEADINGS and wants_html(request)
        if navigated or (exc.content_type != "application/json" and exc.status >= 400):
            response = _error(
                request,
                exc.status,
                _http_error_sentence(exc),
                **{k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")},
            )
        else:
            response = exc
    except RequestFailed as exc:
        response = _master_refusal(request, exc, request_id)
    except LocalDiskFailed as exc:
        quiet.warning(
            "[%s] %s %s: this server's own disk failed: %s", request_id, request.method, request.raw_path, exc
        )
        response = _error(
            request,
            503,
            f"This web server cannot keep uploads on its own disk just now ({exc}); try again later "
            f"(request {request_id}).",
            **{"Retry-After": str(LOCAL_DISK_RETRY_S)},
        )
    except (OSError, TimeoutError) as exc:
        quiet.warning("[%s] %s %s: master unreachable: %s", request_id, request.method, request.raw_path, exc)
        response = _error(
            request,
            503,
            f"The storage cluster is not answering; try again shortly (request {request_id}).",
            **{"Retry-After": "5"},
        )
    except Exception:
        log.exception("[%s] %s %s failed", request_id, request.method, request.raw_path)
        response = _error(
            request, 500, f"Something went wrong on our side; it has been logged as request {request_id}."
        )
    if not response.prepared:
        response.headers.update(SECURITY_HEADERS)
        response.headers["X-Request-Id"] = request_id
        if response.status == 408:
            await _answer_and_close(request, response)
    return response


async def _answer_and_close(request: web.Request, response: web.StreamResponse) -> None:
    """Send a 408 and close at once. The client's body stopped coming; aiohttp would
    otherwise linger up to its lingering_time (10 s) reading more of that body before it
    closes, so a slow client held its connection twice as long as the body deadline. The
    handler may return a response it prepared itself; aiohttp then skips the lingering
    when the connection is being force-closed."""
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    # After write_eof the answer is in the kernel's send buffer; closing the transport
    # sends it, then FIN.
    request.protocol.force_close()


def _error(request: web.Request, status: int, sentence: str, **headers: str) -> web.Response:
    """The sentence as JSON, or as a page with the site's header and a way home when a
    person navigated here (a mistyped address, the cluster down): not raw JSON."""
    if status in pages.ERROR_PAGE_HEADINGS and wants_html(request):
        response = pages.error_page(request, status, sentence)
        response.headers.update(headers)
        return response
    return error(status, sentence, **headers)


def _master_refusal(request: web.Request, exc: RequestFailed, request_id: str) -> web.Response:
    status = _MASTER_ERROR_STATUS.get(exc.code, 502)
    visitor = request.get(VISITOR)
    if exc.code == "forbidden" and (visitor is None or visitor.user is None):
        return error(401, "Sign in first.")
    if status in (502, 503):  # the cluster's trouble, not the client's: the log says which
        quiet.warning("[%s] %s %s: the master refused: %s", request_id, request.method, request.raw_path, exc)
    if status == 502:  # a code this web does not know: its sentence was not written for us
        return _error(
            request, 502, f"The storage cluster could not do this right now (request {request_id})."
        )
    if status == 503:
        # The master's sentences for a passing shortage give counts, never addresses
        # ("Only 1 datanode is running and 2 are needed ..."): an operator reading one
        # knows what to fix.
        return _error(request, 503, exc.message, **{"Retry-After": "5"})
    return _error(request, status, exc.message)


def _http_error_sentence(exc: web.HTTPException) -> str:
    if exc.status == 404:
        return "There is nothing at this address."
    if exc.status == 405:
        return f"This address does not accept {exc.method}." if hasattr(exc, "method") else exc.reason
    return exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason


# --- application -----------------------------------------------------------------------


def make_app(
    master: MasterClient,
    max_upload_bytes: int,
    max_uploads: int,
    max_streams: int,
    spool_dir: Path | None = None,
    config: WebConfig | None = None,
    max_uploads_per_client: int | None = None,
    max_streams_per_client: int | None = None,
    min_rates: tuple[MinimumRate, MinimumRate] | None = None,
) -> web.Application:
    """The application; `min_rates` is (uploads', streams') minimum transfer rate."""
    upload_rate, stream_rate = min_rates or (
        MinimumRate(pace.MIN_UPLOAD_BYTES_PER_S, pace.RATE_WINDOW_S),
        MinimumRate(pace.MIN_STREAM_BYTES_PER_S, pace.RATE_WINDOW_S),
    )
    app = web.Application(
        middlewares=[errors_and_headers, auth.guard_host, auth.authenticate, auth.forbid_cross_site]
    )
    app.on_response_prepare.append(viewers.give_viewer_id)
    app.on_response_prepare.append(auth.strict_transport)
    app[viewers.VIEW_REPORTS] = viewers.ViewReports()
    app[MASTER] = master
    app[CONFIG] = config or WebConfig()
    app[METRICS] = metrics.WebMetrics()
    app[LIMITS] = {
        "max_upload_bytes": max_upload_bytes,
        "spool_dir": spool_dir,
        "uploads": Slots(max_uploads, "uploads", max_uploads_per_client),
        "streams": Slots(max_streams, "streams", max_streams_per_client),
        "upload_rate": upload_rate,
        "stream_rate": stream_rate,
    }
    pages.setup(app)
    signin.setup(app)
    accounts.setup(app)
    backup.setup(app)
    resumable.setup(app)
    app.router.add_get("/", pages.home)
    app.router.add_get("/watch/{name}", pages.watch)
    app.router.add_get("/listar", videos.listar)
    app.router.add_get("/search", videos.search)
    app.router.add_post("/upload", uploads.upload)
    app.router.add_get("/stream/{name}", streaming.stream)  # add_get also answers HEAD
    app.router.add_get("/thumbnail/{name}", streaming.thumbnail)
    app.router.add_get("/original/{name}", streaming.original)
    hls.add_routes(app.router)
    app.router.add_get("/videos/{name}", videos.show)
    app.router.add_delete("/videos/{name}", videos.delete)
    app.router.add_patch("/videos/{name}", videos.edit)
    app.router.add_get("/api/status", admin.api_status)
    app.router.add_post("/api/admin/purge-orphans", admin.purge_orphans)
    app.router.add_get("/status", pages.status)
    app.router.add_get("/metrics", admin.prometheus)
    app.router.add_static("/static", STATIC_DIR)
    return app
