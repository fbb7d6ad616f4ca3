"""HTML pages of the MyYoutube web front end.

Theory of operation
-------------------
Every page is a plain string built by a pure function (no I/O, no aiohttp), so
the module is trivially testable and the web app only has to wrap the result
in a ``text/html`` response.

All pages share one shell, :func:`_layout`: doctype, viewport meta, the
stylesheet ``/static/app.css``, a dark header with the product name and an
optional slot for extra header content (the home page puts its search box
there), then the page body and the external ``<script src>`` tags.

The server sends a strict Content-Security-Policy (``script-src 'self'``,
``style-src 'self'``), so the HTML here never contains inline ``<script>``
code, ``style=`` attributes or ``on...=`` handlers. Data the scripts need
travels in ``data-*`` attributes; behaviour lives in ``/static/home.js`` and
``/static/watch.js``.

Security rules applied everywhere:

* every user-supplied string (video names, codecs, messages) goes through
  :func:`_e` (``html.escape(..., quote=True)``) before it touches markup;
* every name placed in a URL is first percent-encoded with
  ``urllib.parse.quote(name, safe="")`` (so ``/`` ``?`` ``#`` cannot change
  the route) and then HTML-escaped like any other attribute value.

The home page is an empty shell: ``home.js`` fetches ``/listar`` or
``/search?q=`` and builds the grid with DOM APIs (``textContent``), and it
uploads with ``XMLHttpRequest`` to get progress events. The watch page is
rendered server-side from the video's metadata dict; ``watch.js`` only
localises dates and drives the Delete button.

Optional metadata keys (``duration_s``, ``width``, ``height``, ``codec``,
``has_thumbnail``, ``remuxed``) are rendered when present and valid, and
silently skipped otherwise.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from myyoutube.formatting import human_duration, human_size, utc_text

__all__ = ["PRODUCT_NAME", "home_page", "not_found_page", "status_page", "watch_page"]

PRODUCT_NAME = "MyYoutube"

# Inline SVG favicon (CSP allows data: images): saves a /favicon.ico 404.
_FAVICON = (
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 34 24'%3E"
    "%3Crect width='34' height='24' rx='7' fill='%23e5352b'/%3E"
    "%3Cpath d='M13 6v12l10-6z' fill='%23fff'/%3E%3C/svg%3E"
)


def _e(value: Any) -> str:
    """HTML-escape any value (attributes and text alike)."""
    return html.escape(str(value), quote=True)


def _q(name: Any) -> str:
    """Percent-encode a video name for use as one URL path segment."""
    return quote(str(name), safe="")


def _number(value: Any) -> float | None:
    """Return ``value`` as a finite float, or None when it isn't one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


# --------------------------------------------------------------------------- #
# Shared layout
# --------------------------------------------------------------------------- #


def _layout(
    title: str,
    body: str,
    scripts: Iterable[str] = (),
    *,
    header_extra: str = "",
    page_class: str = "",
) -> str:
    """Wrap ``body`` in the common page shell.

    ``title`` is escaped here; ``body`` and ``header_extra`` must already be
    safe HTML. ``scripts`` are file names under ``/static/`` loaded with
    ``defer`` (never inline code, to satisfy the CSP).
    """
    full_title = f"{title} · {PRODUCT_NAME}" if title != PRODUCT_NAME else title
    script_tags = "".join(f'\n  <script src="/static/{_e(_q(src))}" defer></script>' for src in scripts)
    body_class = f' class="{_e(page_class)}"' if page_class else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="color-scheme" content="light dark">
  <title>{_e(full_title)}</title>
  <link rel="icon" href="{_FAVICON}">
  <link rel="stylesheet" href="/static/app.css">{script_tags}
</head>
<body{body_class}>
  <a class="skip-link" href="#main">Skip to content</a>
  <header class="site-header">
    <div class="wrap header-inner">
      <a class="brand" href="/" aria-label="{PRODUCT_NAME} home">
        <span class="brand-mark" aria-hidden="true"></span>{PRODUCT_NAME}
      </a>{header_extra}
    </div>
  </header>
  <main id="main" class="wrap">
{body}
  </main>
  <footer class="site-footer">
    <div class="wrap">{PRODUCT_NAME} &middot; self-hosted video store &middot;
      <a href="/status">Cluster status</a></div>
  </footer>
