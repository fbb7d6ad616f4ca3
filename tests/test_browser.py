"""End-to-end tests in a real headless Chromium (Debian's, driven by Playwright) against a
real cluster: upload with progress, a Cancel button, the size limit and a link to the new
video; live grid and search with the term in the URL and matches highlighted; loading more
on scroll and keeping the place on Back; watching with seeks served by range requests,
hostile names shown as text, posters in the grid and player, Delete behind a confirm(), the
cluster status page at desktop and phone widths, text contrast, and no console errors or
CSP violations.

Chromium is Debian's `/usr/bin/chromium`; Playwright's own browser downloads are never
used. If it is missing, the tests fail (they never skip) with a message saying so.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

import aiohttp
import pytest

try:
    from playwright.async_api import Browser, ConsoleMessage, Page, Response, async_playwright, expect
except ModuleNotFoundError as exc:  # fail loudly rather than skip: these tests must run
    raise RuntimeError(
        "The Python package 'playwright' is needed for tests/test_browser.py "
        "(pip install playwright; do NOT run 'playwright install', the tests "
        "use Debian's /usr/bin/chromium)."
    ) from exc

from harness import wait_until
from myyoutube.formatting import human_size
from myyoutube.videotext import default_title
from myyoutube.web.videos import MAX_QUERY_CHARS
from videos import make_mp4

CHROMIUM = Path("/usr/bin/chromium")
PHONE = {"width": 375, "height": 812}
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--autoplay-policy=no-user-gesture-required",
]
# Generous for a loaded machine: a passing run takes ~7 s in all alone, up to ~25 s beside
# another test worker that transcodes.
TIMEOUT_MS = 30_000
expect.set_options(timeout=TIMEOUT_MS)
CLIP_SECONDS = 8.0

# Records CSP violations (init scripts are injected by the browser, not subject to CSP).
CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""

# Records every value #upload-progress and #upload-percent take (progress.value reflects to
# the `value` attribute, so a MutationObserver sees each step, however fast the upload).
PROGRESS_RECORDER = """() => {
  window.__progress = [];
  window.__percent = [];
  window.__sameDocument = true;
  if (window.__progressObserved) return;
  window.__progressObserved = true;
  const bar = document.getElementById("upload-progress");
  const label = document.getElementById("upload-percent");
  new MutationObserver(() => window.__progress.push(bar.value))
    .observe(bar, {attributes: true, attributeFilter: ["value"]});
  new MutationObserver(() => window.__percent.push(label.textContent))
    .observe(label, {childList: true, characterData: true, subtree: true});
}"""


# Every page.wait_for_function predicate below is a function ("() => ..."), never a bare
# expression: Playwright re-evaluates a bare expression with eval(), which the pages' CSP
# (script-src 'self', no 'unsafe-eval') blocks as soon as the first check is false.


def tag() -> str:
    return uuid.uuid4().hex[:8]


@dataclass
class Watched:
    """A page with everything it reported: console errors, dialogs, /stream/ responses.

    Dialogs are unexpected (recorded in `dialogs`, dismissed) unless a test sets
    `answer_confirm`: then confirm() dialogs are answered with it and their messages go
    to `confirms` instead."""

    page: Page
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    streams: list[Response] = field(default_factory=list)
    confirms: list[str] = field(default_factory=list)
    answer_confirm: bool | None = None

    async def csp_violations(self) -> list[str]:
        return await self.page.evaluate("window.__cspViolations || []")

    async def assert_clean(self) -> None:
        """No console error, uncaught exception, CSP violation or dialog so far."""
        assert self.errors == [], f"console errors: {self.errors}"
        assert await self.csp_violations() == []
        assert self.dialogs == [], f"dialogs opened: {self.dialogs}"


@pytest.fixture(scope="module")
async def browser():
    """Debian's headless Chromium, shared by the module (each test gets a fresh context)."""
    # One stat, once per module: too small to matter to the event loop.
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:  # noqa: ASYNC240
        pytest.fail(
            f"{CHROMIUM} is not installed: apt-get install chromium "
            "(these tests never use 'playwright install')."
        )
    async with async_playwright() as playwright:
        # launch() gives the browser a fresh temporary user-data-dir, removed on close.
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        await chromium.close()


async def sign_in(context, url: str, token: str) -> None:
    """Give a browser context the session cookie of `token`, as signing in would."""
    await context.add_cookies(
        [{"name": "myyoutube_session", "value": token, "url": url, "httpOnly": True, "sameSite": "Lax"}]
    )


