"""What a video file is, and whether to accept it, read with PyAV before it is stored.

Theory of operation
-------------------
An upload is spooled to a temporary file on the web host's disk (memory stays flat) while
it is relayed to the master. Before the master is told to commit, `probe_source` reads the file
once with PyAV (FFmpeg's demuxers and decoders, shipped in its wheels) and refuses it,
with a sentence for the uploader, if:

* FFmpeg cannot read a video stream from it (NotAVideo);
* its picture is larger than MAX_PIXELS (PictureTooLarge). This is decided from the
  stream parameters the demuxer and codec parser read from headers, before any frame is
  decoded: a 1 KB file can declare 16000x16000 pixels, and decoding one such frame takes
  gigabytes. The file is opened with the decoders told to skip every frame
  (OPEN_OPTIONS), because FFmpeg's stream analysis otherwise decodes a frame or two
  while opening, before any check could run;
* its packets end well before the duration its headers declare (Truncated): an upload
  cut short plays up to the cut and then fails. Every audio and video packet is read
  (demuxed, not decoded: disk-bound and cheap) to find where the data really ends.

During the same pass the first video frame is decoded (one thread, size capped by the
decoder's own `max_pixels`): it proves the video decodes at all and carries the display
rotation phones record, which the demuxer does not expose.

`Source` is what callers learn: the picture as shown (rotation and pixel aspect
applied), frame rate, duration, codec, bitrate, whether there is audio. `details()` is the
part the index keeps. Everything here is blocking: callers run it in a child process
(web/media_processes.py; a datanode's transcode worker).

Memory: opening decodes nothing; the one decoded frame is at most MAX_PIXELS (about
100 MB at 8 bits 4:2:0 for the largest accepted picture), and packets are dropped as read.
Measured by bench/transcode.py: accepting (probe + poster) an 8192x8192 source peaks at
~340 MiB resident in one process, transcoding it at ~370 MiB; a file declaring more is
refused with the process at ~40 MiB (its baseline), nothing allocated for its picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from myyoutube.formatting import human_duration

# The largest picture accepted, in pixels: 8192x8192 covers 8K (7680x4320) and square
# 8K VR video. One decoded 4:2:0 frame of this size is ~100 MB; a decoder holds several.
MAX_PIXELS = 8192 * 8192

# How many threads a decoder may use. Frame threading keeps a whole frame per thread in
# flight, so threads multiply memory; two match this project's 2-core machines.
MAX_DECODER_THREADS = 2

# Opening a file runs FFmpeg's stream analysis, which decodes frames to fill in missing
# parameters. With every frame skipped it decodes nothing; the sizes still come from
# container headers and codec parsers. One thread: analysis needs no more.
OPEN_OPTIONS = {"skip_frame": "all", "threads": "1"}

# A file is cut short when its packets end more than this before its declared duration.
# Muxers round durations and audio often outlasts video by a frame or two; an upload cut
# by a dropped connection loses far more. The fraction covers long files whose declared
# duration is an estimate.
TRUNCATION_SLACK_S = 1.0
TRUNCATION_SLACK_FRACTION = 0.01


class NotAVideo(Exception):
    """FFmpeg cannot read a video stream from this file; str(exc) is for the user."""


class PictureTooLarge(NotAVideo):
    """The picture is larger than MAX_PIXELS; refused before any frame is decoded."""


class Truncated(NotAVideo):
    """The file's packets end well before its declared duration."""


@dataclass(frozen=True)
class Source:
    """A video file as probed: what the ladder, transcoder and index need to know."""

    width: int  # as shown: rotation and pixel aspect ratio applied
    height: int
    rotation: int  # degrees counter-clockwise a player turns the coded picture
    frame_rate: Fraction | None
    duration_s: float | None
    codec: str
    bitrate: int | None
    has_audio: bool
    pixel_format: str | None = None  # the decoder's ("yuv420p10le" for 10-bit)

    def details(self) -> dict:
        """The details the index keeps (see media.details.DETAIL_TYPES)."""
        details = {
            "duration_s": round(self.duration_s, 3) if self.duration_s else None,
            "width": self.width,
            "height": self.height,
            "codec": self.codec,
            "bitrate": self.bitrate,
            "frame_rate": round(float(self.frame_rate), 3) if self.frame_rate else None,
            "pixel_format": self.pixel_format,
        }
        return {key: value for key, value in details.items() if value is not None}


def unreadable(exc: Exception) -> NotAVideo:
    return NotAVideo(f"The file is not a video we can read ({exc.__class__.__name__}).")


