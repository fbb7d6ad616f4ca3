"""Tests for myyoutube.media.hls and the FragmentIndex it reads: playlists, no files."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import pytest

from myyoutube.media.fragments import FragmentIndex, Segment, average_bitrate, peak_bitrate
from myyoutube.media.hls import Variant, master_playlist, media_playlist

TIMESCALE = 90000


def index(lengths_and_seconds, width=640, height=360, init=1200, codecs="avc1.64001e,mp4a.40.2"):
    """A fragment index of contiguous segments after an init segment of `init` bytes."""
    segments, offset = [], init
    for length, seconds in lengths_and_seconds:
        segments.append(Segment(offset, length, round(seconds * TIMESCALE)))
        offset += length
    return FragmentIndex(offset + 500, init, TIMESCALE, codecs, width, height, tuple(segments))


LOW = index([(50_000, 2.0), (60_000, 2.0), (10_000, 0.5)], 426, 240, codecs="avc1.640015,mp4a.40.2")
HIGH = index([(500_000, 2.0), (700_000, 2.0), (90_000, 0.5)], 1280, 720, codecs="avc1.64001f,mp4a.40.2")


def test_media_playlist_points_at_each_fragment_by_byte_range():
    """Version 7 VOD playlist: the init segment as EXT-X-MAP len@0, then per segment its
    EXTINF and EXT-X-BYTERANGE len@offset on the one rendition URI, then ENDLIST."""
    text = media_playlist(LOW, "/renditions/cat%20video/240p.mp4")
    lines = text.splitlines()
    assert lines[:4] == ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:0"]
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in lines and lines[-1] == "#EXT-X-ENDLIST"
    assert '#EXT-X-MAP:URI="/renditions/cat%20video/240p.mp4",BYTERANGE="1200@0"' in lines
    extinf = [line for line in lines if line.startswith("#EXTINF:")]
    ranges = [line for line in lines if line.startswith("#EXT-X-BYTERANGE:")]
    assert extinf == ["#EXTINF:2.000000,", "#EXTINF:2.000000,", "#EXTINF:0.500000,"]
    assert ranges == [
        "#EXT-X-BYTERANGE:50000@1200",
        "#EXT-X-BYTERANGE:60000@51200",
        "#EXT-X-BYTERANGE:10000@111200",
    ]
    assert lines.count("/renditions/cat%20video/240p.mp4") == 3
    assert text.endswith("\n")


def test_target_duration_covers_the_longest_segment():
    """EXT-X-TARGETDURATION is the longest segment rounded up (2.1 s -> 3)."""
    assert "#EXT-X-TARGETDURATION:3" in media_playlist(index([(1000, 2.1), (1000, 1.0)]), "r.mp4")


def test_master_playlist_lists_every_rung_lowest_first():
    """One EXT-X-STREAM-INF per rendition, lowest bitrate first (players start there),
    with peak and average bandwidth, resolution, codecs and frame rate."""
    text = master_playlist(
        [Variant("720p.m3u8", HIGH, Fraction(30)), Variant("240p.m3u8", LOW, Fraction(30000, 1001))]
    )
    lines = text.splitlines()
    assert lines[:3] == ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    assert lines[3] == (
        "#EXT-X-STREAM-INF:BANDWIDTH=240000,AVERAGE-BANDWIDTH=213334,RESOLUTION=426x240,"
        'CODECS="avc1.640015,mp4a.40.2",FRAME-RATE=29.970'
    )
    assert lines[4] == "240p.m3u8"
    assert lines[5].startswith("#EXT-X-STREAM-INF:BANDWIDTH=2800000,") and "RESOLUTION=1280x720" in lines[5]
    assert lines[6] == "720p.m3u8"


def test_bandwidths_are_peak_and_average_segment_bitrates():
    """BANDWIDTH is the busiest segment's bits/s, AVERAGE-BANDWIDTH all bytes over time."""
    assert peak_bitrate(LOW) == 60_000 * 8 // 2
    assert average_bitrate(LOW) == math.ceil(120_000 * 8 / 4.5)


@pytest.mark.parametrize("uri", ['a"b.mp4', "a\nb.mp4", "a\rb.mp4", ""])
def test_uris_that_would_break_the_playlist_are_refused(uri):
    """A quote or line break in a URI (or none at all) is a ValueError, never written."""
    with pytest.raises(ValueError):
        media_playlist(LOW, uri)
    with pytest.raises(ValueError):
        master_playlist([Variant(uri, LOW)])


def test_master_playlist_needs_a_rendition():
    with pytest.raises(ValueError):
        master_playlist([])


def test_index_round_trips_through_compact_json():
    """to_json/from_json keep every field; the text is compact (no spaces)."""
    text = LOW.to_json()
    assert " " not in text and json.loads(text)["segments"][0] == [1200, 50000, 180000]
    assert FragmentIndex.from_json(text) == LOW
    assert LOW.duration_s == pytest.approx(4.5)


def test_index_of_an_unknown_version_is_refused():
    """An index written by a future format is refused, not misread."""
    data = json.loads(LOW.to_json())
    data["version"] = 99
    with pytest.raises(ValueError, match="version"):
        FragmentIndex.from_json(json.dumps(data))