@pytest.fixture
async def watched(browser: Browser, request):
    """A page in a fresh browser context, recording what a test must never see; signed in
    as the admin when the test uses the shared cluster."""
    context = await browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    if "cluster" in request.fixturenames:
        cluster = request.getfixturevalue("cluster")
        await sign_in(context, cluster.url, cluster.admin_token)
    await context.add_init_script(CSP_RECORDER)
    page = await context.new_page()
    seen = Watched(page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            seen.errors.append(f"{message.text} @ {message.location.get('url')}")

    async def on_dialog(dialog) -> None:
        if dialog.type == "confirm" and seen.answer_confirm is not None:
            seen.confirms.append(dialog.message)
            await (dialog.accept() if seen.answer_confirm else dialog.dismiss())
            return
        seen.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", lambda exc: seen.errors.append(f"uncaught: {exc}"))
    page.on("dialog", on_dialog)
    page.on("response", lambda r: seen.streams.append(r) if "/stream/" in r.url else None)
    yield seen
    await context.close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_mp4(tmp_path_factory.mktemp("videos") / "clip.mp4", seconds=CLIP_SECONDS)


async def card_names(page: Page) -> list[str]:
    return await page.eval_on_selector_all("#videos a.video-card", "cards => cards.map(c => c.dataset.name)")


async def open_home(page: Page, url: str) -> None:
    await page.goto(url + "/")
    await expect(page.locator("#videos")).to_have_attribute("aria-busy", "false")


async def upload_in_page(page: Page, file) -> str:
    """Upload `file` (path or FilePayload) with the form (resumable, over tus); the name
    the server answered to the PATCH that completed it."""
    await page.evaluate(PROGRESS_RECORDER)
    await page.set_input_files("#file", file)
    async with page.expect_response(
        lambda r: r.request.method == "PATCH" and "video-name" in r.headers
    ) as answer:
        await page.click("#upload-button")
    response = await answer.value
    assert response.status == 204
    return unquote(response.headers["video-name"])


async def wait_for_cards(page: Page, expected: list[str], among: str = "") -> None:
    """Wait until the cards whose name contains `among` are exactly `expected` (any order)."""
    await page.wait_for_function(
        """([expected, among]) => {
          const names = Array.from(document.querySelectorAll("#videos a.video-card"),
                                   c => c.dataset.name).filter(n => n.includes(among));
          return names.length === expected.length && expected.every(n => names.includes(n));
        }""",
        arg=[expected, among],
    )


async def upload_over_http(cluster, path: Path, name: str) -> str:
    form = aiohttp.FormData()
    # The test clips are a few seconds at 320x240: reading one whole is instant.
    form.add_field("file", path.read_bytes(), filename=name, content_type="video/mp4")  # noqa: ASYNC240
    async with (
        aiohttp.ClientSession(headers=cluster.admin_headers()) as session,
        session.post(cluster.url + "/upload", data=form) as response,
    ):
        assert response.status == 201, await response.text()
        return (await response.json())["name"]


async def delete_over_http(cluster, name: str) -> None:
    async with (
        aiohttp.ClientSession(headers=cluster.admin_headers()) as session,
        session.delete(f"{cluster.url}/videos/{quote(name, safe='')}") as response,
    ):
        assert response.status == 200, await response.text()


# Takes Media Source Extensions away (an init script): hls.js is then unsupported and the
# watch page plays the progressive /stream, as in a browser without MSE.
NO_MSE = "delete window.MediaSource; delete window.ManagedMediaSource;"
# Transcoding a clip of a few seconds at 320x240 takes a second or two; a loaded machine more.
READY_TIMEOUT_S = 120.0


async def wait_ready(cluster, name: str) -> dict:
    """Poll GET /videos/{name} until the video is transcoded (`ready`); its record. Fails
    with the reason if it failed."""
    url = f"{cluster.url}/videos/{quote(name, safe='')}"
    record: dict = {}

    async def ready() -> bool:
        nonlocal record
        async with (
            aiohttp.ClientSession(headers=cluster.admin_headers()) as session,
            session.get(url) as answer,
        ):
            assert answer.status == 200, await answer.text()
            record = await answer.json()
        assert record["state"] != "failed", record
        return record["state"] == "ready"

    await wait_until(ready, f"{name} ready", READY_TIMEOUT_S)
    return record


async def http_status(url: str, method: str = "GET") -> int:
    async with aiohttp.ClientSession() as session, session.request(method, url) as response:
        return response.status


async def listed_names(url: str) -> list[str]:
    async with aiohttp.ClientSession() as session, session.get(url + "/listar") as response:
        assert response.status == 200
        return [video["name"] for video in (await response.json())["videos"]]


# Resolves with an image URL's natural size once loaded in the page, [0, 0] if it fails.
LOAD_IMAGE = """(src) => new Promise(resolve => {
  const image = new Image();
  image.onload = () => resolve([image.naturalWidth, image.naturalHeight]);
  image.onerror = () => resolve([0, 0]);
  image.src = src;
})"""


# --- tests -----------------------------------------------------------------------------


async def test_upload_shows_progress_and_card_then_search_filters(cluster, watched, clip, tmp_path):
    """Uploading through the form drives the progress bar to 100 %, reports "Uploaded NAME"
    and adds the card without a reload, and typing in the search box keeps only matching cards."""
    page, run = watched.page, tag()
    await open_home(page, cluster.url)

    uploaded = []
    for animal in ("cat", "dog"):
        local = tmp_path / f"{animal}-{run}.mp4"
        shutil.copyfile(clip, local)
        name = await upload_in_page(page, local)
        assert name == local.name
        uploaded.append(name)
        await expect(page.locator("#upload-status")).to_have_text(f"Uploaded {name}")
        link = page.locator("#upload-status a")
        await expect(link).to_have_text(name)
        assert await link.get_attribute("href") == f"/watch/{quote(name, safe='')}"
        await page.wait_for_function("() => document.getElementById('upload-progress').value === 100")
        steps = await page.evaluate("window.__progress")
        assert steps and steps[-1] == 100 and steps == sorted(steps), steps
        assert any(
            text.endswith("100%") or "Processing" in text for text in await page.evaluate("window.__percent")
        )
        await wait_for_cards(page, uploaded, among=run)
        # The form is usable again and the page never navigated.
        await expect(page.locator("#upload-button")).to_be_enabled()
        assert await page.evaluate("window.__sameDocument === true")

    cat, dog = uploaded
    await page.fill("#search", f"CAT-{run}")  # search is case-insensitive
    await page.wait_for_function(
        "(name) => { const c = document.querySelectorAll('#videos a.video-card');"
        "  return c.length === 1 && c[0].dataset.name === name; }",
        arg=cat,
    )
    await expect(page.locator("#video-count")).to_have_text("1 video")

    await page.fill("#search", run)
    await wait_for_cards(page, [cat, dog])
    assert all(run in name for name in await card_names(page))

    await page.fill("#search", f"nothing-{run}")
    await expect(page.locator("#empty-state")).to_be_visible()
    assert await card_names(page) == []
    await page.fill("#search", "")
    await wait_for_cards(page, [cat, dog], among=run)
    await watched.assert_clean()


async def test_watch_page_plays_and_seeks_over_range_requests(cluster, watched, clip):
    """Clicking a card opens a player that knows the clip's duration, and after a seek near
    the end playback advances; without MSE it plays /stream (the best rendition), served
    by 206 range responses to Range requests."""
    page, name = watched.page, f"watch-{tag()}.mp4"
    assert await upload_over_http(cluster, clip, name) == name
    await wait_ready(cluster, name)
    await page.add_init_script(NO_MSE)
    await open_home(page, cluster.url)
    await page.fill("#search", name)
    await wait_for_cards(page, [name])
    await page.click(f'#videos a.video-card[data-name="{name}"]')
    await page.wait_for_url(f"**/watch/{name}")
    await expect(page.locator("#watch .file-name")).to_have_text(name)  # the title is made from it

    await page.wait_for_function("() => document.getElementById('player').readyState >= 1")  # HAVE_METADATA
    duration = await page.evaluate("document.getElementById('player').duration")
    assert abs(duration - CLIP_SECONDS) < 0.2, duration

    seek = duration - 1.5
    await page.evaluate(
        """async (seek) => {
      const player = document.getElementById("player");
      player.muted = true;
      const seeked = new Promise(resolve => player.addEventListener("seeked", resolve, {once: true}));
      player.currentTime = seek;
      await seeked;
      await player.play();
    }""",
        seek,
    )
    await page.wait_for_function(
        "(seek) => document.getElementById('player').currentTime > seek + 0.3", arg=seek
    )
    error = await page.evaluate("document.getElementById('player').error?.code ?? null")
    assert error is None, f"MediaError code {error}"
    await expect(page.locator("#player-status")).to_be_hidden()

    ranged = []
    for response in watched.streams:
        request_headers = await response.request.all_headers()
        headers = await response.all_headers()
        if response.status == 206 and "range" in request_headers and "content-range" in headers:
            ranged.append((request_headers["range"], headers["content-range"]))
    assert ranged, [(r.status, r.url) for r in watched.streams]
    async with (
        aiohttp.ClientSession(headers=cluster.admin_headers()) as session,
        session.head(f"{cluster.url}/stream/{name}") as answer,
    ):
        size = int(answer.headers["Content-Length"])
    assert all(
        content_range.startswith("bytes ") and content_range.endswith(f"/{size}")
        for _, content_range in ranged
    ), ranged
    await watched.assert_clean()


async def test_moov_at_end_mp4_plays_to_the_end(cluster, watched, tmp_path):
    """An MP4 whose index (moov) is written after the media data still gets its duration in
    the player and plays through to the end after a seek, from /stream without MSE."""
    page, name = watched.page, f"moov-last-{tag()}.mp4"
    path = make_mp4(tmp_path / name, seconds=4.0, faststart=False)
    assert path.read_bytes().find(b"moov") > path.read_bytes().find(b"mdat")
    assert await upload_over_http(cluster, path, name) == name
    await wait_ready(cluster, name)
    await page.add_init_script(NO_MSE)
    await page.goto(f"{cluster.url}/watch/{name}")
    await page.wait_for_function("() => document.getElementById('player').readyState >= 1")
    duration = await page.evaluate("document.getElementById('player').duration")
    assert abs(duration - 4.0) < 0.2, duration
    await page.evaluate("""() => {
      const player = document.getElementById("player");
      player.muted = true;
      player.currentTime = player.duration - 1;
      return player.play();
    }""")
    await page.wait_for_function("() => document.getElementById('player').ended")
    assert any(r.status == 206 for r in watched.streams)
    await watched.assert_clean()


@pytest.mark.parametrize("hostile", ["<img src=x onerror=alert(1)>", "<script>alert(1)</script>"])
async def test_hostile_name_is_shown_as_text(cluster, watched, clip, hostile):
    """A video whose name is HTML markup is shown as literal text in the status line, its
    card and its watch page, and no script runs (no dialog, no CSP violation)."""
    page = watched.page
    sent = f"{hostile}-{tag()}.mp4"
    await open_home(page, cluster.url)
    name = await upload_in_page(page, {"name": sent, "mimeType": "video/mp4", "buffer": clip.read_bytes()})
    # Names keep only their last path component today ("</script>" has a "/", so the name
    # becomes "script>-....mp4"): whatever the server kept must be shown, literally.
    assert name in (sent, sent.rsplit("/", 1)[-1])
    await expect(page.locator("#upload-status")).to_have_text(f"Uploaded {name}")
    await wait_for_cards(page, [name], among=name)
    card = page.locator("#videos a.video-card").filter(
        has_text=default_title(name)
    )  # the card shows the title
    await expect(card).to_have_count(1)
    assert default_title(name) in await card.inner_text()
    assert await card.get_attribute("data-name") == name
    assert await page.locator("#videos img[src='x'], #videos script").count() == 0

    await card.click()
    await page.wait_for_url("**/watch/**")
    await expect(page.locator("#watch .file-name")).to_have_text(name)  # the title is made from it
    assert await page.locator("#watch").get_attribute("data-name") == name
    assert await page.locator("img[src='x'], body script:not([src])").count() == 0
    await page.wait_for_function("() => document.getElementById('player').readyState >= 1")
    await watched.assert_clean()


async def test_poster_shows_in_grid_and_player(cluster, watched, clip):
    """An uploaded video's JPEG poster loads in its card, filling a 16:9 box, and is the
    player's poster on its watch page."""
    page, name = watched.page, f"poster-{tag()}.mp4"
    assert await upload_over_http(cluster, clip, name) == name
    await open_home(page, cluster.url)
    await page.fill("#search", name)
    await wait_for_cards(page, [name])

    image = page.locator(f'#videos a.video-card[data-name="{name}"] .thumb img')
    await expect(image).to_have_count(1)
    assert await image.get_attribute("src") == f"/thumbnail/{quote(name, safe='')}"
    await page.wait_for_function(
        """(name) => {
          const img = document.querySelector(`#videos a.video-card[data-name="${name}"] img`);
          return img !== null && img.complete && img.naturalWidth > 0;
        }""",
        arg=name,
    )
    # The poster is 320 px wide like the clip; the card shows it cropped to 16:9.
    shown = await image.evaluate("""(img) => {
      const box = img.getBoundingClientRect();
      return {natural: img.naturalWidth, ratio: box.width / box.height,
              fit: getComputedStyle(img).objectFit};
    }""")
    assert shown["natural"] == 320, shown
    assert abs(shown["ratio"] - 16 / 9) < 0.02 and shown["fit"] == "cover", shown

    await page.click(f'#videos a.video-card[data-name="{name}"]')
    await page.wait_for_url(f"**/watch/{quote(name)}")
    poster = await page.locator("#player").get_attribute("poster")
    assert poster == f"/thumbnail/{quote(name, safe='')}"
    width, height = await page.evaluate(LOAD_IMAGE, poster)
    assert width == 320 and height == 240, (width, height)
    fetched = await page.evaluate(
        """async (url) => {
      const response = await fetch(url);
      return [response.status, response.headers.get("content-type"),
              (await response.arrayBuffer()).byteLength];
    }""",
        poster,
    )
    assert fetched[0] == 200 and fetched[1] == "image/jpeg" and fetched[2] > 0, fetched
    await watched.assert_clean()


async def test_delete_button_removes_the_video(cluster, watched, clip):
    """Dismissing Delete's confirm() keeps the video; accepting it deletes the video,
    goes back to the grid without its card, and its stream then answers 404."""
    page, name = watched.page, f"delete-me-{tag()}.mp4"
    assert await upload_over_http(cluster, clip, name) == name
    deletes = []
    page.on("request", lambda r: deletes.append(r.url) if r.method == "DELETE" else None)
    await page.goto(f"{cluster.url}/watch/{quote(name)}")
    await expect(page.locator("#watch .file-name")).to_have_text(name)  # the title is made from it

    watched.answer_confirm = False
    await page.click("#delete-button")
    await page.evaluate("1")  # runs only once the dialog is closed and the handler returned
    assert len(watched.confirms) == 1 and name in watched.confirms[0], watched.confirms
    assert deletes == []
    assert page.url.endswith(f"/watch/{quote(name)}")
    await expect(page.locator("#delete-button")).to_be_enabled()
    await expect(page.locator("#delete-status")).to_be_hidden()
    assert name in await listed_names(cluster.url)
    assert await http_status(f"{cluster.url}/stream/{quote(name)}", "HEAD") == 200

    watched.answer_confirm = True
    async with page.expect_response(lambda r: r.request.method == "DELETE") as answer:
        await page.click("#delete-button")
    assert (await answer.value).status == 200
    await page.wait_for_url(f"{cluster.url}/")
    await expect(page.locator("#videos")).to_have_attribute("aria-busy", "false")
    assert name not in await card_names(page)
    assert len(watched.confirms) == 2 and len(deletes) == 1
    assert name not in await listed_names(cluster.url)
    assert await http_status(f"{cluster.url}/stream/{quote(name)}") == 404
    assert await http_status(f"{cluster.url}/watch/{quote(name)}") == 404
    await watched.assert_clean()


async def test_a_watch_page_says_when_its_video_was_deleted_elsewhere(cluster, watched, clip):
    """A watch page left open while its video is deleted elsewhere says "This video no
    longer exists" (not "cannot play" or a bare error) when the player's stream answers
    404, and when Delete or Save does; the actions that can only fail are taken away."""
    page, playing, edited = watched.page, f"gone-play-{tag()}.mp4", f"gone-edit-{tag()}.mp4"
    for name in (playing, edited):
        assert await upload_over_http(cluster, clip, name) == name

    async def delete_first(route) -> None:
        # The player's first request reaches the real web only once the video is deleted.
        await delete_over_http(cluster, playing)
        await route.continue_()

    await page.route(re.compile(f"/(stream|hls)/{re.escape(quote(playing))}"), delete_first)
    await page.goto(f"{cluster.url}/watch/{quote(playing)}")
    await expect(page.locator("#gone-notice")).to_be_visible()
    await expect(page.locator("#gone-notice")).to_contain_text("This video no longer exists")
    await expect(page.locator("#player-status")).to_be_hidden()
    await expect(page.locator("#delete-button")).to_be_disabled()
    await expect(page.locator("#download")).to_be_hidden()

    await page.goto(f"{cluster.url}/watch/{quote(edited)}")
    await expect(page.locator("#watch")).to_have_attribute("data-playing", re.compile("hls|progressive"))
    await delete_over_http(cluster, edited)
    await page.click(".edit summary")
    await page.fill("#edit-title", "Too late")
    async with page.expect_response(lambda r: r.request.method == "PATCH") as answer:
        await page.click("#edit-form button[type=submit]")
    assert (await answer.value).status == 404
    await expect(page.locator("#gone-notice")).to_be_visible()
    await expect(page.locator("#edit-status")).to_be_hidden()
    await expect(page.locator("#edit-title")).to_be_disabled()
    # The browser reports each refused request in the console; nothing else may appear.
    watched.errors[:] = [e for e in watched.errors if "status of 404" not in e]
    await watched.assert_clean()


async def test_cards_with_the_same_title_show_their_names(cluster, watched, clip):
    """hevc.mkv and hevc.mp4 are both titled "hevc": cards whose titles repeat show the
    video's name under the title (part of the link's text, so a screen reader tells
    them apart too); a card whose title is its own shows none."""
    page, run = watched.page, tag()
    twins = [f"twin-{run}.mp4", f"twin-{run}.mkv"]
    for name in [*twins, f"single-{run}.mp4"]:
        assert await upload_over_http(cluster, clip, name) == name
    await page.goto(f"{cluster.url}/?q={run}")
    await wait_for_cards(page, [*twins, f"single-{run}.mp4"], among=run)
    for name in twins:
        card = page.locator(f'#videos a.video-card[data-name="{name}"]')
        await expect(card.locator(".card-title")).to_have_text(f"twin {run}")  # made from the name
        await expect(card.locator(".card-name")).to_have_text(name)
        await expect(card).to_have_accessible_name(re.compile(re.escape(name)))
    await expect(
        page.locator(f'#videos a.video-card[data-name="single-{run}.mp4"] .card-name')
    ).to_have_count(0)
    await watched.assert_clean()


async def set_title(cluster, name: str, title: str) -> None:
    async with (
        aiohttp.ClientSession(headers=cluster.admin_headers()) as session,
        session.patch(f"{cluster.url}/videos/{quote(name, safe='')}", json={"title": title}) as response,
    ):
        assert response.status == 200, await response.text()


async def test_a_right_to_left_title_reads_right_to_left(cluster, watched, clip):
    """An Arabic title reads and aligns right to left on its card, its watch page and in
    the edit form, while a Latin title beside it stays left to right: each title takes
    the direction of its own first letter, isolated from the text around it."""
    page, run = watched.page, tag()
    arabic, latin = f"rihla-{run}.mp4", f"trip-{run}.mp4"
    for name in (arabic, latin):
        assert await upload_over_http(cluster, clip, name) == name
    await set_title(cluster, arabic, f"رحلة إلى البحر {run}")
    await page.goto(f"{cluster.url}/?q={run}")
    await wait_for_cards(page, [arabic, latin], among=run)
    direction = "element => [getComputedStyle(element).direction, getComputedStyle(element).unicodeBidi]"
    for name, expected in ((arabic, "rtl"), (latin, "ltr")):
        title = page.locator(f'#videos a.video-card[data-name="{name}"] .card-title')
        assert await title.evaluate(direction) == [expected, "isolate"], name
    await page.click(f'#videos a.video-card[data-name="{arabic}"]')
    await page.wait_for_url("**/watch/**")
    assert await page.locator("#video-title").evaluate(direction) == ["rtl", "isolate"]
    assert await page.locator("#watch .file-name").evaluate(direction) == ["ltr", "isolate"]
    await page.click("details.edit summary")
    assert await page.locator("#edit-title").evaluate(direction) == ["rtl", "isolate"]
    await watched.assert_clean()


async def test_status_page_lists_datanodes(cluster, watched):
    """/status shows one row per datanode, all alive, with the state badge inside its row
    and no horizontal scrolling on a 375 px phone."""
    page = watched.page
    expected = sorted(node.address for node in cluster.datanodes)
    for viewport in ({"width": 1280, "height": 800}, PHONE):
        await page.set_viewport_size(viewport)
        await page.goto(f"{cluster.url}/status")
        await expect(page.locator("h1")).to_have_text("Cluster status")
        rows = page.locator(".status-table tbody tr")
        await expect(rows).to_have_count(3)
        await expect(page.locator(".status-table tbody tr.node-alive")).to_have_count(3)
        await expect(page.locator(".status-table tbody .badge")).to_have_text(["alive"] * 3)
        addresses = await rows.evaluate_all("rows => rows.map(r => r.cells[0].textContent)")
        assert sorted(addresses) == expected
        layout = await rows.evaluate_all("""rows => ({
          scroll: document.documentElement.scrollWidth - window.innerWidth,
          // Readable: no address is broken over two lines, even on a phone.
          addressesOnOneLine: rows.every(row => {
            const text = document.createRange();
            text.selectNodeContents(row.cells[0]);
            return text.getClientRects().length === 1;
          }),
          badgesInRows: rows.every(row => {
            const r = row.getBoundingClientRect();
            const b = row.querySelector(".badge").getBoundingClientRect();
            return b.width > 0 && b.left >= r.left && b.right <= r.right
                && b.top >= r.top && b.bottom <= r.bottom;
          }),
        })""")
        assert layout == {"scroll": 0, "addressesOnOneLine": True, "badgesInRows": True}, (viewport, layout)
    await watched.assert_clean()


async def test_the_page_script_shows_sizes_as_the_server_does(cluster, watched):
    """text.js's humanSize, which sizes cards and upload progress, gives for every size
    the text formatting.human_size gives in server-rendered pages and the terminal: unit
    names, rounding and roll-over (a size would read differently on a card and on its
    watch page otherwise)."""
    sizes = [0, 1, 1023, 1024, 1280, 1536, 10 * 1024, 102_348, 1024**2 - 1, 5 * 1024**2]
    sizes += [int(1.25 * 1024**3), 1024**4 - 1, 3 * 1024**4, 1024**5 * 2000]
    await watched.page.goto(f"{cluster.url}/")
    shown = await watched.page.evaluate("sizes => sizes.map(window.MyYoutube.text.humanSize)", sizes)
    assert shown == [human_size(size) for size in sizes]
    await watched.assert_clean()


async def test_search_term_lives_in_the_url_and_survives_back(cluster, watched, clip):
    """The home page has one <h1>; typing a search puts it in the URL (/?q=...) and the
    heading, and after opening a result and going Back the same term, heading and results
    are there again, in a freshly loaded page."""
    page, run = watched.page, tag()
    names = [await upload_over_http(cluster, clip, f"{animal}-{run}.mp4") for animal in ("owl", "eel")]
    await open_home(page, cluster.url)
    await expect(page.locator("h1")).to_have_count(1)
    await expect(page.locator("h1")).to_have_text("All videos")

    term = f"owl-{run}"
    await page.fill("#search", term)
    await page.wait_for_url(f"{cluster.url}/?q={term}")
    await wait_for_cards(page, [names[0]])
    await expect(page.locator("h1")).to_have_text(f"Results for \u201c{term}\u201d")

    await page.evaluate("window.__sameDocument = true")
    await page.click(f'#videos a.video-card[data-name="{names[0]}"]')
    await page.wait_for_url("**/watch/**")
    await page.go_back()
    await page.wait_for_url(f"{cluster.url}/?q={term}")
    assert await page.evaluate("window.__sameDocument === undefined")  # a new document, not a cached one
    await expect(page.locator("#search")).to_have_value(term)
    await expect(page.locator("h1")).to_have_text(f"Results for \u201c{term}\u201d")
    await wait_for_cards(page, [names[0]])
    assert await card_names(page) == [names[0]]

    # A shared link opens with the search done, and clearing the box clears the URL.
    await page.goto(f"{cluster.url}/?q=eel-{run}")
    await wait_for_cards(page, [names[1]])
    await page.fill("#search", "")
    await page.wait_for_url(f"{cluster.url}/")
    await expect(page.locator("h1")).to_have_text("All videos")
    await watched.assert_clean()


async def test_matched_words_are_highlighted_as_text(cluster, watched, clip):
    """Each searched word is wrapped in a <mark> in the card titles, whatever its case or
    accent in the query, and a name holding markup stays text: the marks hold only the
    matched words and no element comes from the name."""
    page, run = watched.page, tag()
    await open_home(page, cluster.url)
    name = await upload_in_page(
        page, {"name": f"<b>Café Holiday {run}.mp4", "mimeType": "video/mp4", "buffer": clip.read_bytes()}
    )
    await page.fill("#search", f"café HOLIDAY {run}")
    await wait_for_cards(page, [name])
    title = page.locator(f'#videos a.video-card[data-name="{name}"] .card-title')
    await expect(title).to_have_text(default_title(name))  # "<b>Café Holiday RUN", no extension
    await expect(title.locator("mark")).to_have_text(["Café", "Holiday", run])
    assert await title.evaluate("t => t.querySelectorAll('*').length") == 3  # the marks, nothing else

    await page.fill("#search", f"holiday {run}")
    await wait_for_cards(page, [name])
    await expect(title.locator("mark")).to_have_text(["Holiday", run])
    await watched.assert_clean()


async def test_a_refused_search_shows_the_servers_reason(cluster, watched):
    """A search link longer than the server accepts (pasted or shared; the box itself stops
    at the limit) shows the server's sentence saying what is wrong, not "HTTP 400. Please
    try again", which no retry cures."""
    page = watched.page
    await page.goto(f"{cluster.url}/?q={'x' * (MAX_QUERY_CHARS + 1)}")
    await expect(page.locator("#empty-state")).to_have_text(
        f"The search text is longer than {MAX_QUERY_CHARS} characters."
    )


async def test_grid_loads_more_on_scroll_and_keeps_its_place_on_back(cluster, watched, clip):
    """With more videos than one page holds, scrolling down loads the rest (following the
    API's `next` cursor when it pages); after opening a video far down and going Back, the
    same cards are shown at the same scroll position without starting over."""
    page, run = watched.page, tag()
    count = 55  # more than home.js asks for per page (50)
    for start in range(0, count, 5):  # a few at a time: the web takes 16 uploads at once
        await asyncio.gather(
            *(upload_over_http(cluster, clip, f"scroll-{run}-{i:02d}.mp4") for i in range(start, start + 5))
        )
    listings = []
    page.on("request", lambda r: listings.append(r.url) if "/search?" in r.url else None)
    await page.set_viewport_size(PHONE)
    await page.goto(f"{cluster.url}/?q=scroll-{run}")
    await expect(page.locator("#videos")).to_have_attribute("aria-busy", "false")
    for _ in range(40):  # scroll to the bottom until every card is there
        if len(await card_names(page)) == count:
            break
        await page.mouse.wheel(0, 4000)
        await page.wait_for_timeout(100)
    assert len(await card_names(page)) == count
    await expect(page.locator("#video-count")).to_have_text(f"{count} videos")
    paged = any("cursor=" in url for url in listings)
    first_page = await http_json(f"{cluster.url}/search?q=scroll-{run}&limit=50")
    assert paged == (first_page.get("next") is not None), listings

    target = (await card_names(page))[45]
    card = page.locator(f'#videos a.video-card[data-name="{target}"]')
    await card.scroll_into_view_if_needed()
    scrolled = await page.evaluate("window.scrollY")
    assert scrolled > 5000
    await card.click()
    await page.wait_for_url("**/watch/**")
    listings.clear()
    await page.go_back()
    await expect(page.locator("#videos a.video-card")).to_have_count(count)
    assert abs(await page.evaluate("window.scrollY") - scrolled) < 2
    assert listings == []  # restored from what was loaded, not fetched again
    await watched.assert_clean()


async def test_a_title_edited_on_the_watch_page_shows_on_the_card_after_back(cluster, watched, clip):
    """Open a video from a search, rename it with the edit form, press Back: the grid
    comes back from what it stored, with the new title on the card."""
    page, run = watched.page, tag()
    name = await upload_over_http(cluster, clip, f"renamed-{run}.mp4")
    await page.goto(f"{cluster.url}/?q={run}")
    await wait_for_cards(page, [name])
    await page.click(f'#videos a.video-card[data-name="{name}"]')
    await page.wait_for_url("**/watch/**")
    await page.click("details.edit summary")
    await page.fill("#edit-title", f"Otter {run}")
    await page.click("#edit-form button[type=submit]")
    await expect(page.locator("#edit-status")).to_have_text("Saved.")
    await page.go_back()
    card_title = page.locator(f'#videos a.video-card[data-name="{name}"] .card-title')
    await expect(card_title).to_have_text(f"Otter {run}")
    await watched.assert_clean()


async def http_json(url: str) -> dict:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        return await response.json()


async def test_who_can_watch_keeps_its_choice_after_an_upload(cluster, watched, clip):
    """An upload made for "Only me" leaves the form on "Only me": the next file chosen is
    not published to everyone because the form went back to its default. The new card
    says "Only me" to its owner."""
    page, name = watched.page, f"private-{tag()}.mp4"
    await open_home(page, cluster.url)
    await page.select_option("#visibility", "private")
    payload = {"name": name, "mimeType": "video/mp4", "buffer": clip.read_bytes()}
    assert await upload_in_page(page, payload) == name
    await expect(page.locator("#upload-status")).to_have_text(f"Uploaded {name}")
    await expect(page.locator("#visibility")).to_have_value("private")
    await expect(page.locator("#file")).to_have_value("")  # the chosen file is cleared
    assert name not in await listed_names(cluster.url)  # stored as private indeed
    # Its owner's card says so, in the form's words.
    meta = page.locator(f'#videos a.video-card[data-name="{name}"] .card-meta')
    await expect(meta).to_have_text(re.compile(r" · Only me$"))
    await watched.assert_clean()


async def test_a_name_taken_can_be_changed_in_the_page_without_choosing_the_file_again(
    cluster, watched, clip
):
    """A file whose name is taken is refused with the server's sentence, stays chosen, and
    the focus goes to the name field: the person types another name, presses Upload again
    and the same file is stored under that name; the used name is cleared after."""
    page, taken = watched.page, f"taken-{tag()}.mp4"
    assert await upload_over_http(cluster, clip, taken) == taken
    await open_home(page, cluster.url)
    await page.set_input_files("#file", {"name": taken, "mimeType": "video/mp4", "buffer": clip.read_bytes()})
    async with page.expect_response(lambda r: r.request.method == "POST" and "/files/" in r.url) as refused:
        await page.click("#upload-button")
    assert (await refused.value).status == 409
    await expect(page.locator("#upload-status .status-line")).to_have_text(
        [
            re.compile(f"^{taken}: A video named .{taken}. already exists"),
            f"\u201c{taken}\u201d is still chosen: type another name above and press Upload.",
        ]
    )
    await expect(page.locator("#video-name")).to_be_focused()
    # The browser reports the refused request in the console; nothing else may appear.
    watched.errors[:] = [e for e in watched.errors if "status of 409" not in e]

    chosen = f"chosen {tag()}"
    await page.fill("#video-name", chosen)
    async with page.expect_response(
        lambda r: r.request.method == "PATCH" and "video-name" in r.headers
    ) as answer:
        await page.click("#upload-button")
    assert unquote((await answer.value).headers["video-name"]) == chosen
    await expect(page.locator("#upload-status")).to_have_text(f"Uploaded {chosen}")
    await expect(page.locator("#video-name")).to_have_value("")
    await wait_for_cards(page, [chosen], among=chosen)
    await watched.assert_clean()


async def test_an_empty_file_is_refused_without_offering_another_name(cluster, watched):
    """An empty file is refused with the server's sentence alone; the page used to add
    "type another name above and press Upload", which cannot cure an empty file."""
    page, empty = watched.page, f"empty-{tag()}.mp4"
    await open_home(page, cluster.url)
    await page.set_input_files("#file", {"name": empty, "mimeType": "video/mp4", "buffer": b""})
    async with page.expect_response(lambda r: r.request.method == "POST" and "/files/" in r.url) as refused:
        await page.click("#upload-button")
    assert (await refused.value).status == 400
    await expect(page.locator("#upload-status .status-line")).to_have_text(
        [f"{empty}: The file is empty; choose a video file."]
    )
    await expect(page.locator("#video-name")).not_to_be_focused()
    watched.errors[:] = [e for e in watched.errors if "status of 400" not in e]
    await watched.assert_clean()


# A DataTransfer holding one file, as a drag from the desktop carries it.
DRAGGED_FILE = """([base64, name]) => {
  const data = new DataTransfer();
  const bytes = Uint8Array.from(atob(base64), c => c.charCodeAt(0));
  data.items.add(new File([bytes], name, {type: "video/mp4"}));
  return data;
}"""


async def test_files_dropped_on_the_page_are_uploaded(cluster, watched, clip):
    """Video files dragged over the home page outline the upload panel, and dropped
    anywhere on it (here on the grid) they are uploaded as if chosen, the page staying
    where it is. A drop while an upload runs is refused with a sentence, not opened by
    the browser in place of the page."""
    page, name = watched.page, f"dropped-{tag()}.mp4"
    await open_home(page, cluster.url)
    dragged = await page.evaluate_handle(DRAGGED_FILE, [base64.b64encode(clip.read_bytes()).decode(), name])
    await page.dispatch_event("#videos", "dragover", {"dataTransfer": dragged})
    await expect(page.locator(".upload-panel")).to_have_class(re.compile(r"\bdrop-target\b"))
    async with page.expect_response(
        lambda r: r.request.method == "PATCH" and "video-name" in r.headers
    ) as answer:
        await page.dispatch_event("#videos", "drop", {"dataTransfer": dragged})
    assert unquote((await answer.value).headers["video-name"]) == name
    await expect(page.locator("#upload-status")).to_have_text(f"Uploaded {name}")
    await expect(page.locator(".upload-panel")).not_to_have_class(re.compile(r"\bdrop-target\b"))
    await wait_for_cards(page, [name], among=name)
    assert page.url == f"{cluster.url}/"

    await throttle_uploads(page, 256 * 1024)
    padded = base64.b64encode(clip.read_bytes() + b"\0" * (8 * 1024 * 1024)).decode()
    slow = await page.evaluate_handle(DRAGGED_FILE, [padded, f"slow-{tag()}.mp4"])
    await page.dispatch_event("#videos", "drop", {"dataTransfer": slow})
    await expect(page.locator("#upload-cancel")).to_be_visible()
    await page.dispatch_event("#videos", "drop", {"dataTransfer": dragged})
    await expect(page.locator("#upload-status")).to_contain_text("An upload is still running")
    await page.click("#upload-cancel")
    await expect(page.locator("#upload-cancel")).to_be_hidden()
    # The cancelled upload is deleted, not listed as unfinished: the list used to be
    # asked for while the DELETE was on its way, so it listed the upload, or its HEAD
    # was answered 404 (a console error, below).
    await page.wait_for_function("() => Object.keys(localStorage).length === 0")
    await expect(page.locator("#unfinished-uploads")).to_be_hidden()
    await watched.assert_clean()


async def test_upload_can_be_cancelled_and_leaving_asks_first(cluster, watched, clip):
    """While an upload runs (slowed by network throttling), closing the page asks first
    (beforeunload), and Cancel aborts it and the files queued after it, each named in the
    status: the form is usable again and nothing was stored.
    All by keyboard: Enter on Upload puts the focus on Cancel (the Upload button it was on
    is disabled), and Enter on Cancel puts it back on the file picker, never on the page."""
    page, name = watched.page, f"cancel-{tag()}.mp4"
    await open_home(page, cluster.url)
    await expect(page.locator("#upload-cancel")).to_be_hidden()
    throttle = await page.context.new_cdp_session(page)
    await throttle.send("Network.enable")
    await throttle.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 256 * 1024},
    )
    payload = clip.read_bytes() + b"\0" * (8 * 1024 * 1024)  # ~30 s at the throttled rate
    queued = f"queued-{tag()}.mp4"
    await page.set_input_files(
        "#file",
        [
            {"name": name, "mimeType": "video/mp4", "buffer": payload},
            {"name": queued, "mimeType": "video/mp4", "buffer": clip.read_bytes()},
        ],
    )
    await page.focus("#upload-button")
    await page.keyboard.press("Enter")
    await page.wait_for_function("() => document.getElementById('upload-progress').value > 0")
    await expect(page.locator("#upload-cancel")).to_be_visible()
    await expect(page.locator("#upload-cancel")).to_be_focused()

    await page.close(run_before_unload=True)  # the page asks; the dialog handler says stay
    await page.wait_for_function("() => true")
    assert [d.split(":")[0] for d in watched.dialogs] == ["beforeunload"], watched.dialogs
    watched.dialogs.clear()

    await page.keyboard.press("Enter")
    await expect(page.locator("#upload-status .status-line")).to_have_text(
        [f"{name}: Upload cancelled.", f"{queued}: Not uploaded (cancelled)."]
    )
    await expect(page.locator("#upload-button")).to_be_enabled()
    await expect(page.locator("#upload-cancel")).to_be_hidden()
    await expect(page.locator("#file")).to_be_focused()
    listed = await listed_names(cluster.url)
    assert name not in listed and queued not in listed
    await watched.assert_clean()


