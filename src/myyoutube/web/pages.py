"""The HTML pages of the web front end: home, watch, sign-in, cluster status (and the 404).

Theory of operation
-------------------
Each handler gathers what its page shows into a plain dict (the ``*_context`` functions:
pure, no I/O, so the pages can be rendered and tested without a server) and renders a
Jinja2 template from ``web/templates/`` through aiohttp-jinja2. Every template extends
``base.html``: doctype, viewport, stylesheet, header with the brand, footer.

Autoescape is on for every template, so any value placed in markup (names, codecs,
addresses, messages) is escaped; a name placed in a URL goes through the ``path_segment``
filter first (``quote(name, safe="")``, so ``/`` ``?`` ``#`` cannot change the route) and
is then escaped like any attribute value. Nothing is ever marked safe.

The server sends a strict Content-Security-Policy (``script-src 'self'``, ``style-src
'self'``), so the templates hold no inline ``<script>`` code, ``style=`` attributes or
``on...=`` handlers. Data the scripts need travels in ``data-*`` attributes; behaviour
lives in ``/static/`` (text.js, home.js, upload.js, watch.js).

The home page is a shell around the search term (``/?q=``, so Back and shared links keep
it) and the upload limit: ``home.js`` fetches ``/listar`` or ``/search?q=`` a page at a
time and builds the grid with DOM APIs, with a badge on each card still processing or
failed (playback.py). The watch page is rendered from the video's metadata and playback
facts (playback.py: state, renditions, what the player starts with; watch.js plays HLS
with hls.js or falls back to /stream, and polls while processing); optional keys (``duration_s``, ``width``, ``height``, ``codec``,
``has_thumbnail``, ``remuxed``) are shown when present and valid and skipped otherwise.

Every page knows its visitor (``VisitorView``: name, role, CSRF token, what they may do):
the header shows who is signed in with a Sign out button, or a Sign in link; the upload
form, the Delete button and the status link are rendered only for those allowed to use
them (the server refuses the acts themselves regardless). A signed-in page carries the
session's CSRF token in ``<meta name="csrf-token">`` for the scripts to send back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
import jinja2
from aiohttp import web

from myyoutube import permissions, videotext
from myyoutube.client import RequestFailed
from myyoutube.formatting import counted, human_duration, human_size, utc_text
from myyoutube.web import playback
from myyoutube.web.common import LIMITS, VISITOR, Visitor, csrf_token, master_for
from myyoutube.web.videos import MAX_QUERY_CHARS

TEMPLATES_DIR = Path(__file__).with_name("templates")

NOT_FOUND_SIGNED_OUT = "No video by that name, or it is private: sign in to watch your own videos."

# The status page reloads itself this often (a meta refresh needs no script).
STATUS_REFRESH_S = 5
# What the file picker offers. "video/*" alone is matched against the system's table of
# types, and some tables call .ts a Qt translation and .mts a 3D model (Debian's
# /etc/mime.types does both) or do not know .mkv: camcorder and recorder files would be
# hidden from the picker though the server takes every container named here (sniff.py).
VIDEO_FILE_ACCEPT = "video/*,.mp4,.m4v,.mov,.3gp,.webm,.mkv,.ogv,.avi,.ts,.mts,.m2ts,.mpg,.mpeg,.vob"
# Each visibility in words, the same in the upload form, the edit form, the watch page's
# details and the cards, so a person never has to match "Only me" with "private".
WHO_CAN_WATCH = "Who can watch"
VISIBILITY_CHOICES = (
    (permissions.PUBLIC, "Everyone (listed)"),
    (permissions.UNLISTED, "Anyone with the link"),
    (permissions.PRIVATE, "Only me"),
)


def path_segment(name: Any) -> str:
    """Percent-encode a video name for use as one URL path segment."""
    return quote(str(name), safe="")


def setup(app: web.Application) -> jinja2.Environment:
    """Give `app` the templates' environment (autoescape on, unknown variables are errors)."""
    filters: dict[str, Callable[..., str]] = {
        "path_segment": path_segment,
        "human_size": human_size,
        "counted": counted,
    }
    return aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        default_helpers=False,
        filters=filters,
    )


# --- what each page shows ---------------------------------------------------------------


