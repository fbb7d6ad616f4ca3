"""Who is watching: a viewer id per browser, and a view reported when a stream starts.

Theory of operation
-------------------
Each browser gets a random viewer id in a long-lived cookie (HttpOnly: scripts never see
it; SameSite=Lax: other sites cannot make it count views), given with the first page it
asks for, or the first stream answer that starts at byte 0. A view is reported to the
master when a `GET /stream/NAME` starts at byte 0 (no Range, or a range from 0: a player
starting, or Safari's bytes=0-1 probe), never for the range requests that follow while
the video plays or seeks. The master counts each (viewer, video) pair once per
views.VIEW_WINDOW_S, so a reload or a replay inside that window does not count again.
The report goes in the background: a stream never waits for it.

A client without the cookie (curl, a video linked from elsewhere) is known by its
address instead, so a loop of cookie-less requests counts once per window too; so does a
loop that makes up a new cookie each time, past the few viewers one address may bring to
a video (view_budget.py). Reporting a view must never cost a stream: if the master
refuses or cannot be reached, or too many reports are in flight, the view goes uncounted
and the stream is unaffected.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Mapping

from aiohttp import web

from myyoutube.client import MasterClient, RequestFailed
from myyoutube.protocol import ProtocolError
from myyoutube.quietlog import QuietLog
from myyoutube.web.auth import client_address, request_scheme
from myyoutube.web.common import master_for
from myyoutube.web.view_budget import ViewBudget, address_viewer, is_address_viewer

log = logging.getLogger(__name__)
quiet = QuietLog(log)

VIEWER_COOKIE = "viewer"

# "Long-lived": browsers cap a cookie's lifetime at 400 days (RFC 6265bis), so ask for that.
VIEWER_COOKIE_MAX_AGE_S = 400 * 24 * 3600

# Random bytes in a viewer id: 128 bits, never guessed or repeated.
VIEWER_ID_BYTES = 16

_VIEWER_ID = re.compile(rf"[0-9a-f]{{{2 * VIEWER_ID_BYTES}}}")

# Responses that hand out a viewer id: the pages a person opens and the streams a player
# fetches (not JSON or static files, which caches should be free to share).
_GIVES_VIEWER_ID = ("/watch/", "/stream/", "/hls/")

# View reports sent at once. Past this a view goes uncounted rather than queued: counting
# must never hold a stream or grow memory while the master is slow.
MAX_VIEW_REPORTS_IN_FLIGHT = 64

# A Range header that starts at the first byte: "bytes=0-", "bytes=0-1", "bytes=0-99,200-".
_FROM_FIRST_BYTE = re.compile(r"\s*bytes\s*=\s*0+\s*-", re.IGNORECASE)


def starts_at_first_byte(method: str, headers: Mapping[str, str]) -> bool:
    """Does this request start watching from the beginning (rather than continue)?"""
    if method != "GET":
        return False
    requested = headers.get("Range")
    return requested is None or _FROM_FIRST_BYTE.match(requested) is not None


def viewer_of(request: web.Request) -> str:
    """The id views are counted under: the viewer cookie, or the client's address (behind
    a --trusted-proxy, the one it forwards: not the proxy's, which all visitors share)."""
    cookie = request.cookies.get(VIEWER_COOKIE, "")
    if _VIEWER_ID.fullmatch(cookie):
        return cookie
    return address_viewer(client_address(request))


class ViewReports:
    """View reports on their way to the master, at most MAX_VIEW_REPORTS_IN_FLIGHT."""

    def __init__(self) -> None:
        self._in_flight: set[asyncio.Task] = set()
        self.budget = ViewBudget()

    def send(self, master: MasterClient, name: str, viewer: str) -> None:
        if len(self._in_flight) >= MAX_VIEW_REPORTS_IN_FLIGHT:
            quiet.warning(
                "view of %s not counted: %d view reports already in flight", name, len(self._in_flight)
            )
            return
        task = asyncio.create_task(self._report(master, name, viewer))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    @staticmethod
    async def _report(master: MasterClient, name: str, viewer: str) -> None:
        try:
            await master.count_view(name, viewer)
        except RequestFailed as exc:  # no such video: the stream answers 404 itself
            log.debug("view of %s not counted: %s", name, exc)
        except (OSError, TimeoutError, ProtocolError) as exc:
            quiet.warning("view of %s not counted: %s", name, exc)


VIEW_REPORTS = web.AppKey("view_reports", ViewReports)


def report_view(request: web.Request) -> None:
    """If this request starts playing its video, report a view (in the background: the
    stream never waits for it)."""
    if starts_at_first_byte(request.method, request.headers):
        reports, name, viewer = request.app[VIEW_REPORTS], request.match_info["name"], viewer_of(request)
        if not is_address_viewer(viewer):
            viewer = reports.budget.viewer(client_address(request), name, viewer, time.monotonic())
        reports.send(master_for(request), name, viewer)


async def give_viewer_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: a page, or a stream answer from byte 0, answered to a browser
    without a viewer id sets one."""
    if not (request.path == "/" or request.path.startswith(_GIVES_VIEWER_ID)):
        return
    # Only a page or a media answer from the first byte (where a view is counted) gives
    # one: a player that keeps cookies got one there, and one that keeps none (curl, VLC,
    # a load test) would get a new random id with every seek, a system call each (~1 %
    # of the web's CPU in bench/seek.py).
    if not starts_at_first_byte(request.method, request.headers):
        return
    if _VIEWER_ID.fullmatch(request.cookies.get(VIEWER_COOKIE, "")):
        return
    # The hook runs after aiohttp turned response.cookies into headers: add the header.
    # Written out rather than through http.cookies.Morsel, whose quoting a hex value never
    # needs (the Morsel was ~4 % of the web's CPU in bench/seek.py).
    attributes = [
        f"{VIEWER_COOKIE}={secrets.token_hex(VIEWER_ID_BYTES)}",
        "HttpOnly",
        f"Max-Age={VIEWER_COOKIE_MAX_AGE_S}",
        "Path=/",
        "SameSite=Lax",
    ]
    if request_scheme(request) == "https":  # our TLS, or a trusted proxy's
        attributes.append("Secure")
    response.headers.add("Set-Cookie", "; ".join(attributes))
