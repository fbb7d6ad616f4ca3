"""The watch page's player in a real headless Chromium against a real cluster: page-level
keys, the box taking the picture's shape (portrait stays portrait, on a phone too), and the
progressive fallback. Chromium is launched as in test_browser.py (Debian's, never a
downloaded one), with its fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page, expect

import test_browser
from myyoutube.web import playback
from test_browser import NO_MSE, PHONE, delete_over_http, tag, upload_over_http, wait_ready
from videos import make_mp4

# test_browser.py's fixtures: one Chromium per module, a page that records what must not happen.
browser = test_browser.browser
watched = test_browser.watched

# Long enough for 10 s jumps both ways from the middle; tiny and cheap to encode.
KEYS_CLIP_S = 24.0
# How far a jump may land from where it aimed (the element reports decoded positions).
SEEK_SLACK_S = 0.3


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    return make_mp4(
        tmp_path_factory.mktemp("player") / "long.mp4", seconds=KEYS_CLIP_S, fps=8, width=160, height=120
    )


async def open_watch(page: Page, url: str, name: str) -> None:
    """Open a video's page and wait until its player has the metadata."""
    await page.goto(f"{url}/watch/{name}")
    await page.wait_for_function("() => document.getElementById('player').readyState >= 1")


async def player(page: Page, expression: str):
    return await page.evaluate(
        f"(() => {{ const v = document.getElementById('player'); return {expression}; }})()"
    )


async def wait_time(page: Page, seconds: float) -> None:
    """Wait until the player has settled (seek done) within SEEK_SLACK_S of `seconds`."""
    await page.wait_for_function(
        """([want, slack]) => {
          const v = document.getElementById('player');
          return !v.seeking && Math.abs(v.currentTime - want) < slack;
        }""",
        arg=[seconds, SEEK_SLACK_S],
    )


async def test_keys_play_pause_seek_mute_and_fullscreen(cluster, watched, long_clip):
    """k and space play and pause, l/j jump 10 s, Right/Left 5 s, m mutes, f enters and leaves
    fullscreen; a key typed into a form field stays in the field."""
    page, name = watched.page, f"keys-{tag()}.mp4"
    await upload_over_http(cluster, long_clip, name)
    await wait_ready(cluster, name)  # no switch from the original to HLS mid-test
    await open_watch(page, cluster.url, name)
    await expect(page.locator("#watch")).to_have_attribute("data-playing", "hls")

    await page.keyboard.press("m")
    assert await player(page, "v.muted") is True
    for key, paused in (("k", False), ("k", True), (" ", False), (" ", True)):
        await page.keyboard.press(key)
        await page.wait_for_function(
            "(paused) => document.getElementById('player').paused === paused", arg=paused
        )

    await page.evaluate("document.getElementById('player').currentTime = 12")
    await wait_time(page, 12)
    # (Not back to 0: the first frame is at 0.25 s, and hls.js moves a position before it
    # forward a moment later, which would race the next key.)
    for key, expected in (("l", 22), ("j", 12), ("ArrowRight", 17), ("ArrowLeft", 12), ("j", 2)):
        await page.keyboard.press(key)
        await wait_time(page, expected)
    await page.keyboard.press("m")
    assert await player(page, "v.muted") is False
    # With the <video> itself focused, the keys do the same, once (its own controls would
    # step the arrows by 1% of the duration).
    await page.focus("#player")
    for key, expected in (("l", 12), ("ArrowRight", 17), ("ArrowLeft", 12)):
        await page.keyboard.press(key)
        await wait_time(page, expected)
    await page.wait_for_timeout(300)
    await wait_time(page, 12)

    await page.keyboard.press("f")
    await page.wait_for_function("() => document.fullscreenElement === document.getElementById('player')")
    await page.keyboard.press("f")
    await page.wait_for_function("() => document.fullscreenElement === null")

    await page.click(".edit summary")
    await page.fill("#edit-title", "")
    await page.type("#edit-title", "mk jl f")
    await expect(page.locator("#edit-title")).to_have_value("mk jl f")
    assert await player(page, "[v.paused, v.muted, Math.round(v.currentTime)]") == [True, False, 12]
    await watched.assert_clean()


# Longer than hls.js buffers ahead (30 s), so a seek near the end asks for new segments.
GONE_CLIP_S = 90.0

# What the page may take to say a deleted video is gone once a segment answers 404. hls.js
# alone retried the segment for about a minute first.
GONE_NOTICE_MS = 15_000


async def test_a_video_deleted_while_it_plays_says_so_at_the_next_segment(cluster, watched, tmp_path):
    """The video is deleted while its page plays it by HLS; the viewer then seeks past
    what is buffered. The first segment that answers 404 makes the page ask for the
    record, find it gone, stop the player and show its notice, within seconds; the
    spinner used to turn for about a minute while hls.js retried the segment."""
    page, name = watched.page, f"gone-hls-{tag()}.mp4"
    clip = make_mp4(tmp_path / "gone.mp4", seconds=GONE_CLIP_S, fps=4, width=160, height=120)
    await upload_over_http(cluster, clip, name)
    await wait_ready(cluster, name)
    await open_watch(page, cluster.url, name)
    await expect(page.locator("#watch")).to_have_attribute("data-playing", "hls")
    await delete_over_http(cluster, name)
    await page.evaluate(f"document.getElementById('player').currentTime = {GONE_CLIP_S - 5}")
    await expect(page.locator("#gone-notice")).to_be_visible(timeout=GONE_NOTICE_MS)
    await expect(page.locator("#watch")).to_have_attribute("data-playing", "none")
    # The browser reports each refused request in the console; nothing else may appear.
    watched.errors[:] = [e for e in watched.errors if "status of 404" not in e]
    await watched.assert_clean()


