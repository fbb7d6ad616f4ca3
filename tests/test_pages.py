"""Pure tests of the pages (myyoutube.web.pages and its Jinja2 templates): escaping, URL
encoding, CSP-safe markup and optional metadata. Pages are rendered by the environment the
web app uses; no server is started."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from aiohttp import web

from myyoutube.web import pages
from myyoutube.web.common import SECURITY_HEADERS

HOSTILE = "<script>alert(1)</script>.mp4"
WATCH_SCRIPTS = ("session.js", "vendor/hls.min.js", "text.js", "player.js", "watch.js")
STATIC_DIR = Path(pages.__file__).resolve().parent / "static"

BASE_VIDEO = {
    "name": "holiday.mp4",
    "size": 5 * 1024 * 1024,
    "uploaded_at": 1_700_000_000.0,
    "content_type": "video/mp4",
}

FULL_VIDEO = {
    **BASE_VIDEO,
    "duration_s": 3723.9,
    "width": 1920,
    "height": 1080,
    "codec": "h264",
    "has_thumbnail": True,
    "remuxed": True,
}


class _Collector(HTMLParser):
    """Collects tags with attributes, and all text, of an HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]

    def by_id(self, element_id: str) -> tuple[str, dict[str, str | None]]:
        matches = [(t, a) for t, a in self.tags if a.get("id") == element_id]
        assert len(matches) == 1, f"expected exactly one #{element_id}, got {matches}"
        return matches[0]


def parse(doc: str) -> _Collector:
    collector = _Collector()
    collector.feed(doc)
    collector.close()
    return collector


TEMPLATES = pages.setup(web.Application())


def render(template: str, context: dict) -> str:
    return TEMPLATES.get_template(template).render(context)


UPLOAD_LIMIT_BYTES = 8 * 1024**3


UPLOADER = pages.VisitorView(name="ulla", role="uploader", csrf_token="c" * 64, can_upload=True)
ADMIN = pages.VisitorView(name="root", role="admin", csrf_token="d" * 64, can_upload=True, is_admin=True)


def home_page(query: str = "", visitor: pages.VisitorView = UPLOADER) -> str:
    return render("home.html", pages.home_context(UPLOAD_LIMIT_BYTES, query, visitor))


def watch_page(video: dict, visitor: pages.VisitorView = UPLOADER, may_delete: bool = True) -> str:
    return render("watch.html", pages.watch_context(video, visitor, may_delete))


def not_found_page(message: str) -> str:
    return render("not_found.html", pages.not_found_context(message))


def status_page(report: dict) -> str:
    return render("status.html", pages.status_context(report))


STATUS_REPORT = {
    "videos": 2,
    "stored_bytes": 3 * 1024 * 1024,
    "replication": 3,
    "repairs_running": 1,
    "datanodes": [
        {
            "address": "127.0.0.1:4001",
            "state": "alive",
            "last_heartbeat_s_ago": 1.5,
            "used_bytes": 2048,
            "free_bytes": 10 * 1024**3,
            "replicas": 2,
        },
        {
            "address": "127.0.0.1:4002",
            "state": "dead",
            "last_heartbeat_s_ago": None,
            "used_bytes": 0,
            "free_bytes": 0,
            "replicas": 0,
        },
    ],
    "under_replicated": [{"name": HOSTILE, "live_replicas": 1, "repairing": True}],
}


def all_pages() -> dict[str, str]:
    return {
        "home": home_page(),
        "home-hostile-query": home_page(HOSTILE),
        "watch-basic": watch_page(BASE_VIDEO),
        "watch-full": watch_page(FULL_VIDEO),
        "watch-hostile": watch_page({**FULL_VIDEO, "name": HOSTILE}),
        "not-found": not_found_page(HOSTILE),
        "status": status_page(STATUS_REPORT),
    }


# --------------------------------------------------------------------------- #
# Escaping and URL encoding
# --------------------------------------------------------------------------- #


