"""Issue 10's playback matrix in a real headless Chromium against a real cluster: every
source a user may upload (HEVC in MKV and MP4, MPEG-4 Part 2 AVI, H.264 MPEG-TS, MPEG-2 in
MPEG-PS, VP9 WebM, MOV, portrait, 10-bit) is uploaded, transcoded by the datanodes until
`ready`, and then plays (picture decoded: videoWidth > 0 and frames presented; the clock
advances) and seeks on the watch page, both through HLS (hls.js) and through the
progressive /stream a browser without Media Source Extensions gets. A two-rung video's
quality menu switches rungs; a video held in processing shows "Processing N%" on its card
and page, plays its original meanwhile, and moves to HLS (its card losing the badge)
without a reload once a datanode that transcodes joins; a video the transcoder cannot read
shows "Failed" on its card and the reason on its page.

Sources are 3 s at 160x120 (one rendition each, below 240p) so the whole matrix is
transcoded once, in parallel, by one module-scoped fixture. Chromium is launched as in
test_browser.py (Debian's, never a downloaded one), with its fixtures.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from playwright.async_api import Page, expect

import test_browser
from test_browser import NO_MSE, READY_TIMEOUT_S, tag, wait_ready
from videos import ISSUE_SOURCES, X264, X265, make_clip

browser = test_browser.browser
watched = test_browser.watched

SOURCE_S = 3.0

SOURCE_IDS = [source[0] for source in ISSUE_SOURCES]
# Two rungs (240p and 360p) for the quality menu: a 640x360 source.
LADDER_SOURCE = (
    "ladder.mp4",
    "mp4",
    "libx264",
    {"width": 640, "height": 360, "audio": "aac", "options": X264},
)
# The same two rungs in portrait (360x640): rungs are named by the short side.
PORTRAIT_LADDER_SOURCE = (
    "portrait-ladder.mp4",
    "mp4",
    "libx264",
    {"width": 360, "height": 640, "audio": "aac", "options": X264},
)
LADDER_S = 6.0
PROCESSING = re.compile(r"^\s*Processing( 0%)?\s*$")


async def upload(http: aiohttp.ClientSession, url: str, path: Path, name: str) -> None:
    form = aiohttp.FormData()
    # Each source is a few KB: reading one whole is instant.
    form.add_field("file", path.read_bytes(), filename=name)  # noqa: ASYNC240
    async with http.post(f"{url}/upload", data=form) as answer:
        assert answer.status == 201, await answer.text()


async def record_of(http: aiohttp.ClientSession, url: str, name: str) -> dict:
    async with http.get(f"{url}/videos/{quote(name, safe='')}") as answer:
        assert answer.status == 200, await answer.text()
        return await answer.json()


@pytest.fixture(scope="module")
async def ready_videos(cluster, tmp_path_factory) -> dict[str, dict]:
    """Every source of the matrix and the two-rung one, uploaded at once and transcoded:
    source file name -> the stored video's ready record."""
    folder = tmp_path_factory.mktemp("matrix")
    suffix = tag()
    names = {}
    for file_name, container, codec, options in [*ISSUE_SOURCES, LADDER_SOURCE, PORTRAIT_LADDER_SOURCE]:
        seconds = LADDER_S if file_name in (LADDER_SOURCE[0], PORTRAIT_LADDER_SOURCE[0]) else SOURCE_S
        path = make_clip(folder / file_name, container, codec, seconds=seconds, **options)
        names[file_name] = (path, f"{suffix}-{file_name}")
    async with aiohttp.ClientSession(headers=cluster.admin_headers()) as http:
        await asyncio.gather(*(upload(http, cluster.url, path, name) for path, name in names.values()))
    records = await asyncio.gather(*(wait_ready(cluster, name) for _, name in names.values()))
    return dict(zip(names, records, strict=True))


# Plays muted from the start and reports once the picture is decoded and time runs:
# [videoWidth, videoHeight, frames presented].
PLAYS = """async () => {
  const v = document.getElementById("player");
  v.muted = true;
  await v.play();
  await new Promise((resolve) => {
    const check = () => (v.currentTime > 0.4 && v.videoWidth > 0 && v.getVideoPlaybackQuality().totalVideoFrames > 2)
      ? resolve() : setTimeout(check, 50);
    check();
  });
  return [v.videoWidth, v.videoHeight, v.getVideoPlaybackQuality().totalVideoFrames];
}"""