async def test_size_limit_is_shown_and_enforced_before_sending(fresh_cluster, watched, clip):
    """The upload form states the web's --max-upload-bytes before a file is chosen, and a
    larger file is refused in the page with the same sentence the server would give,
    without being sent. (The empty library invites only who may upload to do so.)"""
    cluster = fresh_cluster(web_args=("--max-upload-bytes", "100000"))
    page = watched.page
    await open_home(page, cluster.url)
    await expect(page.locator("#empty-state")).to_have_text("No videos yet.")
    await sign_in(page.context, cluster.url, cluster.admin_token)
    await open_home(page, cluster.url)
    await expect(page.locator("#empty-state")).to_have_text("No videos yet \u2014 upload one!")
    await expect(page.locator("#upload-limit")).to_have_text(
        "Choose video files or drop them on the page, up to 97.7 KiB each."
    )
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    big = {"name": "big.mp4", "mimeType": "video/mp4", "buffer": clip.read_bytes() + b"\0" * 100_000}
    await page.set_input_files("#file", big)
    await page.click("#upload-button")
    await expect(page.locator("#upload-status")).to_have_text(
        "big.mp4: The file is larger than the 97.7 KiB upload limit."
    )
    assert posts == []
    await watched.assert_clean()


async def test_upload_form_controls_are_big_enough_on_a_phone(cluster, watched):
    """At phone width the controls one types or picks in ("Who can watch", the search box)
    have 16 px text (iOS zooms the page into smaller ones) and are at least 24 px tall
    (WCAG 2.2's smallest target), and the header's "Sign out" is not broken over two lines."""
    page = watched.page
    await page.set_viewport_size(PHONE)
    await open_home(page, cluster.url)
    for control in ("#visibility", "#search"):
        font_px, height_px = await page.eval_on_selector(
            control, "e => [parseFloat(getComputedStyle(e).fontSize), e.getBoundingClientRect().height]"
        )
        assert font_px >= 16 and height_px >= 24, (control, font_px, height_px)
    # "Sign out" stays on one line beside the account's name.
    lines = await page.eval_on_selector(
        "#sign-out",
        "e => { const text = document.createRange(); text.selectNodeContents(e); return text.getClientRects().length; }",
    )
    assert lines == 1, lines
    await watched.assert_clean()