def test_hostile_name_is_escaped_in_watch_page():
    """A name containing markup never reaches the page as raw HTML: the only
    <script> tags are our own external ones, and the name appears as text."""
    doc = watch_page({**FULL_VIDEO, "name": HOSTILE})
    assert "<script>alert" not in doc
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.mp4" in doc
    parsed = parse(doc)
    assert parsed.find("script") == [{"src": f"/static/{name}", "defer": None} for name in WATCH_SCRIPTS]
    assert HOSTILE in "".join(parsed.text)  # shown to the user as literal text


def test_quotes_in_name_cannot_break_out_of_attributes():
    """Quotes and ampersands in a name are escaped in attribute values, so the
    parsed data-name/download attributes equal the original name exactly."""
    name = "a\"b' onmouseover=alert(1) x=&amp;.mp4"
    parsed = parse(watch_page({**BASE_VIDEO, "name": name}))
    _, watch = parsed.by_id("watch")
    assert watch["data-name"] == name
    downloads = [a for a in parsed.find("a") if "download" in a]
    assert downloads and all(a["download"] == name for a in downloads)
    assert not any("onmouseover" in attrs for _, attrs in parsed.tags)


def test_urls_are_percent_encoded():
    """Every URL built from a name percent-encodes it as one path segment
    (spaces, '/', '?', '#', '%' and non-ASCII included)."""
    name = "my clip/part?1#x%20é.mp4"
    enc = "my%20clip%2Fpart%3F1%23x%2520%C3%A9.mp4"
    parsed = parse(watch_page({**FULL_VIDEO, "name": name}))
    _, player = parsed.by_id("player")
    assert player["poster"] == f"/thumbnail/{enc}"
    _, watch = parsed.by_id("watch")
    assert watch["data-delete-url"] == watch["data-video-url"] == f"/videos/{enc}"
    assert watch["data-stream-url"] == f"/stream/{enc}"
    assert watch["data-hls-url"] == f"/hls/{enc}/master.m3u8"
    assert parsed.find("a", href=f"/original/{enc}")


def test_hostile_message_escaped_in_not_found_page():
    """not_found_page escapes its message and links back home."""
    doc = not_found_page(HOSTILE)
    assert "<script>alert" not in doc
    parsed = parse(doc)
    assert HOSTILE in "".join(parsed.text)
    assert parsed.find("a", href="/")


# --------------------------------------------------------------------------- #
# CSP: no inline code or styles, nothing external
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("page_name", sorted(all_pages()))
def test_no_inline_script_style_or_handlers(page_name):
    """Pages obey the CSP: no <script> without src, no on*= handlers, no
    style= attributes, no <style> blocks, and no off-site (CDN) URLs."""
    doc = all_pages()[page_name]
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", doc, re.I)
    assert not re.search(r"\son\w+\s*=", doc, re.I)
    assert not re.search(r"\sstyle\s*=", doc, re.I)
    assert not re.search(r"<style\b", doc, re.I)
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", doc, re.I)
    for tag, attrs in parse(doc).tags:
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
        assert "style" not in attrs, (tag, attrs)


@pytest.mark.parametrize("page_name", sorted(all_pages()))
def test_layout_basics(page_name):
    """Every page has the doctype, viewport meta, our stylesheet, a title and
    the MyYoutube brand link home."""
    doc = all_pages()[page_name]
    assert doc.startswith("<!DOCTYPE html>")
    parsed = parse(doc)
    assert parsed.find("meta", name="viewport")
    assert parsed.find("link", rel="stylesheet", href="/static/app.css")
    assert "MyYoutube" in "".join(parsed.text)
    assert any(a.get("href") == "/" and "brand" in (a.get("class") or "") for a in parsed.find("a"))


def test_static_files_exist_and_use_no_inner_html():
    """The referenced static files ship with the package; the JS never uses
    innerHTML/outerHTML/insertAdjacentHTML/document.write (DOM APIs only)."""
    scripts = ("text.js", "home.js", "upload.js", "player.js", "watch.js")
    for name in ("app.css", *scripts):
        assert (STATIC_DIR / name).is_file(), name
    for name in scripts:
        source = (STATIC_DIR / name).read_text(encoding="utf-8")
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", source)
    css = (STATIC_DIR / "app.css").read_text(encoding="utf-8")
    assert "@import" not in css and "url(http" not in css


