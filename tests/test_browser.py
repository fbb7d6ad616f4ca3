"""End-to-end tests in a real headless Chromium (Debian's, driven by Playwright) against a
real cluster: upload with progress, live grid and search, watching with seeks served by
range requests, hostile names shown as text, posters in the grid and player, Delete behind
a confirm(), the cluster status page at desktop and phone widths, and no console errors or
CSP violations.

Chromium is Debian's `/usr/bin/chromium`; Playwright's own browser downloads are never
used. If it is missing, the tests fail (they never skip) with a message saying so.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

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
TIMEOUT_MS = 15_000  # generous for a loaded machine; a passing run takes ~7 s in all
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


@pytest.fixture
async def watched(browser: Browser):
    """A page in a fresh browser context, recording what a test must never see."""
    context = await browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
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
    """Upload `file` (path or FilePayload) with the form; the name the server answered."""
    await page.evaluate(PROGRESS_RECORDER)
    await page.set_input_files("#file", file)
    async with page.expect_response(lambda r: r.url.endswith("/upload")) as answer:
        await page.click("#upload-button")
    response = await answer.value
    assert response.status == 201, await response.text()
    return (await response.json())["name"]


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


async def upload_over_http(url: str, path: Path, name: str) -> str:
    form = aiohttp.FormData()
    # The test clips are a few seconds at 320x240: reading one whole is instant.
    form.add_field("file", path.read_bytes(), filename=name, content_type="video/mp4")  # noqa: ASYNC240
    async with aiohttp.ClientSession() as session, session.post(url + "/upload", data=form) as response:
        assert response.status == 201, await response.text()
        return (await response.json())["name"]


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
    the end playback advances, served by 206 range responses to Range requests."""
    page, name = watched.page, f"watch-{tag()}.mp4"
    assert await upload_over_http(cluster.url, clip, name) == name
    await open_home(page, cluster.url)
    await page.fill("#search", name)
    await wait_for_cards(page, [name])
    await page.click(f'#videos a.video-card[data-name="{name}"]')
    await page.wait_for_url(f"**/watch/{name}")
    await expect(page.locator("#watch h1")).to_have_text(name)

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
    size = clip.stat().st_size
    assert all(
        content_range.startswith("bytes ") and content_range.endswith(f"/{size}")
        for _, content_range in ranged
    ), ranged
    await watched.assert_clean()


async def test_moov_at_end_mp4_plays_to_the_end(cluster, watched, tmp_path):
    """An MP4 whose index (moov) is written after the media data still gets its duration in
    the player and plays through to the end after a seek."""
    page, name = watched.page, f"moov-last-{tag()}.mp4"
    path = make_mp4(tmp_path / name, seconds=4.0, faststart=False)
    assert path.read_bytes().find(b"moov") > path.read_bytes().find(b"mdat")
    assert await upload_over_http(cluster.url, path, name) == name
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
    card = page.locator("#videos a.video-card").filter(has_text=name)
    await expect(card).to_have_count(1)
    assert name in await card.inner_text()
    assert await card.get_attribute("data-name") == name
    assert await page.locator("#videos img[src='x'], #videos script").count() == 0

    await card.click()
    await page.wait_for_url("**/watch/**")
    await expect(page.locator("#watch h1")).to_have_text(name)
    assert await page.locator("#watch").get_attribute("data-name") == name
    assert await page.locator("img[src='x'], body script:not([src])").count() == 0
    await page.wait_for_function("() => document.getElementById('player').readyState >= 1")
    await watched.assert_clean()


async def test_poster_shows_in_grid_and_player(cluster, watched, clip):
    """An uploaded video's JPEG poster loads in its card, filling a 16:9 box, and is the
    player's poster on its watch page."""
    page, name = watched.page, f"poster-{tag()}.mp4"
    assert await upload_over_http(cluster.url, clip, name) == name
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
    assert await upload_over_http(cluster.url, clip, name) == name
    deletes = []
    page.on("request", lambda r: deletes.append(r.url) if r.method == "DELETE" else None)
    await page.goto(f"{cluster.url}/watch/{quote(name)}")
    await expect(page.locator("#watch h1")).to_have_text(name)

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
