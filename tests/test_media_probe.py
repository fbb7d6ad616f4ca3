"""Tests for myyoutube.media.probe: what is learnt from a file, and which files are refused."""

from __future__ import annotations

from fractions import Fraction

import av
import pytest

from myyoutube import media
from myyoutube.media.probe import MAX_PIXELS, check_complete, check_picture_size, display_size
from videos import make_clip, make_huge_picture_claim, make_mp4, tone_frames

X264 = {"preset": "ultrafast"}
X265 = {"preset": "ultrafast", "x265-params": "log-level=error"}

# (file name, container, codec, make_clip options, codec name PyAV reports)
SOURCES = [
    ("hevc.mkv", "matroska", "libx265", {"audio": "aac", "options": X265}, "hevc"),
    ("hevc.mp4", "mp4", "libx265", {"audio": "aac", "options": X265}, "hevc"),
    ("mpeg4.avi", "avi", "mpeg4", {"audio": "mp2"}, "mpeg4"),
    ("h264.ts", "mpegts", "libx264", {"audio": "aac", "options": X264}, "h264"),
    ("mpeg2.mpg", "mpeg", "mpeg2video", {"audio": "mp2"}, "mpeg2video"),
    ("vp9.webm", "webm", "libvpx-vp9", {"audio": "libopus", "options": {"deadline": "realtime"}}, "vp9"),
    ("h264.mov", "mov", "libx264", {"audio": "aac", "options": X264}, "h264"),
    ("tenbit.mkv", "matroska", "libx265", {"pix_fmt": "yuv420p10le", "options": X265}, "hevc"),
]


# --- pure decisions ---------------------------------------------------------------------------


def test_picture_size_limit_is_inclusive():
    """8192x8192 is accepted; one more row, or 16000x16000, is refused with both sizes named."""
    check_picture_size(8192, 8192)
    for width, height in [(8192, 8193), (16000, 16000)]:
        with pytest.raises(media.PictureTooLarge) as refused:
            check_picture_size(width, height)
        assert f"{width}x{height}" in str(refused.value) and "8192x8192" in str(refused.value)
    assert MAX_PIXELS == 8192 * 8192


def test_completeness_allows_rounding_but_not_a_missing_tail():
    """Data ending within the slack of the declared duration passes; a cut-short file does
    not, and the sentence says how long it claims to be and where its data stops."""
    check_complete(6.0, 5.2)  # within a second
    check_complete(None, 1.0)  # nothing declared: nothing to contradict
    check_complete(3600.0, 3570.0)  # 1 % of an hour
    with pytest.raises(media.Truncated) as refused:
        check_complete(6.0, 2.0)
    assert "cut short" in str(refused.value) and "0:06" in str(refused.value) and "0:02" in str(refused.value)


def test_display_size_applies_rotation_and_pixel_aspect():
    """A sideways phone picture is shown portrait; anamorphic DVD pixels are widened."""
    assert display_size(1920, 1080, 90, None) == (1080, 1920)
    assert display_size(1920, 1080, -90, Fraction(1)) == (1080, 1920)
    assert display_size(1920, 1080, 180, None) == (1920, 1080)
    assert display_size(720, 576, 0, Fraction(16, 15)) == (768, 576)


# --- real files -------------------------------------------------------------------------------


@pytest.mark.parametrize("name, container, codec, options, reported", SOURCES, ids=[s[0] for s in SOURCES])
def test_every_container_and_codec_is_described(tmp_path, name, container, codec, options, reported):
    """HEVC, MPEG-4 Part 2, MPEG-2, VP9, 10-bit and H.264 in MKV/MP4/AVI/TS/PS/WebM/MOV
    are accepted, with their size, codec, duration, frame rate and audio read."""
    source = media.probe_source(make_clip(tmp_path / name, container, codec, seconds=2.0, **options))
    assert (source.width, source.height, source.codec) == (160, 120, reported)
    assert abs(source.duration_s - 2.0) < 0.1 and source.frame_rate == 24
    assert source.has_audio == ("audio" in options)
    assert media.inspect(tmp_path / name)["codec"] == reported


def test_rotated_phone_video_is_described_as_shown(tmp_path):
    """A 160x120 picture flagged to be turned 90 degrees is a 120x160 (portrait) video."""
    path = make_clip(tmp_path / "phone.mp4", "mp4", "libx264", rotation=90, options=X264)
    source = media.probe_source(path)
    assert (source.width, source.height, source.rotation) == (120, 160, 90)


@pytest.mark.parametrize("container", ["matroska", "avi", "mov"])
def test_huge_picture_is_refused_before_decoding(tmp_path, container):
    """A 3 KB file declaring 16000x16000 pixels is PictureTooLarge, naming its size (it is
    refused from the headers: decoding one frame would take gigabytes)."""
    path = make_huge_picture_claim(tmp_path / f"bomb.{container}", container, 16000, 16000)
    assert path.stat().st_size < 10_000
    with pytest.raises(media.PictureTooLarge, match="16000x16000"):
        media.probe_source(path)


@pytest.mark.parametrize("cut", [0.2, 0.5])
def test_mp4_cut_short_is_refused(tmp_path, cut):
    """An MP4 (moov first) cut to part of its bytes still declares 6 s: Truncated."""
    data = make_mp4(tmp_path / "whole.mp4", seconds=6.0).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(media.Truncated, match="cut short"):
        media.probe_source(tmp_path / "cut.mp4")
    assert media.probe_source(tmp_path / "whole.mp4").duration_s == 6.0


def test_matroska_cut_short_is_refused(tmp_path):
    """A Matroska file cut to a third keeps its declared duration in the header: Truncated."""
    path = make_clip(tmp_path / "whole.mkv", "matroska", "libx264", seconds=6.0, audio="aac", options=X264)
    data = path.read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) // 3])
    with pytest.raises(media.Truncated):
        media.probe_source(tmp_path / "cut.mkv")


def test_video_that_does_not_decode_is_refused(tmp_path):
    """An MP4 whose every video byte is garbage has a video stream but no picture:
    NotAVideo, saying it cannot be decoded."""
    data = bytearray(make_mp4(tmp_path / "v.mp4", seconds=1.0).read_bytes())
    media_start = data.index(b"mdat") + 4
    data[media_start:] = bytes(len(data) - media_start)
    (tmp_path / "garbage.mp4").write_bytes(bytes(data))
    with pytest.raises(media.NotAVideo, match="cannot be decoded"):
        media.probe_source(tmp_path / "garbage.mp4")


def test_audio_only_file_is_not_a_video(tmp_path):
    """An MP4 with only a sound track is refused: no video stream."""
    with av.open(str(tmp_path / "sound.mp4"), "w") as container:
        stream = container.add_stream("aac", rate=48000)
        for frame in tone_frames(1.0, 48000):
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with pytest.raises(media.NotAVideo, match="no video stream"):
        media.probe_source(tmp_path / "sound.mp4")