# --------------------------------------------------------------------------- #
# Page structure
# --------------------------------------------------------------------------- #


def test_home_page_structure():
    """The home page has every element its scripts rely on, with the agreed
    attributes (search box, grid, upload form, file input, progress bar with a name for
    screen readers)."""
    parsed = parse(home_page())
    for element_id in (
        "search",
        "videos",
        "empty-state",
        "upload-form",
        "upload-button",
        "upload-progress",
        "upload-percent",
        "upload-status",
    ):
        parsed.by_id(element_id)
    tag, search = parsed.by_id("search")
    assert tag == "input" and search["type"] == "search"
    tag, form = parsed.by_id("upload-form")
    assert tag == "form" and form["enctype"] == "multipart/form-data"
    tag, file_input = parsed.by_id("file")
    assert (tag, file_input["type"], file_input["name"]) == ("input", "file", "file")
    # Beyond video/*, the extensions some systems' type tables miss or misname (.ts, .mts,
    # .mkv): the picker shows every container the server takes.
    accepted = file_input["accept"].split(",")
    assert accepted[0] == "video/*"
    assert {".mp4", ".mov", ".webm", ".mkv", ".ogv", ".avi", ".ts", ".mts", ".m2ts", ".mpg", ".vob"} <= set(
        accepted
    )
    tag, progress = parsed.by_id("upload-progress")
    assert tag == "progress" and progress["max"] == "100"
    assert progress["aria-label"] == "Upload progress"  # a screen reader names the bar
    assert parsed.find("script") == [
        {"src": f"/static/{name}", "defer": None}
        for name in ("session.js", "text.js", "home.js", "vendor/tus.min.js", "upload.js")
    ]
    assert parsed.by_id("page-title")[0] == "h1" and len(parsed.find("h1")) == 1
    assert parsed.by_id("upload-cancel")[0] == "button" and "hidden" in parsed.by_id("upload-cancel")[1]


def test_home_page_shows_the_upload_limit_before_a_file_is_chosen():
    """The limit the web enforces (--max-upload-bytes) is written next to the file picker,
    and handed to upload.js in a data attribute so it can refuse a file before sending it."""
    parsed = parse(home_page())
    _, form = parsed.by_id("upload-form")
    assert form["data-max-upload-bytes"] == str(UPLOAD_LIMIT_BYTES)
    assert "Choose video files or drop them on the page, up to 8.0 GiB each." in "".join(parsed.text)
    assert parsed.by_id("file")[1]["aria-describedby"] == "upload-limit"


def test_home_page_keeps_the_search_term_from_the_url():
    """`/?q=...` puts the term in the search box and the heading, escaped like any text."""
    parsed = parse(home_page("  holiday  "))
    assert parsed.by_id("search")[1]["value"] == "holiday"
    assert "Results for \u201choliday\u201d" in "".join(parsed.text)
    doc = home_page(HOSTILE)
    assert "<script>alert" not in doc
    parsed = parse(doc)
    assert parsed.by_id("search")[1]["value"] == HOSTILE
    assert f"Results for \u201c{HOSTILE}\u201d" in "".join(parsed.text)
    assert parse(home_page("x" * 1000)).by_id("search")[1]["value"] == "x" * 255


def test_watch_page_structure():
    """The watch page has the player (no src: player.js picks HLS or /stream from the
    data-* attributes), <h1> name, back link, a download link to the original, the hidden
    quality menu and delete controls."""
    parsed = parse(watch_page(BASE_VIDEO))
    tag, player = parsed.by_id("player")
    assert tag == "video"
    assert "controls" in player and player["preload"] == "metadata"
    assert "src" not in player
    assert "poster" not in player  # no has_thumbnail
    _, article = parsed.by_id("watch")
    assert article["data-hls-url"] == "/hls/holiday.mp4/master.m3u8"
    assert article["data-stream-url"] == "/stream/holiday.mp4"
    assert article["data-video-url"] == "/videos/holiday.mp4"
    assert article["data-source"] == "progressive"  # a record from before transcoding
    assert parsed.find("h1")
    assert parsed.find("a", href="/")
    assert [a for a in parsed.find("a", href="/original/holiday.mp4") if a.get("download") == "holiday.mp4"]
    assert parsed.by_id("quality")[0] == "select" and "hidden" in parsed.by_id("quality-row")[1]
    assert parsed.by_id("delete-button")[0] == "button"
    parsed.by_id("delete-status")
    text = "".join(parsed.text)
    assert "Back to all videos" in text and "Download" in text and "Delete" in text