@dataclass(frozen=True)
class VisitorView:
    """Who is looking at a page, as the templates need it ('' name: nobody signed in)."""

    name: str = ""
    role: str = ""
    csrf_token: str = ""
    can_upload: bool = False
    is_admin: bool = False
    # Where the header's Sign in goes: back to this page afterwards (a private video's
    # link, a search), not to the home page.
    sign_in_url: str = "/login"


ANONYMOUS_VIEW = VisitorView()


def visitor_view(visitor: Visitor, here: str = "/") -> VisitorView:
    """What the templates show of `visitor`, on the page at `here` (path and query)."""
    user = visitor.user
    if user is None:
        if here == "/":
            return ANONYMOUS_VIEW
        return VisitorView(sign_in_url=f"/login?next={quote(here, safe='')}")
    return VisitorView(
        name=user.name,
        role=user.role,
        csrf_token=csrf_token(visitor.token) if visitor.via == "cookie" else "",
        can_upload=permissions.may_upload(user),
        is_admin=permissions.may_admin(user),
    )


@dataclass(frozen=True)
class MetadataRow:
    """One label and its text under the player; a date also carries what watch.js localises."""

    label: str
    text: str
    iso_utc: str | None = None  # the <time datetime=...> value
    timestamp: str | None = None  # unix seconds, for watch.js


def _number(value: Any) -> float | None:
    """Return ``value`` as a finite float, or None when it isn't one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _uploaded_row(timestamp: Any) -> MetadataRow:
    ts = _number(timestamp)
    if ts is None:
        return MetadataRow("Uploaded", "unknown")
    try:
        moment = datetime.fromtimestamp(ts, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return MetadataRow("Uploaded", "unknown")
    return MetadataRow("Uploaded", utc_text(ts), moment.strftime("%Y-%m-%dT%H:%M:%SZ"), repr(ts))


def metadata_rows(video: Mapping[str, Any]) -> list[MetadataRow]:
    """A row for every metadata field present and valid, in the order shown."""
    rows: list[MetadataRow] = []
    size = _number(video.get("size"))
    if size is not None and size >= 0:
        rows.append(MetadataRow("Size", human_size(size)))
    rows.append(_uploaded_row(video.get("uploaded_at")))
    duration = _number(video.get("duration_s"))
    if duration is not None and duration >= 0:
        rows.append(MetadataRow("Duration", human_duration(duration)))
    width, height = _number(video.get("width")), _number(video.get("height"))
    if width and height and width > 0 and height > 0:
        rows.append(MetadataRow("Resolution", f"{int(width)}\u00d7{int(height)}"))
    views = video.get("views")
    if isinstance(views, int) and not isinstance(views, bool) and views >= 0:
        rows.append(MetadataRow("Views", f"{views:,}"))
    codec = video.get("codec")
    if isinstance(codec, str) and codec:
        rows.append(MetadataRow("Codec", codec))
    content_type = video.get("content_type")
    if isinstance(content_type, str) and content_type:
        rows.append(MetadataRow("Type", content_type))
    if video.get("remuxed") is True:
        rows.append(MetadataRow("Streaming", "Optimised for streaming (remuxed)"))
    who = dict(VISIBILITY_CHOICES).get(str(video.get("visibility")))
    if who is not None:  # an owner can tell a private video from a published one at a glance
        rows.append(MetadataRow(WHO_CAN_WATCH, who))
    return rows


def home_context(
    max_upload_bytes: int, query: str = "", visitor: VisitorView = ANONYMOUS_VIEW
) -> dict[str, Any]:
    """The library page; `query` (from `/?q=`) is the search shown in the box and heading."""
    return {
        "visitor": visitor,
        "max_upload_bytes": max_upload_bytes,
        "query": query.strip()[:MAX_QUERY_CHARS],
        "max_query_chars": MAX_QUERY_CHARS,
        "visibilities": VISIBILITY_CHOICES,
        "video_file_accept": VIDEO_FILE_ACCEPT,
    }


def watch_context(
    video: Mapping[str, Any],
    visitor: VisitorView = ANONYMOUS_VIEW,
    may_delete: bool = False,
    may_edit: bool = False,
) -> dict[str, Any]:
    """The player page for one video described by its metadata dict (``name`` required);
    `may_delete` / `may_edit`: whether the visitor sees the Delete button / the edit form."""
    name = str(video.get("name", ""))
    facts = playback.playback_of(video)
    return {
        "visitor": visitor,
        "may_delete": may_delete,
        "may_edit": may_edit,
        "name": name,
        "title": str(video.get("title") or name),
        "description": str(video.get("description") or ""),
        "visibility": str(video.get("visibility") or permissions.PUBLIC),
        "visibilities": VISIBILITY_CHOICES,
        "max_title_chars": videotext.MAX_TITLE_CHARS,
        "max_description_chars": videotext.MAX_DESCRIPTION_CHARS,
        "has_thumbnail": video.get("has_thumbnail") is True,
        "metadata": metadata_rows(video),
        "playback": facts,
        "first_source": playback.first_source(facts),
        "state_text": playback.state_text(facts),
        "poll_interval_ms": playback.POLL_INTERVAL_MS,
    }


def not_found_context(
    message: str = "That page does not exist.",
    visitor: VisitorView = ANONYMOUS_VIEW,
    heading: str = "Not found",
) -> dict[str, Any]:
    """A page refused or missing: `heading` and `message` say which and why."""
    return {"visitor": visitor, "message": message, "heading": heading}


def login_context(target: str = "/", message: str = "", username: str = "") -> dict[str, Any]:
    """The sign-in form; `target` is where to go after it, `message` why the last try failed."""
    return {"visitor": ANONYMOUS_VIEW, "next": target, "message": message, "username": username}


def status_context(report: Mapping[str, Any], visitor: VisitorView = ANONYMOUS_VIEW) -> dict[str, Any]:
    """The cluster at a glance, from the master's status report (as /api/status answers)."""
    nodes = [
        {
            **node,
            "seen": "never"
            if node.get("last_heartbeat_s_ago") is None
            else f"{node['last_heartbeat_s_ago']:g} s ago",
        }
        for node in report["datanodes"]
    ]
    return {"visitor": visitor, "report": report, "datanodes": nodes, "refresh_s": STATUS_REFRESH_S}


