"""Tests for myyoutube.media.transcode: every kind of source becomes a web rendition."""

from __future__ import annotations

import threading

import av
import numpy as np
import pytest

from myyoutube import media
from myyoutube.media.ladder import Rung
from videos import ISSUE_SOURCES, X264, bright_corner, corner_marked, make_clip


def only_rung(source_path) -> Rung:
    """The one rung of a small source (below 240p: one rendition at its own size)."""
    source = media.probe_source(source_path)
    (rung,) = media.ladder(source.width, source.height, source.frame_rate)
    return rung


def describe(path) -> dict:
    """What a player finds in a rendition: codecs, profile, pixel format, size, frames."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = list(container.decode(video))
        return {
            "video": (video.codec_context.name, video.codec_context.profile, frames[0].format.name),
            "size": (frames[0].width, frames[0].height),
            "rotation": frames[0].rotation,
            "frames": len(frames),
            "audio": [(s.codec_context.name, s.codec_context.profile) for s in container.streams.audio],
        }


@pytest.mark.parametrize("name, container, codec, options", ISSUE_SOURCES, ids=[s[0] for s in ISSUE_SOURCES])
def test_every_source_becomes_h264_high_yuv420p_with_aac(tmp_path, name, container, codec, options):
    """HEVC (MKV, MP4), MPEG-4 Part 2 AVI, H.264 TS, MPEG-2 PS, VP9 WebM, MOV, 10-bit and
    portrait sources all come out as H.264 High yuv420p at the rung's size, every frame
    kept, with AAC-LC when the source had sound and no audio track when it had none."""
    source = make_clip(tmp_path / name, container, codec, seconds=1.0, **options)
    rung = only_rung(source)
    rendition = media.transcode(source, rung, tmp_path / "out.mp4")
    found = describe(rendition.path)
    assert found["video"] == ("h264", "High", "yuv420p")
    assert (
        found["size"] == (rung.width, rung.height) == (options.get("width", 160), options.get("height", 120))
    )
    assert found["frames"] == rendition.frames == 24
    assert found["audio"] == ([("aac", "LC")] if "audio" in options else [])
    assert rendition.size == rendition.path.stat().st_size
    assert rendition.index.codecs.startswith("avc1.64")
    assert ("mp4a.40.2" in rendition.index.codecs) == ("audio" in options)


def test_odd_sized_source_becomes_even(tmp_path):
    """A 161x121 VP9 source is made 160x120 (4:2:0 needs even sides), not upscaled."""
    source = make_clip(tmp_path / "odd.webm", "webm", "libvpx-vp9", width=161, height=121)
    rendition = media.transcode(source, only_rung(source), tmp_path / "out.mp4")
    assert describe(rendition.path)["size"] == (160, 120)


@pytest.mark.parametrize(
    "rotation, corner, size",
    [(90, "bottom-left", (120, 160)), (-90, "top-right", (120, 160)), (180, "bottom-right", (160, 120))],
)
def test_sideways_phone_video_is_turned_upright(tmp_path, rotation, corner, size):
    """A 160x120 picture flagged to be turned comes out turned as FFmpeg's command line
    turns it (the top-left block of a 90-degree counter-clockwise turn ends bottom-left,
    in a 120x160 picture), with no rotation flag left for a player to apply twice."""
    source = make_clip(
        tmp_path / "phone.mp4", "mp4", "libx264", rotation=rotation, options=X264, picture=corner_marked
    )
    rendition = media.transcode(source, only_rung(source), tmp_path / "out.mp4")
    found = describe(rendition.path)
    assert found["size"] == size and found["rotation"] == 0
    with av.open(str(rendition.path)) as container:
        image = next(container.decode(video=0)).to_image()
    assert bright_corner(image) == corner


def test_keyframes_fall_every_gop_frames(tmp_path):
    """With a 12-frame GOP, frames 0, 12, 24 and 36 of 48 are keyframes and no others
    (none at scene cuts), so every rung's segments start on the same frames."""
    source = make_clip(tmp_path / "s.mp4", "mp4", "libx264", seconds=2.0, options=X264)
    rung = Rung("120p", 160, 120, only_rung(source).frame_rate, 12, 300_000, 64_000)
    rendition = media.transcode(source, rung, tmp_path / "out.mp4")
    with av.open(str(rendition.path)) as container:
        keys = [i for i, frame in enumerate(container.decode(video=0)) if frame.key_frame]
    assert keys == [0, 12, 24, 36]
    assert len(rendition.index.segments) == 4


def test_renditions_of_one_source_have_aligned_segments(tmp_path):
    """A 640x360 source's 240p and 360p renditions have the same segment durations."""
    source = make_clip(tmp_path / "s.mp4", "mp4", "libx264", seconds=5.0, fps=24, width=640, height=360,
                       audio="aac", options=X264)  # fmt: skip
    probed = media.probe_source(source)
    rungs = media.ladder(probed.width, probed.height, probed.frame_rate)
    assert [rung.name for rung in rungs] == ["240p", "360p"]
    indexes = [media.transcode(source, rung, tmp_path / f"{rung.name}.mp4").index for rung in rungs]
    assert [len(index.segments) for index in indexes] == [3, 3]
    assert indexes[0].segments[0].ticks == indexes[1].segments[0].ticks
    assert [s.ticks for s in indexes[0].segments] == [s.ticks for s in indexes[1].segments]


def test_progress_rises_to_one(tmp_path):
    """progress() is called with rising fractions in (0, 1], the last being 1.0."""
    source = make_clip(tmp_path / "s.mkv", "matroska", "libx264", seconds=2.0, audio="aac", options=X264)
    seen: list[float] = []
    media.transcode(source, only_rung(source), tmp_path / "out.mp4", progress=seen.append)
    assert len(seen) > 5 and seen == sorted(seen) and seen[-1] == 1.0 and seen[0] > 0


def test_cancel_stops_within_a_packet_and_leaves_nothing(tmp_path):
    """An event set mid-way stops the transcode (Cancelled) and removes the partial file."""
    source = make_clip(tmp_path / "s.mp4", "mp4", "libx264", seconds=2.0, options=X264)
    stop = threading.Event()

    def progress(fraction: float) -> None:
        if fraction > 0.3:
            stop.set()

    with pytest.raises(media.Cancelled):
        media.transcode(
            source, only_rung(source), tmp_path / "out.mp4", progress=progress, cancelled=stop.is_set
        )
    assert not (tmp_path / "out.mp4").exists()


def test_unreadable_source_is_refused_and_leaves_nothing(tmp_path):
    """A file that is not a video raises NotAVideo and no rendition file is left."""
    (tmp_path / "junk.mkv").write_bytes(np.random.default_rng(1).bytes(20_000))
    rung = Rung("120p", 160, 120, 24, 48, 300_000, 64_000)
    with pytest.raises(media.NotAVideo):
        media.transcode(tmp_path / "junk.mkv", rung, tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()
