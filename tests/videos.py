"""Tiny real test videos made with PyAV: moving colour bars, every frame different.

`make_mp4` writes H.264 (yuv420p) in MP4, by default with the `moov` box up front
("faststart", what a browser wants to start playing from the first bytes); with
`faststart=False` the `moov` box is written last, as cameras and naive muxers do.
`make_webm` writes VP9 in WebM, for browsers without H.264.

A 320x240 clip of a few seconds encodes in a fraction of a second and weighs tens of KB.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


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