# --- routes -----------------------------------------------------------------------------


async def home(request: web.Request) -> web.Response:
    visitor = visitor_view(request[VISITOR], request.path_qs)
    context = home_context(request.app[LIMITS]["max_upload_bytes"], request.query.get("q", ""), visitor)
    return aiohttp_jinja2.render_template("home.html", request, context)


async def watch(request: web.Request) -> web.Response:
    visitor = visitor_view(request[VISITOR], request.path_qs)
    try:
        video = await master_for(request).stat(request.match_info["name"])
    except RequestFailed as exc:
        if exc.code != "not_found":
            raise
        context = not_found_context(
            # A private video is not found for anyone else, its owner signed out included:
            # "no such video" alone would tell them it is gone.
            "No video by that name." if request[VISITOR].user else NOT_FOUND_SIGNED_OUT,
            visitor,
        )
        return aiohttp_jinja2.render_template("not_found.html", request, context, status=404)
    user = request[VISITOR].user
    context = watch_context(
        video, visitor, permissions.may_delete(user, video), permissions.may_edit(user, video)
    )
    return aiohttp_jinja2.render_template("watch.html", request, context)


# The heading of the page a browser gets for each refusal or failure it can navigate to
# (a script asking for JSON gets the same sentence as JSON).
ERROR_PAGE_HEADINGS = {
    403: "Not allowed",
    404: "Not found",
    500: "Something went wrong",
    502: "Try again shortly",
    503: "Try again shortly",
}


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    """The friendly page for a refusal or failure a person navigated to (a stale or
    mistyped link, an admin page, the cluster down), with the site's header and a way
    home."""
    visitor = request.get(VISITOR)
    context = not_found_context(
        message,
        ANONYMOUS_VIEW if visitor is None else visitor_view(visitor, request.path_qs),
        ERROR_PAGE_HEADINGS[status],
    )
    return aiohttp_jinja2.render_template("not_found.html", request, context, status=status)


async def status(request: web.Request) -> web.Response:
    """The cluster status page, for admins; others are sent to sign in or refused."""
    user = request[VISITOR].user
    if user is None:
        raise web.HTTPSeeOther("/login?next=/status")
    if not permissions.may_admin(user):
        raise web.HTTPForbidden(text="Only an admin may see the cluster status.")
    report = await master_for(request).status()
    return aiohttp_jinja2.render_template(
        "status.html", request, status_context(report, visitor_view(request[VISITOR]))
    )
