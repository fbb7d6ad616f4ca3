"""Tests for myyoutube.media.ladder: which renditions a source gets (pure, no files)."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from myyoutube.media.ladder import (
    RUNG_VIDEO_BITRATES,
    Rung,
    gop_frames,
    ladder,
)


def sizes(rungs: list[Rung]) -> list[tuple[int, int]]:
    return [(rung.width, rung.height) for rung in rungs]


def test_1080p_source_gets_every_rung_smallest_first():
    """A 1920x1080 source is made at 240p through 1080p, 16:9 each, named by height."""
    rungs = ladder(1920, 1080, 30)
    assert sizes(rungs) == [(426, 240), (640, 360), (854, 480), (1280, 720), (1920, 1080)]
    assert [rung.name for rung in rungs] == ["240p", "360p", "480p", "720p", "1080p"]


def test_never_upscales():
    """A 720p source stops at 720p; a 4K source stops at 1080p."""
    assert sizes(ladder(1280, 720))[-1] == (1280, 720)
    assert len(ladder(1280, 720)) == 4
    assert sizes(ladder(3840, 2160))[-1] == (1920, 1080)


def test_portrait_is_decided_by_its_short_side():
    """A 1080x1920 phone video gets the same five rungs, each portrait: 720p is 720x1280."""
    rungs = ladder(1080, 1920, 30)
    assert sizes(rungs) == [(240, 426), (360, 640), (480, 854), (720, 1280), (1080, 1920)]
    assert [rung.name for rung in rungs] == ["240p", "360p", "480p", "720p", "1080p"]


def test_every_dimension_is_even_and_within_the_source():
    """Odd and awkward sources give even sides that never exceed the source's."""
    for width, height in [(321, 241), (1921, 1081), (999, 555), (17, 13), (1079, 1917), (500, 500)]:
        for rung in ladder(width, height):
            assert rung.width % 2 == 0 and rung.height % 2 == 0, (width, height, rung)
            assert rung.width <= width and rung.height <= height, (width, height, rung)


def test_aspect_ratio_is_kept_within_rounding():
    """A 4:3 and a 2.39:1 source keep their shape at every rung (within one even step)."""
    for width, height in [(1440, 1080), (1920, 804)]:
        for rung in ladder(width, height):
            assert abs(rung.width / rung.height - width / height) < 2 / rung.height + 0.01


def test_source_slightly_short_of_a_rung_gets_it_at_its_own_size():
    """A 1920x1072 source is not capped at 720p: its top rung is 1072 lines, not upscaled."""
    rungs = ladder(1920, 1072)
    assert sizes(rungs)[-1] == (1920, 1072) and rungs[-1].name == "1072p"
    assert rungs[-1].video_bitrate < RUNG_VIDEO_BITRATES[1080]


def test_tiny_source_still_gets_one_rendition_at_its_own_size():
    """A 160x120 clip (below 240p) gets exactly one rendition, 160x120; odd sides round down."""
    assert sizes(ladder(160, 120)) == [(160, 120)]
    assert sizes(ladder(161, 121)) == [(160, 120)]


def test_bitrates_rise_with_the_rung_and_with_high_frame_rates():
    """Each rung has a higher ceiling than the one below; 60 fps rungs get more than 30 fps."""
    at_30, at_60 = ladder(1920, 1080, 30), ladder(1920, 1080, 60)
    assert [r.video_bitrate for r in at_30] == sorted(r.video_bitrate for r in at_30)
    assert all(fast.video_bitrate > slow.video_bitrate for fast, slow in zip(at_60, at_30, strict=True))
    assert all(rung.audio_bitrate >= 64_000 for rung in at_30)


@pytest.mark.parametrize(
    "rate, frames",
    [(30, 60), (25, 50), (Fraction(30000, 1001), 60), (24, 48), (60, 120), (1, 2)],
)
def test_gop_is_two_seconds_of_source_frames(rate, frames):
    """The keyframe interval is ~2 s counted in the source's frames (at least one frame)."""
    assert gop_frames(rate) == frames


def test_unbelievable_frame_rates_fall_back_to_30():
    """A missing rate or an MPEG-TS 90000 'rate' counts the GOP at 30 fps, for every rung."""
    for bogus in (None, 0, 90000, Fraction(1, 1000)):
        assert {rung.gop_frames for rung in ladder(640, 360, bogus)} == {60}


def test_every_rung_shares_the_gop_so_segments_align():
    """All rungs of one source have the same GOP length and frame rate."""
    rungs = ladder(1920, 1080, Fraction(30000, 1001))
    assert {(rung.gop_frames, rung.frame_rate) for rung in rungs} == {(60, Fraction(30000, 1001))}


def test_rung_round_trips_through_a_json_dict():
    """A rung written into a job record (to_dict) reads back equal (from_dict)."""
    for rung in ladder(1280, 720, Fraction(30000, 1001)):
        assert Rung.from_dict(json.loads(json.dumps(rung.to_dict()))) == rung


def test_empty_picture_is_refused():
    """A 0-pixel picture has no ladder: ValueError, not a nonsense rung."""
    with pytest.raises(ValueError):
        ladder(0, 1080)
