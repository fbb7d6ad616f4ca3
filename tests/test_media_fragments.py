"""Tests for myyoutube.media.fragments on real renditions: byte ranges land on moof boxes."""

from __future__ import annotations

import pytest

from myyoutube import media
from myyoutube.media.boxes import boxes_in
from videos import make_clip, make_mp4


@pytest.fixture(scope="module")
def rendition(tmp_path_factory):
    """A 5 s 240p rendition (24 fps, 2 s GOP, with sound) made by media.transcode."""
    folder = tmp_path_factory.mktemp("fragments")
    source = make_clip(folder / "s.mp4", "mp4", "libx264", seconds=5.0, width=320, height=240, audio="aac",
                       options={"preset": "ultrafast"})  # fmt: skip
    probed = media.probe_source(source)
    (rung,) = media.ladder(probed.width, probed.height, probed.frame_rate)
    return media.transcode(source, rung, folder / "240p.mp4")


def test_byte_ranges_point_exactly_at_moof_boxes(rendition):
    """The init segment ends where the first moof starts; every segment starts with a moof
    and is that moof plus the mdat right after it; segments follow each other."""
    data = rendition.path.read_bytes()
    index = rendition.index
    assert [box.kind for box in boxes_in(data[: index.init_length])] == [b"ftyp", b"moov"]
    position = index.init_length
    for segment in index.segments:
        assert segment.offset == position
        moof, mdat = boxes_in(data, segment.offset, segment.offset + segment.length)
        assert (moof.kind, mdat.kind) == (b"moof", b"mdat") and mdat.end == segment.offset + segment.length
        position += segment.length


def test_ranges_and_trailer_sum_to_the_file_size(rendition):
    """Init segment + every segment + the mfra trailer (for progressive seeking) is the
    whole file: no byte is outside a range but the trailer."""
    index = rendition.index
    covered = index.init_length + sum(segment.length for segment in index.segments)
    data = rendition.path.read_bytes()
    assert [box.kind for box in boxes_in(data, covered)] == [b"mfra"]
    assert index.size == len(data) == rendition.size


def test_segments_are_the_two_second_gops(rendition):
    """5 s at a 2 s GOP: segments of ~2, ~2 and ~1 s adding up to the video's length."""
    durations = [rendition.index.segment_s(segment) for segment in rendition.index.segments]
    assert len(durations) == 3 and abs(durations[0] - 2.0) < 0.1 and abs(durations[1] - 2.0) < 0.1
    assert abs(sum(durations) - 5.0) < 0.15


def test_index_describes_the_rendition(rendition):
    """Codecs (High profile H.264, AAC-LC), size and the JSON kept beside the blob."""
    index = rendition.index
    assert index.codecs.startswith("avc1.64") and index.codecs.endswith(",mp4a.40.2")
    assert (index.width, index.height) == (320, 240)
    assert media.FragmentIndex.from_json(index.to_json()) == index
    assert media.index_file(rendition.path) == index


def test_playlist_from_a_real_rendition(rendition):
    """The media playlist's byte ranges are the index's, in order."""
    text = media.media_playlist(rendition.index, "240p.mp4")
    ranges = [line.split(":")[1] for line in text.splitlines() if line.startswith("#EXT-X-BYTERANGE")]
    assert ranges == [f"{s.length}@{s.offset}" for s in rendition.index.segments]


def test_progressive_mp4_is_not_fragmented(tmp_path):
    """An ordinary (faststart) MP4 has no fragments to index: NotFragmented."""
    with pytest.raises(media.NotFragmented):
        media.index_file(make_mp4(tmp_path / "plain.mp4", seconds=1.0))