def open_input(path: Path):
    """Open `path` for reading without decoding anything (see OPEN_OPTIONS)."""
    return av.open(str(path), options=OPEN_OPTIONS)


def prepare_decoder(stream, threads: int = MAX_DECODER_THREADS) -> None:
    """Cap a stream's decoder: at most `threads` threads, no picture over MAX_PIXELS."""
    context = stream.codec_context
    context.thread_count = max(1, min(threads, MAX_DECODER_THREADS))
    context.thread_type = "AUTO"
    context.options = {"max_pixels": str(MAX_PIXELS)}


def check_picture_size(width: int, height: int) -> None:
    """PictureTooLarge if a `width` x `height` picture exceeds MAX_PIXELS."""
    if width * height > MAX_PIXELS:
        raise PictureTooLarge(
            f"The video's picture is {width}x{height} pixels; the largest we accept is "
            f"{MAX_PIXELS / 1e6:.0f} million pixels (8192x8192)."
        )


def check_complete(declared_s: float | None, data_end_s: float) -> None:
    """Truncated if the packets end well before the declared duration (see the slack)."""
    if declared_s is None:
        return
    slack = max(TRUNCATION_SLACK_S, declared_s * TRUNCATION_SLACK_FRACTION)
    if data_end_s < declared_s - slack:
        raise Truncated(
            f"The file is cut short: it says it lasts {human_duration(declared_s)} but its "
            f"data stops at {human_duration(data_end_s)}. Upload the complete file."
        )


def display_size(width: int, height: int, rotation: int, aspect: Fraction | None) -> tuple[int, int]:
    """The picture as a player shows it: pixel aspect applied, sides swapped if turned."""
    if aspect and aspect > 0 and aspect != 1:
        width = max(1, round(width * aspect))
    return (height, width) if abs(rotation) % 180 == 90 else (width, height)


def probe_source(path: Path) -> Source:
    """Read and check the whole file (see the module docstring); NotAVideo if refused."""
    try:
        with open_input(path) as container:
            if not container.streams.video:
                raise NotAVideo("The file has no video stream.")
            video = container.streams.video[0]
            check_picture_size(video.codec_context.width, video.codec_context.height)
            prepare_decoder(video, threads=1)
            (width, height, rotation), data_end_s = _scan(container, video)
            declared_s = container.duration / av.time_base if container.duration else None
            check_complete(declared_s, data_end_s)
            return Source(
                *display_size(width, height, rotation, _aspect(video)),
                rotation=rotation,
                frame_rate=video.average_rate or video.guessed_rate,
                duration_s=declared_s or data_end_s,
                codec=video.codec_context.name,
                bitrate=container.bit_rate or None,
                has_audio=bool(container.streams.audio),
                pixel_format=video.codec_context.pix_fmt,
            )
    except av.FFmpegError as exc:
        raise unreadable(exc) from exc


def inspect(path: Path) -> dict:
    """The index's details of an accepted file (`probe_source` refuses the others)."""
    return probe_source(path).details()


def _aspect(video) -> Fraction | None:
    aspect = video.sample_aspect_ratio
    return Fraction(aspect) if aspect else None


def _scan(container, video):
    """Demux every audio and video packet; decode only until the first video frame.

    Returns that frame's (width, height, rotation) and where the data ends, in seconds
    from the file's start.
    """
    start_s = (container.start_time or 0) / av.time_base
    picture, end_s, video_packets = None, None, 0
    wanted = [*container.streams.video[:1], *container.streams.audio]
    for packet in container.demux(*wanted):
        time = packet.pts if packet.pts is not None else packet.dts
        if time is None or packet.time_base is None:
            continue  # the demuxer's end-of-stream packets carry nothing
        packet_end_s = float((time + (packet.duration or 0)) * packet.time_base) - start_s
        end_s = packet_end_s if end_s is None else max(end_s, packet_end_s)
        if packet.stream is video:
            video_packets += 1
            if picture is None:
                picture = _first_picture(video, packet)
    if picture is None and video_packets:
        picture = _first_picture(video, None)  # frames held back by decoder delay
    if picture is None or end_s is None:
        what = "cannot be decoded" if video_packets else "has no frames"
        raise NotAVideo(f"The file's video ({video.codec_context.name}) {what}.")
    return picture, end_s


def _first_picture(video, packet) -> tuple[int, int, int] | None:
    """(width, height, rotation) of the first frame decoding `packet` yields (None
    flushes the decoder), or None. Only these numbers are kept, not the frame."""
    try:
        frames = video.decode(packet)
    except av.FFmpegError:
        return None  # a damaged or leading non-key packet; later ones may decode
    return (frames[0].width, frames[0].height, frames[0].rotation) if frames else None