# Contrast ratio (WCAG 2) of an element's text against the first opaque background behind it.
CONTRAST = """(element) => {
  const rgb = (text) => text.match(/[\\d.]+/g).map(Number);
  const channel = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  let behind = element;
  while (behind && rgb(getComputedStyle(behind).backgroundColor)[3] === 0) behind = behind.parentElement;
  const back = behind ? rgb(getComputedStyle(behind).backgroundColor) : [255, 255, 255];
  const [a, b] = [luminance(rgb(getComputedStyle(element).color)), luminance(back)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_upload_button_and_footer_links_reach_aa_contrast(cluster, watched, scheme):
    """The Upload button's label and the footer's link reach 4.5:1 against what is behind
    them (WCAG AA for normal text), in the light and the dark colour scheme."""
    page = watched.page
    await page.emulate_media(color_scheme=scheme)
    await open_home(page, cluster.url)
    for selector in ("#upload-button", ".site-footer a"):
        ratio = await page.locator(selector).first.evaluate(CONTRAST)
        assert ratio >= 4.5, (scheme, selector, ratio)
    await watched.assert_clean()


async def throttle_uploads(page: Page, bytes_per_s: int) -> None:
    """Slow the page's uploads (Chromium's network emulation), so a test can act midway."""
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("Network.enable")
    await cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": bytes_per_s},
    )


async def stored_bytes(cluster, name: str) -> bytes:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{cluster.url}/original/{quote(name, safe='')}", headers=cluster.admin_headers()
        ) as answer,
    ):
        assert answer.status == 200
        return await answer.read()


async def test_upload_resumes_by_itself_after_the_network_drops(cluster, watched, clip):
    """The browser goes offline mid-upload and comes back: the page resumes the upload by
    itself (tus, from the offset the server confirmed) and the stored video is the file,
    byte for byte, with no error shown and nothing the page's CSP forbids."""
    page, name = watched.page, f"offline-{tag()}.mp4"
    payload = clip.read_bytes() + (8 + 7 * 2**20).to_bytes(4, "big") + b"free" + os.urandom(7 * 2**20)
    await open_home(page, cluster.url)
    await throttle_uploads(page, 2 * 2**20)
    await page.evaluate(PROGRESS_RECORDER)
    await page.set_input_files("#file", {"name": name, "mimeType": "video/mp4", "buffer": payload})
    await page.click("#upload-button")
    await page.wait_for_function("() => document.getElementById('upload-progress').value >= 20")
    await page.context.set_offline(True)
    await asyncio.sleep(3)
    await page.context.set_offline(False)
    await expect(page.locator("#upload-status")).to_have_text(f"Uploaded {name}", timeout=60_000)
    assert await stored_bytes(cluster, name) == payload
    assert await watched.csp_violations() == []  # tus-js-client needs nothing the CSP forbids