</body>
</html>
"""


# --------------------------------------------------------------------------- #
# Home page
# --------------------------------------------------------------------------- #

_SEARCH_BOX = """
      <div class="search" role="search">
        <label class="visually-hidden" for="search">Search videos</label>
        <input type="search" id="search" name="q" placeholder="Search videos"
               autocomplete="off" spellcheck="false" maxlength="255">
      </div>"""

_UPLOAD_PANEL = """
    <section class="panel upload-panel" aria-labelledby="upload-heading">
      <h2 id="upload-heading">Upload a video</h2>
      <form id="upload-form" action="/upload" method="post"
            enctype="multipart/form-data" novalidate>
        <div class="upload-row">
          <label class="file-picker" for="file">
            <span class="visually-hidden">Video file</span>
            <input type="file" name="file" id="file" accept="video/*" multiple>
          </label>
          <button type="submit" id="upload-button" class="button primary">Upload</button>
        </div>
        <div class="progress-row" id="upload-progress-row" hidden>
          <progress id="upload-progress" max="100" value="0"></progress>
          <span id="upload-percent" class="percent">0%</span>
        </div>
        <div id="upload-status" class="status" role="status" aria-live="polite"></div>
      </form>
    </section>"""

_VIDEO_SECTION = """
    <section class="library" aria-labelledby="videos-heading">
      <div class="section-head">
        <h2 id="videos-heading">All videos</h2>
        <span id="video-count" class="count" aria-live="polite"></span>
      </div>
      <div id="videos" class="video-grid" aria-busy="true"></div>
      <p id="empty-state" class="empty-state" hidden></p>
      <noscript><p class="empty-state">MyYoutube needs JavaScript to list and
        upload videos.</p></noscript>
    </section>"""


def home_page() -> str:
    """The library page: search box, upload form and (JS-filled) video grid.

    Element ids used by ``home.js``: ``search``, ``videos``, ``empty-state``,
    ``video-count``, ``upload-form``, ``file``, ``upload-button``,
    ``upload-progress-row``, ``upload-progress``, ``upload-percent``,
    ``upload-status``.
    """
    body = _UPLOAD_PANEL + "\n" + _VIDEO_SECTION
    return _layout(PRODUCT_NAME, body, ["home.js"], header_extra=_SEARCH_BOX, page_class="home")


# --------------------------------------------------------------------------- #
# Watch page
# --------------------------------------------------------------------------- #


def _time_html(timestamp: Any) -> str:
    """A ``<time>`` with UTC fallback text; watch.js localises it."""
    ts = _number(timestamp)
    if ts is None:
        return "unknown"
    try:
        moment = datetime.fromtimestamp(ts, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return "unknown"
    iso = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f'<time class="js-local-time" datetime="{iso}" '
        f'data-timestamp="{_e(repr(ts))}">{_e(utc_text(ts))}</time>'
    )


def _metadata_rows(video: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, safe HTML) pairs for every metadata field present and valid."""
    rows: list[tuple[str, str]] = []
    size = _number(video.get("size"))
    if size is not None and size >= 0:
        rows.append(("Size", _e(human_size(size))))
    rows.append(("Uploaded", _time_html(video.get("uploaded_at"))))
    duration = _number(video.get("duration_s"))
    if duration is not None and duration >= 0:
        rows.append(("Duration", _e(human_duration(duration))))
    width, height = _number(video.get("width")), _number(video.get("height"))
    if width and height and width > 0 and height > 0:
        rows.append(("Resolution", f"{int(width)}&times;{int(height)}"))
    codec = video.get("codec")
    if isinstance(codec, str) and codec:
        rows.append(("Codec", _e(codec)))
    content_type = video.get("content_type")
    if isinstance(content_type, str) and content_type:
        rows.append(("Type", _e(content_type)))
    if video.get("remuxed") is True:
        rows.append(("Streaming", "Optimised for streaming (remuxed)"))
    return rows


def _metadata_html(video: Mapping[str, Any]) -> str:
    """The ``<dl>`` of metadata shown under the player."""
    items = "".join(
        f'\n          <div class="meta-item"><dt>{_e(label)}</dt><dd>{value}</dd></div>'
        for label, value in _metadata_rows(video)
    )
    return f'        <dl class="meta-list">{items}\n        </dl>'


def _player_html(name: str, has_thumbnail: bool) -> str:
    """The ``<video>`` element streaming ``/stream/{name}``."""
    quoted = _e(_q(name))
    poster = f' poster="/thumbnail/{quoted}"' if has_thumbnail else ""
    return (
        f'      <div class="player-frame">\n'
        f'        <video id="player" controls preload="metadata" playsinline\n'
        f'               src="/stream/{quoted}"{poster}>\n'
        f"          Your browser cannot play this video here.\n"
        f'          <a href="/stream/{quoted}" download="{_e(name)}">Download it</a> instead.\n'
        f"        </video>\n"
        f"      </div>\n"
        f'      <p id="player-status" class="status status-error" role="alert" hidden></p>'
    )


