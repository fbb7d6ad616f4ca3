"""What the web front end learns from an uploaded video file, with PyAV.

Theory of operation
-------------------
An upload is spooled to a temporary file on the web host's disk (memory stays flat) while
it is relayed to the master. Before the master is told to commit, `inspect` opens the
file with PyAV (FFmpeg's demuxers and decoders, shipped in its wheels): a file FFmpeg
cannot parse as a video is refused, and the duration, size, codec and bitrate go to the
index.

It is blocking and CPU- or disk-bound: the server runs it in a worker thread, at most one
per upload slot.
"""

from __future__ import annotations

from pathlib import Path

import av


class NotAVideo(Exception):
    """FFmpeg cannot read a video stream from this file; str(exc) is for the user."""


def inspect(path: Path) -> dict:
    """Duration, size, codec and bitrate of the first video stream, or NotAVideo."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise NotAVideo("The file has no video stream.")
            stream = container.streams.video[0]
            duration_s = _duration_s(container, stream)
            details = {
                "duration_s": round(duration_s, 3) if duration_s else None,
                "width": stream.codec_context.width or None,
                "height": stream.codec_context.height or None,
                "codec": stream.codec_context.name,
                "bitrate": container.bit_rate or None,
            }
    except av.FFmpegError as exc:
        raise NotAVideo(f"The file is not a video we can read ({exc.__class__.__name__}).") from exc
    return {key: value for key, value in details.items() if value is not None}


def _duration_s(container, stream) -> float | None:
    if container.duration:
        return container.duration / av.time_base
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None