@pytest.mark.parametrize(
    ("width", "height", "viewport"),
    [(320, 240, None), (144, 256, None), (144, 256, PHONE)],
    ids=["landscape-4x3", "portrait", "portrait-phone"],
)
async def test_player_box_follows_the_pictures_shape(cluster, watched, tmp_path, width, height, viewport):
    """The player box has the picture's aspect ratio (no 16:9 box around a 4:3 or portrait
    video), fits in 75% of the window's height, and a portrait video on a phone is as
    wide as that allows (not squeezed into a 16:9 strip)."""
    page, name = watched.page, f"shape-{tag()}.mp4"
    await upload_over_http(
        cluster, make_mp4(tmp_path / "clip.mp4", seconds=1, width=width, height=height), name
    )
    if viewport:
        await page.set_viewport_size(viewport)
    await open_watch(page, cluster.url, name)
    box = await page.locator("#player").bounding_box()
    frame = await page.locator("#player-frame").bounding_box()
    window_height = await page.evaluate("window.innerHeight")
    assert box and frame
    assert abs(box["width"] / box["height"] - width / height) < 0.02, box
    assert abs(frame["width"] - box["width"]) < 1 and abs(frame["height"] - box["height"]) < 1, (frame, box)
    assert box["height"] <= 0.75 * window_height + 1
    if height > width:
        # As tall as the page allows: 75% of the window's height.
        assert abs(box["height"] - 0.75 * window_height) < 2, (box, window_height)
    await watched.assert_clean()


async def test_without_media_source_extensions_the_stream_plays(cluster, watched, long_clip):
    """Where the browser has no Media Source Extensions (hls.js unsupported), the page plays
    the progressive /stream and shows no quality menu."""
    page, name = watched.page, f"no-mse-{tag()}.mp4"
    await upload_over_http(cluster, long_clip, name)
    await page.add_init_script(NO_MSE)
    await open_watch(page, cluster.url, name)
    assert await page.evaluate("window.Hls.isSupported()") is False
    await expect(page.locator("#watch")).to_have_attribute("data-playing", "progressive")
    assert (await player(page, "v.currentSrc")).endswith(f"/stream/{name}")
    await expect(page.locator("#quality-row")).to_be_hidden()
    await watched.assert_clean()


# Records the grid and the watch page may get, odd ones included: the shipped text.js must
# say what web/playback.py says about each.
RECORDS = [
    {"name": "a", "state": "processing", "progress": 42, "renditions": [], "playable_original": False},
    {"name": "b", "state": "processing", "progress": 250.7},
    {"name": "c", "state": "processing", "progress": "50"},
    {"name": "d", "state": "processing", "renditions": [{"height": 240, "width": 426, "bandwidth": 1}]},
    {"name": "e", "state": "failed", "failure": "  The decoder gave up.  ", "playable_original": True},
    {"name": "f", "state": "failed", "failure": None, "renditions": []},
    {"name": "g", "state": "failed", "failure": "x" * 400},
    {"name": "h", "state": "ready", "renditions": [{"height": 0, "width": 1}, {"height": 360, "width": 640}]},
    {"name": "i"},
    {"name": "j", "state": "weird", "renditions": []},
]


async def test_page_scripts_say_what_the_server_says_about_states(cluster, watched):
    """For each record, text.js (the grid's badges, the watch page's polling) gives the same
    state sentence, badge and first source as web/playback.py (the rendered watch page)."""
    page = watched.page
    await test_browser.open_home(page, cluster.url)
    answers = await page.evaluate(
        """(records) => records.map((record) => {
          const t = window.MyYoutube.text, facts = t.playback(record);
          return [t.stateText(facts), t.badge(facts), t.firstSource(facts)];
        })""",
        RECORDS,
    )
    for record, answer in zip(RECORDS, answers, strict=True):
        facts = playback.playback_of(record)
        badge = playback.badge(facts)
        expected = [
            playback.state_text(facts),
            None if badge is None else {"text": badge.text, "kind": badge.kind},
            playback.first_source(facts),
        ]
        assert answer == expected, record
    await watched.assert_clean()


# Builds, in the page, a card thumbnail with each state badge and the watch page's state
# line in each state, as home.js and player.js do; answers their selectors.
STATE_ELEMENTS = """() => {
  const t = window.MyYoutube.text;
  const thumb = t.el("div", "thumb");
  thumb.appendChild(t.el("span", "badge state-badge state-processing", "Processing 42%"));
  thumb.appendChild(t.el("span", "badge state-badge state-failed", "Failed"));
  document.getElementById("main").append(thumb,
    t.el("div", "video-state state-processing", "Processing 42%"),
    t.el("div", "video-state state-failed", "This video could not be prepared for playback."));
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_state_badges_and_lines_reach_aa_contrast(cluster, watched, scheme):
    """The processing and failed badges on cards and the state line under the player read
    at 4.5:1 or better against what is behind them, in both colour schemes."""
    page = watched.page
    await page.emulate_media(color_scheme=scheme)
    await test_browser.open_home(page, cluster.url)
    await page.evaluate(STATE_ELEMENTS)
    for selector in (
        ".state-badge.state-processing",
        ".state-badge.state-failed",
        ".video-state.state-processing",
        ".video-state.state-failed",
    ):
        ratio = await page.locator(selector).first.evaluate(test_browser.CONTRAST)
        assert ratio >= 4.5, (scheme, selector, ratio)
    await watched.assert_clean()