def select_options(page: str, select_id: str) -> list[tuple[str, str, bool]]:
    """(value, text, selected) of each <option> of the <select> with `select_id`."""
    select = re.search(rf'<select[^>]*id="{select_id}".*?</select>', page, re.S)
    assert select, f"no #{select_id}"
    options = re.findall(r'<option value="([^"]*)"( selected)?>([^<]*)</option>', select.group(0))
    return [(value, text, bool(selected)) for value, selected, text in options]


def test_upload_and_edit_forms_name_visibilities_alike():
    """The edit form offers the visibilities in the words the upload form uses ("Only me",
    not "private"), with the video's own one chosen; the upload form starts on public."""
    words = ["Everyone (listed)", "Anyone with the link", "Only me"]
    upload = select_options(home_page(), "visibility")
    assert [(value, text) for value, text, _ in upload] == [
        ("public", words[0]),
        ("unlisted", words[1]),
        ("private", words[2]),
    ]
    assert [selected for *_, selected in upload] == [True, False, False]
    edit_page = render(
        "watch.html", pages.watch_context({**BASE_VIDEO, "visibility": "private"}, UPLOADER, True, True)
    )
    edit = select_options(edit_page, "edit-visibility")
    assert [(value, text) for value, text, _ in edit] == [(value, text) for value, text, _ in upload]
    assert [selected for *_, selected in edit] == [False, False, True]
    assert '<label for="edit-visibility">Who can watch</label>' in edit_page


# --------------------------------------------------------------------------- #
# Dates and optional metadata
# --------------------------------------------------------------------------- #


def test_date_has_utc_fallback_and_timestamp():
    """The upload date is a <time> with UTC fallback text and the raw
    timestamp for watch.js to localise."""
    doc = watch_page(BASE_VIDEO)
    parsed = parse(doc)
    times = parsed.find("time")
    assert len(times) == 1
    assert times[0]["datetime"] == "2023-11-14T22:13:20Z"
    assert float(times[0]["data-timestamp"]) == 1_700_000_000.0
    assert "2023-11-14 22:13 UTC" in doc


def test_optional_metadata_rendered_when_present():
    """duration, resolution, codec, remux flag and poster appear when given."""
    doc = watch_page(FULL_VIDEO)
    text = "".join(parse(doc).text)
    assert "1:02:03" in text
    assert "1920\u00d71080" in text
    assert "h264" in text
    assert "remuxed" in text
    assert "5.0 MiB" in text
    _, player = parse(doc).by_id("player")
    assert player["poster"] == "/thumbnail/holiday.mp4"


@pytest.mark.parametrize(
    "visibility, words",
    [("public", "Everyone (listed)"), ("unlisted", "Anyone with the link"), ("private", "Only me")],
)
def test_watch_page_says_who_can_watch(visibility, words):
    """The details say who can watch, in the forms' words, so an owner tells a private
    video from a published one without opening the edit form."""
    rows = pages.metadata_rows({**BASE_VIDEO, "visibility": visibility})
    assert [row.text for row in rows if row.label == "Who can watch"] == [words]
    assert f"<dt>Who can watch</dt><dd>{words}</dd>" in watch_page({**BASE_VIDEO, "visibility": visibility})


def test_optional_metadata_absent_when_missing_or_invalid():
    """Absent (or malformed) optional keys produce no label and no poster."""
    for video in (
        BASE_VIDEO,
        {
            **BASE_VIDEO,
            "duration_s": None,
            "width": "wide",
            "height": 0,
            "codec": "",
            "has_thumbnail": "yes",
            "remuxed": False,
        },
    ):
        parsed = parse(watch_page(video))
        text = "".join(parsed.text)
        for label in ("Duration", "Resolution", "Codec", "Streaming"):
            assert label not in text, (label, video)
        assert "poster" not in parsed.by_id("player")[1]
        assert "thumbnail" not in watch_page(video)