def watch_page(video: Mapping[str, Any]) -> str:
    """The player page for one video described by its metadata dict.

    ``video`` needs ``name``; ``size``, ``uploaded_at``, ``content_type`` and
    the optional keys are shown when present. Element ids used by
    ``watch.js``: ``watch`` (carries ``data-name`` and ``data-delete-url``),
    ``player``, ``player-status``, ``delete-button``, ``delete-status``.
    """
    name = str(video.get("name", ""))
    quoted = _e(_q(name))
    body = f"""    <article id="watch" class="watch" data-name="{_e(name)}"
             data-delete-url="/videos/{quoted}">
      <p class="back"><a href="/">&larr; Back to all videos</a></p>
{_player_html(name, video.get("has_thumbnail") is True)}
      <div class="watch-info panel">
        <h1 class="video-title">{_e(name)}</h1>
{_metadata_html(video)}
        <div class="actions">
          <a class="button" href="/stream/{quoted}" download="{_e(name)}">Download</a>
          <button type="button" id="delete-button" class="button danger">Delete</button>
        </div>
        <p id="delete-status" class="status status-error" role="alert" hidden></p>
      </div>
    </article>"""
    return _layout(name or "Video", body, ["watch.js"], page_class="watch-page")


# --------------------------------------------------------------------------- #
# Error pages
# --------------------------------------------------------------------------- #


def not_found_page(message: str = "That page does not exist.") -> str:
    """A friendly 404 body; the caller sets the 404 status. ``message`` is escaped."""
    body = f"""    <section class="panel not-found">
      <h1>Not found</h1>
      <p>{_e(message)}</p>
      <p><a class="button primary" href="/">Back to all videos</a></p>
    </section>"""
    return _layout("Not found", body, page_class="error-page")


# --------------------------------------------------------------------------- #
# Cluster status
# --------------------------------------------------------------------------- #

# The status page reloads itself this often (a meta refresh needs no script).
STATUS_REFRESH_S = 5


def _datanode_row(node: Mapping[str, Any]) -> str:
    seen = node.get("last_heartbeat_s_ago")
    return (
        f'        <tr class="node-{_e(node["state"])}"><td>{_e(node["address"])}</td>'
        f'<td><span class="badge">{_e(node["state"])}</span></td>'
        f'<td data-label="Last heartbeat">{"never" if seen is None else _e(f"{seen:g} s ago")}</td>'
        f'<td data-label="Used">{_e(human_size(node["used_bytes"]))}</td>'
        f'<td data-label="Free">{_e(human_size(node["free_bytes"]))}</td>'
        f'<td data-label="Replicas">{_e(node["replicas"])}</td></tr>'
    )


def status_page(report: Mapping[str, Any]) -> str:
    """The cluster at a glance: datanodes, replication health and totals (from /api/status)."""
    rows = (
        "\n".join(_datanode_row(node) for node in report["datanodes"])
        or '        <tr><td colspan="6">No datanode has registered.</td></tr>'
    )
    under = "".join(
        f"<li>{_e(v['name'])}: {_e(v['live_replicas'])} of {_e(report['replication'])} copies"
        f"{' (repairing)' if v['repairing'] else ''}</li>"
        for v in report["under_replicated"]
    )
    body = f"""    <section class="panel cluster-status">
      <h1>Cluster status</h1>
      <p>{_e(report["videos"])} videos, {_e(human_size(report["stored_bytes"]))} stored
         {_e(report["replication"])} times; {_e(report["repairs_running"])} repair copies running.</p>
      <table class="status-table">
        <thead><tr><th>Datanode</th><th>State</th><th>Last heartbeat</th><th>Used</th>
          <th>Free</th><th>Replicas</th></tr></thead>
        <tbody>
{rows}
        </tbody>
      </table>
      <h2>Under-replicated videos</h2>
      {f'<ul id="under-replicated">{under}</ul>' if under else "<p>None: every video has all its copies.</p>"}
    </section>"""
    page = _layout("Cluster status", body, page_class="status-page")
    return page.replace("<head>", f'<head>\n  <meta http-equiv="refresh" content="{STATUS_REFRESH_S}">', 1)