# Seeks to `at`, waits for `seeked`, and reports once playback has moved on from there.
SEEKS = """async (at) => {
  const v = document.getElementById("player");
  const seeked = new Promise((resolve) => v.addEventListener("seeked", resolve, {once: true}));
  v.currentTime = at;
  await seeked;
  if (v.paused) await v.play();
  const frames = v.getVideoPlaybackQuality().totalVideoFrames;
  await new Promise((resolve) => {
    const check = () => (v.currentTime > at + 0.3 && v.getVideoPlaybackQuality().totalVideoFrames > frames)
      ? resolve() : setTimeout(check, 50);
    check();
  });
  return v.currentTime;
}"""


async def plays_and_seeks(page: Page, record: dict) -> None:
    width, height, frames = await page.evaluate(PLAYS)
    assert (width, height) == (record["width"], record["height"]), record
    assert frames > 2
    assert await page.evaluate(SEEKS, 1.5) > 1.8
    assert await page.evaluate("document.getElementById('player').error") is None


@pytest.mark.parametrize("source", SOURCE_IDS)
async def test_every_source_plays_and_seeks_through_hls(cluster, watched, ready_videos, source):
    """Once ready, the source plays and seeks on its watch page through hls.js (MSE)."""
    page, record = watched.page, ready_videos[source]
    assert record["renditions"], record
    await page.goto(f"{cluster.url}/watch/{quote(record['name'], safe='')}")
    await expect(page.locator("#watch")).to_have_attribute("data-playing", "hls")
    await plays_and_seeks(page, record)
    assert await page.evaluate("document.getElementById('player').currentSrc.startsWith('blob:')")
    await watched.assert_clean()


@pytest.mark.parametrize("source", SOURCE_IDS)
async def test_every_source_plays_and_seeks_progressively(cluster, watched, ready_videos, source):
    """Without Media Source Extensions the same video plays and seeks from /stream (the
    best progressive rendition), with range requests."""
    page, record = watched.page, ready_videos[source]
    await page.add_init_script(NO_MSE)
    await page.goto(f"{cluster.url}/watch/{quote(record['name'], safe='')}")
    await expect(page.locator("#watch")).to_have_attribute("data-playing", "progressive")
    await plays_and_seeks(page, record)
    assert [r.status for r in watched.streams if r.status not in (200, 206)] == []
    assert any(r.status == 206 for r in watched.streams)
    await watched.assert_clean()


@pytest.mark.parametrize(
    ("source", "short_side"),
    [(LADDER_SOURCE[0], "videoHeight"), (PORTRAIT_LADDER_SOURCE[0], "videoWidth")],
    ids=["landscape", "portrait"],
)
async def test_quality_menu_switches_rungs(cluster, watched, ready_videos, source, short_side):
    """A two-rung video's menu offers Auto, 360p and 240p, each rung named by its
    picture's short side as the ladder names it (a portrait 360x640 rendition is 360p, not
    640p); choosing a rung switches the picture to it, and Auto names the rung it is on."""
    page, record = watched.page, ready_videos[source]
    assert [min(r["width"], r["height"]) for r in record["renditions"]] == [240, 360], record
    await page.goto(f"{cluster.url}/watch/{quote(record['name'], safe='')}")
    await expect(page.locator("#quality-row")).to_be_visible()
    labels = await page.locator("#quality option").all_text_contents()
    assert labels[1:] == ["360p", "240p"] and labels[0].startswith("Auto"), labels
    await page.evaluate("document.getElementById('player').loop = true")
    await page.evaluate(PLAYS)
    for label, side in (("240p", 240), ("360p", 360), ("240p", 240)):
        await page.select_option("#quality", label=label)
        await page.wait_for_function(f"(s) => document.getElementById('player').{short_side} === s", arg=side)
    await page.select_option("#quality", value="-1")
    await expect(page.locator("#quality option").first).to_have_text(re.compile(r"^Auto \((240|360)p\)$"))
    await watched.assert_clean()