def test_player_takes_the_pictures_shape():
    """The <video> carries the picture's width and height (portrait stays portrait), so the
    box follows its aspect ratio; with no size known it has none (16:9 until metadata)."""
    _, player = parse(watch_page({**BASE_VIDEO, "width": 1080, "height": 1920})).by_id("player")
    assert (player["width"], player["height"]) == ("1080", "1920")
    _, player = parse(watch_page(BASE_VIDEO)).by_id("player")
    assert "width" not in player and "height" not in player


def test_processing_video_shows_its_percent_and_polls():
    """A processing video's page says "Processing N%" as text with a progress bar, and
    tells player.js to poll and that there is nothing to play yet."""
    video = {
        **BASE_VIDEO,
        "state": "processing",
        "progress": 37,
        "renditions": [],
        "playable_original": False,
    }
    parsed = parse(watch_page(video))
    _, article = parsed.by_id("watch")
    assert (article["data-state"], article["data-source"]) == ("processing", "none")
    assert int(article["data-poll-ms"]) > 0
    _, box = parsed.by_id("video-state")
    assert "hidden" not in box and box["role"] == "status"
    assert "Processing 37%" in "".join(parsed.text)
    _, bar = parsed.by_id("video-progress")
    assert (bar["value"], bar["max"]) == ("37", "100") and "hidden" not in bar


def test_failed_video_shows_the_reason():
    """A failed video's page gives the reason in words, escaped, with no progress bar."""
    video = {**BASE_VIDEO, "state": "failed", "failure": "<b>Decoder</b> gave up.", "renditions": []}
    doc = watch_page({**video, "playable_original": False})
    parsed = parse(doc)
    assert "This video could not be prepared for playback: <b>Decoder</b> gave up." in "".join(parsed.text)
    assert "<b>Decoder" not in doc
    assert "hidden" in parsed.by_id("video-progress")[1]
    assert parsed.by_id("watch")[1]["data-source"] == "none"


def test_ready_video_plays_hls_and_shows_no_state():
    """A ready video with renditions starts with HLS and shows no state line."""
    video = {**BASE_VIDEO, "state": "ready", "renditions": [{"height": 240, "width": 320, "bandwidth": 1}]}
    parsed = parse(watch_page({**video, "playable_original": True}))
    assert parsed.by_id("watch")[1]["data-source"] == "hls"
    assert "hidden" in parsed.by_id("video-state")[1]


def test_codec_is_escaped():
    """Metadata strings such as codec are escaped too."""
    doc = watch_page({**BASE_VIDEO, "codec": "<b>x</b>"})
    assert "<b>x</b>" not in doc and "&lt;b&gt;x&lt;/b&gt;" in doc


def test_missing_or_bad_timestamp_does_not_crash():
    """A watch page still renders when uploaded_at is missing or absurd."""
    for video in ({"name": "a.mp4"}, {"name": "a.mp4", "uploaded_at": 1e20}):
        doc = watch_page(video)
        assert "unknown" in doc and "a.mp4" in doc


def test_status_page_rows_and_escaping():
    """The status page has one row per datanode with its state, heartbeat age and sizes,
    lists under-replicated videos with hostile names as text, and refreshes itself."""
    doc = status_page(STATUS_REPORT)
    assert "<script>alert" not in doc
    parsed = parse(doc)
    text = "".join(parsed.text)
    assert f"{HOSTILE}: 1 of 3 copies (repairing)" in text
    assert parsed.find("tr", **{"class": "node-alive"}) and parsed.find("tr", **{"class": "node-dead"})
    assert "1.5 s ago" in text and "never" in text and "10.0 GiB" in text
    assert "2 videos, 3.0 MiB stored" in " ".join(text.split())
    assert parsed.find("meta", **{"http-equiv": "refresh", "content": str(pages.STATUS_REFRESH_S)})


