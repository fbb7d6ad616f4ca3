"""Tiny real test videos made with PyAV: moving colour bars, every frame different.

`make_mp4` writes H.264 (yuv420p) in MP4, by default with the `moov` box up front
("faststart", what a browser wants to start playing from the first bytes); with
`faststart=False` the `moov` box is written last, as cameras and naive muxers do.
`make_webm` writes VP9 in WebM, for browsers without H.264. `make_clip` writes any codec
in any container, with a tone, a rotation flag or a 10-bit pixel format if asked: the
sources the transcoder must handle. `make_huge_picture_claim` writes a tiny file whose
frames declare an enormous picture. `corner_marked` is a picture with a white block in
one corner and `bright_corner` finds the block again, to check which way a picture was
turned.

A 320x240 clip of a few seconds encodes in a fraction of a second and weighs tens of KB.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image


def _frames(seconds: float, fps: int, width: int, height: int):
    """RGB frames of colour bars scrolling sideways with a bright bar sweeping down."""
    count = max(1, round(seconds * fps))
    x = np.arange(width, dtype=np.int32)
    y = np.arange(height, dtype=np.int32)[:, None]
    for index in range(count):
        shift = (x + index * 4) % width
        rgb = np.empty((height, width, 3), dtype=np.uint8)
        rgb[..., 0] = (shift * 255 // max(1, width - 1)).astype(np.uint8)
        rgb[..., 1] = ((y * 255 // max(1, height - 1) + index * 3) % 256).astype(np.uint8)
        rgb[..., 2] = ((shift // 40) % 2 * 200).astype(np.uint8)
        bar = (index * 3) % height
        rgb[bar : bar + 6, :, :] = 255
        yield index, rgb


def _encode(
    container, codec: str, seconds: float, fps: int, width: int, height: int, options: dict[str, str]
) -> None:
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuv420p"
    stream.options = options
    for index, rgb in _frames(seconds, fps, width, height):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = index  # in the encoder's time base, 1/fps
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def make_mp4(
    path: str | Path,
    seconds: float = 6.0,
    fps: int = 24,
    width: int = 320,
    height: int = 240,
    faststart: bool = True,
) -> Path:
    """Write an H.264 yuv420p MP4 of `seconds` at `path`; `faststart` puts `moov` first."""
    path = Path(path)
    if width % 2 or height % 2:
        raise ValueError("yuv420p needs an even width and height")
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as container:
        _encode(
            container,
            "libx264",
            seconds,
            fps,
            width,
            height,
            {"preset": "ultrafast", "tune": "zerolatency", "crf": "30", "profile": "baseline", "g": str(fps)},
        )
    return path


def make_webm(
    path: str | Path, seconds: float = 6.0, fps: int = 24, width: int = 320, height: int = 240
) -> Path:
    """Write a VP9 yuv420p WebM of `seconds` at `path`."""
    path = Path(path)
    with av.open(str(path), "w", format="webm") as container:
        _encode(
            container,
            "libvpx-vp9",
            seconds,
            fps,
            width,
            height,
            {"deadline": "realtime", "cpu-used": "8", "crf": "40", "b": "0", "g": str(fps)},
        )
    return path


def tone_frames(seconds: float, rate: int, frame_samples: int = 1024):
    """Stereo 440 Hz tone as packed s16 frames of `frame_samples`, with pts in samples."""
    total = max(1, round(seconds * rate))
    for start in range(0, total, frame_samples):
        count = min(frame_samples, total - start)
        t = (np.arange(start, start + count) / rate).astype(np.float64)
        wave = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
        samples = np.repeat(wave, 2)[None, :]  # packed stereo: L R L R ...
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="stereo")
        frame.sample_rate, frame.pts = rate, start
        yield frame


def make_clip(
    path: str | Path,
    container_format: str,
    codec: str,
    *,
    seconds: float = 1.0,
    fps: int = 24,
    width: int = 160,
    height: int = 120,
    pix_fmt: str = "yuv420p",
    audio: str | None = None,
    rotation: int = 0,
    options: dict[str, str] | None = None,
    picture: Callable[[int], np.ndarray] | None = None,
) -> Path:
    """Write `seconds` of moving colour bars (or `picture(index)`, an RGB array, per
    frame) with `codec` in `container_format`, plus a 440 Hz tone encoded with `audio` if
    given, and a display `rotation` flag (degrees counter-clockwise, as phones record
    portrait video) if not 0."""
    path = Path(path)
    with av.open(str(path), "w", format=container_format) as container:
        video = container.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        video.options = options or {}
        if rotation:
            video.set_display_rotation(rotation)
        sound = container.add_stream(audio, rate=48000) if audio else None
        tone = tone_frames(seconds, 48000) if sound else iter(())
        pending = next(tone, None)
        for index, rgb in _frames(seconds, fps, width, height):
            frame = av.VideoFrame.from_ndarray(rgb if picture is None else picture(index), format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
            # Interleave: audio up to this video frame's time goes in before the next one.
            while sound is not None and pending is not None and pending.pts / 48000 <= index / fps:
                container.mux(sound.encode(pending))
                pending = next(tone, None)
        container.mux(video.encode())
        if sound is not None:
            while pending is not None:
                container.mux(sound.encode(pending))
                pending = next(tone, None)
            container.mux(sound.encode())
    return path


# Fast encoder settings for test sources.
X264 = {"preset": "ultrafast"}
X265 = {"preset": "ultrafast", "x265-params": "log-level=error"}

# (file name, container, codec, make_clip options): the sources issue 10 says must all play
# (160x120 unless said; portrait 120x160).
ISSUE_SOURCES = [
    ("hevc.mkv", "matroska", "libx265", {"audio": "aac", "options": X265}),
    ("hevc.mp4", "mp4", "libx265", {"audio": "aac", "options": X265}),
    ("mpeg4.avi", "avi", "mpeg4", {"audio": "mp2"}),
    ("h264.ts", "mpegts", "libx264", {"audio": "aac", "options": X264}),
    ("mpeg2.mpg", "mpeg", "mpeg2video", {"audio": "mp2"}),
    ("vp9.webm", "webm", "libvpx-vp9", {"audio": "libopus", "options": {"deadline": "realtime"}}),
    ("h264.mov", "mov", "libx264", {"audio": "aac", "options": X264}),
    ("tenbit.mkv", "matroska", "libx265", {"pix_fmt": "yuv420p10le", "options": X265}),
    ("portrait.mp4", "mp4", "libx264", {"width": 120, "height": 160, "audio": "aac", "options": X264}),
]


def make_huge_picture_claim(path: str | Path, container_format: str, width: int, height: int) -> Path:
    """A ~3 KB file of three Motion-JPEG frames that each declare `width` x `height`
    pixels (a real 64x64 JPEG with its size fields rewritten): what a hostile uploader
    sends to make a decoder allocate gigabytes."""
    path = Path(path)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(buffer, format="JPEG")
    jpeg = bytearray(buffer.getvalue())
    start_of_frame = jpeg.index(b"\xff\xc0")
    struct.pack_into(">HH", jpeg, start_of_frame + 5, height, width)  # after length, precision
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream("mjpeg", rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p"
        for index in range(3):
            packet = av.Packet(bytes(jpeg))
            packet.stream, packet.pts, packet.dts = stream, index, index
            packet.time_base = Fraction(1, 1)
            container.mux(packet)
    return path


def corner_marked(index: int) -> np.ndarray:
    """A dark 160x120 picture with a white block in its top-left corner."""
    rgb = np.full((120, 160, 3), 30, dtype=np.uint8)
    rgb[:40, :40] = 255
    return rgb


def bright_corner(image: Image.Image) -> str:
    """Which corner of the picture holds the white block."""
    grey = np.asarray(image.convert("L"), dtype=np.float64)
    h, w = grey.shape
    corners = {
        "top-left": grey[: h // 4, : w // 4],
        "top-right": grey[: h // 4, -w // 4 :],
        "bottom-left": grey[-h // 4 :, : w // 4],
        "bottom-right": grey[-h // 4 :, -w // 4 :],
    }
    return max(corners, key=lambda corner: corners[corner].mean())
