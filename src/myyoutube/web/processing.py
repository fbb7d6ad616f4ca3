"""What the web front end learns from and does to an uploaded video file, with PyAV.

Theory of operation
-------------------
An upload is spooled to a temporary file on the web host's disk (memory stays flat) while
it is relayed to the master. Before the master is told to commit, `inspect` opens the
file with PyAV (FFmpeg's demuxers and decoders, shipped in its wheels): a file FFmpeg
cannot parse as a video is refused, and the duration, size, codec and bitrate go to the
index. `make_poster` decodes one frame about 10 % in and encodes it as a small JPEG, which
is stored in the cluster beside the video. `remux_faststart` copies an MP4's streams
into a new file with `moov` first (no re-encode), for files whose index sits at the end.

All three are blocking and CPU- or disk-bound: the server runs them in worker threads,
at most one per upload slot.
"""

from __future__ import annotations

import io
from pathlib import Path

import av

# Posters are shown in a grid of ~240 px cards; 320 px wide is sharp there and on the
# player while staying around 10-20 KB as JPEG.
POSTER_WIDTH_PX = 320
POSTER_JPEG_QUALITY = 80
# Where in the video the poster frame is taken: the first frames are often black.
POSTER_POSITION = 0.10
# A poster must fit in one protocol frame (CHUNK_BYTES); a larger one is dropped.
MAX_POSTER_BYTES = 256 * 1024


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


def make_poster(path: Path, duration_s: float | None) -> bytes | None:
    """A JPEG of a frame about POSTER_POSITION into the video, or None if none decodes."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if duration_s:
                # Seeking lands on the keyframe before the target: good enough for a poster.
                container.seek(int(duration_s * POSTER_POSITION * av.time_base))
            frame = next(container.decode(stream), None)
            if frame is None:
                return None
            image = frame.to_image()
    except (av.FFmpegError, IndexError, StopIteration):
        return None
    height = max(1, round(image.height * POSTER_WIDTH_PX / max(1, image.width)))
    image = image.resize((POSTER_WIDTH_PX, height))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=POSTER_JPEG_QUALITY)
    poster = buffer.getvalue()
    return poster if len(poster) <= MAX_POSTER_BYTES else None


def remux_faststart(source: Path, target: Path) -> None:
    """Copy every stream of an MP4/MOV into `target` with `moov` first; no re-encoding."""
    try:
        with (
            av.open(str(source)) as inp,
            av.open(str(target), "w", format="mp4", options={"movflags": "+faststart"}) as out,
        ):
            mapping = {}
            for stream in inp.streams:
                if stream.type in ("video", "audio"):
                    mapping[stream.index] = out.add_stream_from_template(stream)
            for packet in inp.demux(*[inp.streams[i] for i in mapping]):
                if packet.dts is None:
                    continue  # the demuxer's flush packets carry no data
                packet.stream = mapping[packet.stream.index]
                out.mux(packet)
    except av.FFmpegError as exc:
        raise NotAVideo(f"The file is not a video we can read ({exc.__class__.__name__}).") from exc