async def test_an_unfinished_upload_the_server_no_longer_holds_is_forgotten(cluster, watched):
    """An upload this browser remembers but the server has ended (expired, cancelled
    elsewhere) is not offered for resuming: the page asks the server, which answers 404,
    and forgets it."""
    page = watched.page
    await open_home(page, cluster.url)
    gone = {
        "size": 1000,
        "metadata": {"filename": "gone.mp4"},
        "uploadUrl": f"{cluster.url}/files/{'0' * 32}",
    }
    await page.evaluate("entry => localStorage.setItem('tus::tus-br-gone::1', JSON.stringify(entry))", gone)
    async with page.expect_response(lambda r: r.request.method == "HEAD" and "/files/" in r.url) as asked:
        await page.reload()
    assert (await asked.value).status == 404
    await page.wait_for_function("() => localStorage.getItem('tus::tus-br-gone::1') === null")
    await expect(page.locator("#unfinished-uploads")).to_be_hidden()
    watched.errors[:] = [e for e in watched.errors if "status of 404" not in e]
    await watched.assert_clean()


async def test_upload_left_midway_resumes_after_a_reload(cluster, watched, clip, tmp_path):
    """A page closed mid-upload: the new page says which upload is unfinished, how far it
    got, and that choosing the file again resumes it; given the same file it resumes the
    unfinished upload (found by the file's fingerprint in localStorage) instead of
    starting over: its first PATCH starts past 0, and the stored video is the file. The
    note goes once the upload is finished."""
    first, name = watched.page, f"reload-{tag()}.mp4"
    payload = clip.read_bytes() + (8 + 12 * 2**20).to_bytes(4, "big") + b"free" + os.urandom(12 * 2**20)
    # A file on disk: its modification time is part of the fingerprint, as for a user's file.
    file = tmp_path / name
    file.write_bytes(payload)
    await open_home(first, cluster.url)
    await throttle_uploads(first, 4 * 2**20)
    await first.set_input_files("#file", file)
    await first.click("#upload-button")
    await first.wait_for_function("() => document.getElementById('upload-progress').value >= 50")
    await first.close()
    page = await first.context.new_page()
    offsets: list[int] = []
    page.on(
        "request",
        lambda r: offsets.append(int(r.headers["upload-offset"])) if r.method == "PATCH" else None,
    )
    await open_home(page, cluster.url)
    unfinished = page.locator("#unfinished-uploads")
    await expect(unfinished).to_be_visible()
    await expect(unfinished.locator("li")).to_have_text(
        re.compile(f"^{re.escape(name)}: [0-9]+% \\(.* of .*\\), kept until ")
    )
    await expect(unfinished).to_contain_text("Choose the same file again and press Upload to resume")
    await page.set_input_files("#file", file)
    await page.click("#upload-button")
    await expect(page.locator("#upload-status")).to_have_text(f"Uploaded {name}", timeout=60_000)
    assert offsets and offsets[0] >= 5 * 2**20, offsets
    assert await stored_bytes(cluster, name) == payload
    await expect(unfinished).to_be_hidden()
    await page.reload()
    await expect(page.locator("#videos")).to_have_attribute("aria-busy", "false")
    await expect(unfinished).to_be_hidden()