async def test_processing_video_shows_progress_then_switches_to_hls_without_reload(
    fresh_cluster, watched, tmp_path
):
    """With no datanode transcoding, an upload stays processing: its card and its page say
    "Processing" (0% or no figure while queued) in words, the page plays the web-playable
    original meanwhile, and an HEVC original (not playable) shows no player error; a third
    one deleted while its page waits shows the page's notice that it no longer exists. Once a transcoding datanode joins, both watch pages switch to HLS and the grid
    drops the badges, by themselves: same documents, no reload."""
    cluster = fresh_cluster(datanodes=2, datanode_args=("--transcode-slots", "0"))
    playable = f"{tag()}-h264.mp4"
    unplayable = f"{tag()}-hevc.mkv"
    sources = {
        playable: make_clip(tmp_path / "h264.mp4", "mp4", "libx264", seconds=SOURCE_S, options=X264),
        unplayable: make_clip(tmp_path / "hevc.mkv", "matroska", "libx265", seconds=SOURCE_S, options=X265),
    }
    async with aiohttp.ClientSession(headers=cluster.admin_headers()) as http:
        for name, path in sources.items():
            await upload(http, cluster.url, path, name)
            record = await record_of(http, cluster.url, name)
            assert (record["state"], record["renditions"]) == ("processing", []), record

    grid, playing, waiting = watched.page, await new_page(watched), await new_page(watched)
    await test_browser.open_home(grid, cluster.url)
    badges = {
        name: grid.locator(f'#videos a.video-card[data-name="{name}"] .state-badge') for name in sources
    }
    for badge in badges.values():
        await expect(badge).to_have_text(PROCESSING)

    await playing.goto(f"{cluster.url}/watch/{quote(playable, safe='')}")
    await expect(playing.locator("#video-state")).to_have_text(PROCESSING)
    await expect(playing.locator("#watch")).to_have_attribute("data-playing", "progressive")
    await playing.evaluate(PLAYS)

    await waiting.goto(f"{cluster.url}/watch/{quote(unplayable, safe='')}")
    await expect(waiting.locator("#video-state")).to_have_text(PROCESSING)
    await expect(waiting.locator("#watch")).to_have_attribute("data-playing", "none")
    for viewer in (grid, playing, waiting):
        await viewer.evaluate("window.__sameDocument = true")

    deleted, leaving = f"{tag()}-deleted.mkv", await new_page(watched)
    async with aiohttp.ClientSession(headers=cluster.admin_headers()) as http:
        await upload(http, cluster.url, sources[unplayable], deleted)
        await leaving.goto(f"{cluster.url}/watch/{quote(deleted, safe='')}")
        await expect(leaving.locator("#video-state")).to_have_text(PROCESSING)
        async with http.delete(f"{cluster.url}/videos/{quote(deleted, safe='')}") as answer:
            assert answer.status == 200
    await expect(leaving.locator("#gone-notice")).to_be_visible()
    await expect(leaving.locator("#watch")).to_have_attribute("data-gone", "true")
    await leaving.close()
    # The browser reports the poll's refused request in the console; nothing else may appear.
    watched.errors[:] = [e for e in watched.errors if "status of 404" not in e]

    cluster.start_datanode(extra=("--transcode-slots", "1"))
    for viewer in (playing, waiting):
        await expect(viewer.locator("#watch")).to_have_attribute(
            "data-playing", "hls", timeout=READY_TIMEOUT_S * 1000
        )
        await expect(viewer.locator("#watch")).to_have_attribute("data-state", "ready")
        await expect(viewer.locator("#video-state")).to_be_hidden()
        await viewer.evaluate(PLAYS)
    await expect(waiting.locator("#player-status")).to_be_hidden()
    for badge in badges.values():
        await expect(badge).to_have_count(0)
    for viewer in (grid, playing, waiting):
        assert await viewer.evaluate("window.__sameDocument") is True
    await watched.assert_clean()


async def new_page(watched) -> Page:
    """Another page in the watched page's context, reporting errors to the same list."""
    page = await watched.page.context.new_page()
    page.on("pageerror", lambda exc: watched.errors.append(f"uncaught: {exc}"))
    page.on("console", lambda m: watched.errors.append(m.text) if m.type == "error" else None)
    return page


async def test_failed_video_says_so_on_its_card_and_page(cluster, watched):
    """A video the transcoder cannot read (bytes that are no video, committed straight to
    the master with a picture size so that jobs are made) ends failed: its card carries a
    "Failed" badge and its page gives the transcoder's reason in words."""
    page, name = watched.page, f"{tag()}-broken.mp4"
    client = cluster.client()
    try:
        started = await client.start_upload(name, "video/mp4")
        await started.write(b"this is not a video " * 500)
        await started.finish({"width": 320, "height": 240, "duration_s": 2.0})
    finally:
        client.close()
    async with aiohttp.ClientSession(headers=cluster.admin_headers()) as http:
        deadline = asyncio.get_running_loop().time() + READY_TIMEOUT_S
        while (record := await record_of(http, cluster.url, name))["state"] != "failed":
            assert asyncio.get_running_loop().time() < deadline, record
            await asyncio.sleep(0.25)

    await test_browser.open_home(page, cluster.url)
    await page.fill("#search", name)
    await expect(page.locator(f'#videos a.video-card[data-name="{name}"] .state-badge')).to_have_text(
        "Failed"
    )
    await page.goto(f"{cluster.url}/watch/{quote(name, safe='')}")
    state = page.locator("#video-state")
    await expect(state).to_have_class(re.compile(r"\bstate-failed\b"))
    await expect(state).to_contain_text("This video could not be prepared for playback:")
    await expect(state).to_contain_text(record["failure"])
    await expect(page.locator("#video-progress")).to_be_hidden()