def test_status_page_counts_in_their_number():
    """The status page said "1 repair copies running", "1 videos" and "stored 1 times"
    (one datanode, one copy each); each count now takes its noun in its number."""
    report = {
        **STATUS_REPORT,
        "videos": 1,
        "replication": 1,
        "under_replicated": [{"name": "a.mp4", "live_replicas": 0, "repairing": False}],
    }
    text = " ".join("".join(parse(status_page(report)).text).split())
    assert "1 video, 3.0 MiB stored 1 time; 1 repair copy running." in text
    assert "a.mp4: 0 of 1 copy" in text
    text = " ".join("".join(parse(status_page({**STATUS_REPORT, "repairs_running": 2})).text).split())
    assert "2 videos, 3.0 MiB stored 3 times; 2 repair copies running." in text


def test_status_page_without_datanodes():
    """A cluster with no datanode yet says so instead of showing an empty table."""
    text = "".join(parse(status_page({**STATUS_REPORT, "datanodes": [], "under_replicated": []})).text)
    assert "No datanode has registered." in text
    assert "every video has all its copies" in text


# --- what each visitor is shown -------------------------------------------------------------


def test_anonymous_visitor_sees_sign_in_and_no_upload_or_delete_controls():
    """Nobody signed in: a Sign in link, no upload form or script, no Delete button, no
    CSRF token and no status link."""
    home = parse(home_page(visitor=pages.ANONYMOUS_VIEW))
    assert home.find("a", id="sign-in") and not home.find("form", id="upload-form")
    assert {"src": "/static/upload.js", "defer": None} not in home.find("script")
    assert not home.find("meta", name="csrf-token") and not home.find("a", href="/status")
    watch = parse(watch_page(BASE_VIDEO, pages.ANONYMOUS_VIEW, may_delete=False))
    assert not watch.find("button", id="delete-button")


def test_signed_in_visitor_sees_name_sign_out_and_csrf_token():
    """A signed-in uploader: name and role in the header, a Sign out form carrying the
    CSRF token, the same token in the page's meta tag, the upload form; no status link."""
    doc = parse(home_page(visitor=UPLOADER))
    assert "ulla" in "".join(doc.text)
    assert doc.find("meta", name="csrf-token", content="c" * 64)
    assert doc.find("form", action="/logout", method="post")
    assert doc.find("input", name="csrf_token", value="c" * 64)
    assert doc.find("form", id="upload-form") and not doc.find("a", href="/status")


def test_admin_sees_the_status_link_and_delete_on_any_video():
    """An admin's pages link to the cluster status; Delete shows when the server says so."""
    doc = parse(watch_page(BASE_VIDEO, ADMIN, may_delete=True))
    assert doc.find("a", href="/status") and doc.find("button", id="delete-button")


def test_login_page_puts_the_cursor_where_typing_begins():
    """A fresh sign-in form focuses the username; after a wrong password, which keeps the
    username, it focuses the password, so a keyboard user types at once, never Tabs first."""
    fresh = parse(render("login.html", pages.login_context("/")))
    assert "autofocus" in fresh.by_id("username")[1] and "autofocus" not in fresh.by_id("password")[1]
    retry = parse(render("login.html", pages.login_context("/", "Wrong username or password.", "ulla")))
    assert "autofocus" in retry.by_id("password")[1] and "autofocus" not in retry.by_id("username")[1]


def test_login_page_escapes_what_it_echoes():
    """The sign-in form echoes the typed username and the failure sentence as text, and
    keeps where to go next in a hidden field."""
    doc = render("login.html", pages.login_context("/watch/a", "Wrong username or password.", HOSTILE))
    assert "<script>alert" not in doc
    parsed = parse(doc)
    assert parsed.find("input", name="username", value=HOSTILE)
    assert parsed.find("input", name="next", value="/watch/a")
    assert parsed.find("form", action="/login", method="post")


def test_csp_lets_media_source_play_and_nothing_more():
    """hls.js hands the <video> a blob: URL for its MediaSource, so media-src allows blob:;
    scripts, workers and everything else stay same-origin only."""
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in SECURITY_HEADERS["Content-Security-Policy"].split(";")
        if directive.strip()
    )
    assert policy["media-src"] == "'self' blob:"
    assert policy["script-src"] == "'self'" and policy["default-src"] == "'self'"
    assert "worker-src" not in policy  # falls back to script-src: no blob: workers
