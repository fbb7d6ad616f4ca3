"""Tests for myyoutube.media.posters: the frame nearest 10 %, any container, upright."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from PIL import Image

from myyoutube import media
from myyoutube.media.posters import POSTER_WIDTH_PX
from videos import bright_corner, corner_marked, make_clip

FPS = 10
SECONDS = 5.0  # 50 frames: 10 % in is frame 5


def numbered(index: int, width: int = 160, height: int = 120) -> np.ndarray:
    """A flat grey picture whose level tells which frame it is (20 + 4 per frame)."""
    return np.full((height, width, 3), 20 + 4 * index, dtype=np.uint8)


def poster_image(path, duration_s=SECONDS) -> Image.Image:
    poster = media.make_poster(path, duration_s)
    assert poster is not None
    image = Image.open(io.BytesIO(poster))
    assert image.format == "JPEG"
    return image


def mean_level(image: Image.Image) -> float:
    return float(np.asarray(image.convert("L"), dtype=np.float64).mean())


def frame_shown(image: Image.Image, path) -> int:
    """Which frame of `path` (decoded one by one, in order) a poster shows, by its level."""
    with av.open(str(path)) as container:
        levels = [mean_level(frame.to_image()) for frame in container.decode(video=0)]
    return int(np.argmin([abs(level - mean_level(image)) for level in levels]))


@pytest.mark.parametrize(
    "name, container, codec, options",
    [
        ("gop.mp4", "mp4", "libx264", {"preset": "ultrafast", "g": "20"}),  # keyframes at 0, 2, 4 s
        ("one-keyframe.mp4", "mp4", "libx264", {"preset": "ultrafast", "g": "1000"}),
        ("stream.ts", "mpegts", "libx264", {"preset": "ultrafast", "g": "1000"}),
        ("clip.mkv", "matroska", "libx264", {"preset": "ultrafast", "g": "20"}),
        ("old.avi", "avi", "mpeg4", {"g": "20"}),
        ("dvd.mpg", "mpeg", "mpeg2video", {"g": "20"}),
    ],
)
def test_poster_is_the_frame_nearest_ten_percent(tmp_path, name, container, codec, options):
    """In MP4, MPEG-TS (no index), MKV, AVI and MPEG-PS, with sparse or regular keyframes,
    the poster shows frame 5 of 50: seek to the keyframe before, decode forward."""
    path = make_clip(
        tmp_path / name, container, codec, seconds=SECONDS, fps=FPS, options=options, picture=numbered
    )
    image = poster_image(path)
    assert image.size == (POSTER_WIDTH_PX, 240)
    assert frame_shown(image, path) == 5


def test_portrait_poster_keeps_its_shape(tmp_path):
    """A 120x160 video's poster is 320 px wide and 427 tall: portrait, not squeezed."""
    path = make_clip(tmp_path / "portrait.mp4", "mp4", "libx264", width=120, height=160)
    assert poster_image(path, 1.0).size == (POSTER_WIDTH_PX, 427)


@pytest.mark.parametrize("rotation, corner", [(90, "bottom-left"), (-90, "top-right"), (180, "bottom-right")])
def test_rotated_phone_video_poster_is_upright(tmp_path, rotation, corner):
    """A picture flagged to be turned is turned like a player turns it: the top-left block
    of a picture turned 90 degrees counter-clockwise ends bottom-left, and a turned
    160x120 picture gives a portrait poster."""
    path = make_clip(
        tmp_path / "phone.mp4",
        "mp4",
        "libx264",
        rotation=rotation,
        options={"preset": "ultrafast"},
        picture=corner_marked,
    )
    image = poster_image(path, 1.0)
    assert image.size == ((POSTER_WIDTH_PX, 427) if rotation != 180 else (POSTER_WIDTH_PX, 240))
    assert bright_corner(image) == corner


def test_unreadable_file_has_no_poster(tmp_path):
    """A file FFmpeg cannot open gives None, not an exception."""
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 100)
    assert media.make_poster(tmp_path / "junk.mp4", 3.0) is None
