"""Pure tests of myyoutube.web.playback: what a viewer is told about a video's state, the
badge on its card, and what the watch page's player starts with, from public records."""

from __future__ import annotations

from myyoutube.web import playback
from myyoutube.web.playback import Badge, Rendition, badge, first_source, playback_of, state_text

LADDER = [
    {"height": 360, "width": 640, "bandwidth": 900_000},
    {"height": 240, "width": 426, "bandwidth": 500_000},
]


def record(**fields) -> dict:
    return {"name": "clip.mp4", "width": 640, "height": 360, **fields}


def test_processing_video_says_its_percent_on_the_badge_and_the_page():
    """A video being transcoded reads "Processing 42%" on its card and its watch page."""
    facts = playback_of(record(state="processing", progress=42, renditions=[], playable_original=False))
    assert state_text(facts) == "Processing 42%"
    assert badge(facts) == Badge("Processing 42%", "processing")
    assert first_source(facts) == "none"


def test_progress_is_clamped_and_may_be_missing():
    """Odd progress values never show as nonsense: over 100 reads 100, a missing or
    non-numeric one reads plain "Processing"."""
    assert state_text(playback_of(record(state="processing", progress=250))) == "Processing 100%"
    assert state_text(playback_of(record(state="processing", progress=41.9))) == "Processing 41%"
    for odd in (None, "50", True, -3, float("nan")):
        assert state_text(playback_of(record(state="processing", progress=odd))) == "Processing"


def test_failed_video_shows_its_reason_and_a_failed_badge():
    """A failed video's page gives the transcoder's reason; its card says "Failed" in words."""
    facts = playback_of(record(state="failed", failure="  The decoder gave up at 0:03.  ", renditions=[]))
    assert state_text(facts) == "This video could not be prepared for playback: The decoder gave up at 0:03."
    assert badge(facts) == Badge("Failed", "failed")
    no_reason = playback_of(record(state="failed", failure=None))
    assert state_text(no_reason).endswith("no reason was given")
    long = playback_of(record(state="failed", failure="x" * 5000))
    assert len(long.failure) == playback.MAX_FAILURE_CHARS


def test_ready_video_has_no_badge_and_plays_hls():
    """A ready video with renditions carries no badge and starts with HLS; renditions are
    checked and sorted by height, malformed entries dropped."""
    facts = playback_of(
        record(state="ready", renditions=[*LADDER, {"height": "big"}, 7], playable_original=False)
    )
    assert badge(facts) is None and state_text(facts) == ""
    assert facts.renditions == (Rendition(240, 426, 500_000), Rendition(360, 640, 900_000))
    assert first_source(facts) == "hls"


def test_playable_original_plays_progressively_while_renditions_are_made():
    """With no rendition yet, a browser-playable original is watchable at once (/stream)."""
    facts = playback_of(record(state="processing", progress=3, renditions=[], playable_original=True))
    assert first_source(facts) == "progressive"
    assert playback_of(record(state="processing", renditions=LADDER[:1])).renditions


def test_record_from_before_transcoding_plays_its_original():
    """A record with none of the new fields is ready and plays its original, as before."""
    facts = playback_of({"name": "old.mp4"})
    assert facts.state == "ready" and facts.playable_original
    assert first_source(facts) == "progressive"
    assert facts.width is None and facts.height is None
    assert playback_of({"name": "x", "state": "exploded"}).state == "ready"


def test_the_picture_shape_comes_from_the_details():
    """The player's shape: width and height as shown, portrait kept; junk ignored."""
    portrait = playback_of(record(width=1080, height=1920))
    assert (portrait.width, portrait.height) == (1080, 1920)
    junk = playback_of(record(width="wide", height=0))
    assert (junk.width, junk.height) == (None, None)
