"""The web front end's application: routes from each resource module, errors, headers.

Theory of operation
-------------------
The front end holds no video bytes of its own: uploads (uploads.py) are relayed chunk by
chunk to the master, streams (streaming.py) are relayed range by range from it, so memory
per request is a few chunks whatever the video's size. Routes live in one module per
resource (pages.py, videos.py, streaming.py, uploads.py, admin.py); this module
builds the application from them and owns what every request shares: the error
middleware and the security headers.

Every failure a user can cause is answered with a JSON `{"error": "<sentence>"}` and the
right 4xx; bounded slots for uploads and streams answer 503 with Retry-After when full.
"""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

from myyoutube.client import MasterClient, RequestFailed
from myyoutube.web import admin, metrics, pages, streaming, uploads, videos, viewers
from myyoutube.web.common import LIMITS, MASTER, METRICS, SECURITY_HEADERS, Slots, error

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")

# An upload's status code for each reason the master can refuse it.
_MASTER_ERROR_STATUS = {
    "exists": 409,
    "bad_name": 400,
    "not_found": 404,
    "no_space": 507,
    "unavailable": 503,
    "bad_request": 400,
}


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


# --- application -----------------------------------------------------------------------


def make_app(
    master: MasterClient,
    max_upload_bytes: int,
    max_uploads: int,
    max_streams: int,
    spool_dir: Path | None = None,
) -> web.Application:
    app = web.Application(middlewares=[errors_and_headers])
    app.on_response_prepare.append(viewers.give_viewer_id)
    app[viewers.VIEW_REPORTS] = viewers.ViewReports()
    app[MASTER] = master
    app[METRICS] = metrics.WebMetrics()
    app[LIMITS] = {
        "max_upload_bytes": max_upload_bytes,
        "spool_dir": spool_dir,
        "uploads": Slots(max_uploads, "uploads"),
        "streams": Slots(max_streams, "streams"),
    }
    pages.setup(app)
    app.router.add_get("/", pages.home)
    app.router.add_get("/watch/{name}", pages.watch)
    app.router.add_get("/listar", videos.listar)
    app.router.add_get("/search", videos.search)
    app.router.add_post("/upload", uploads.upload)
    app.router.add_get("/stream/{name}", streaming.stream)  # add_get also answers HEAD
    app.router.add_get("/thumbnail/{name}", streaming.thumbnail)
    app.router.add_delete("/videos/{name}", videos.delete)
    app.router.add_patch("/videos/{name}", videos.edit)
    app.router.add_get("/api/status", admin.api_status)
    app.router.add_post("/api/admin/purge-orphans", admin.purge_orphans)
    app.router.add_get("/status", pages.status)
    app.router.add_get("/metrics", admin.prometheus)
    app.router.add_static("/static", STATIC_DIR)
    return app
