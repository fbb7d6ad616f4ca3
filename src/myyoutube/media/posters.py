"""Posters: one small JPEG per video, for the grid and the player before it starts.

Theory of operation
-------------------
The poster is the frame nearest POSTER_POSITION into the video (the first frames are
often black). The file is seeked to the keyframe at or before that instant, then decoded
forward until a frame reaches it; whichever of that frame and the one before is closer
wins. A file with sparse keyframes would need a long decode, so at most
POSTER_MAX_FRAMES frames are decoded and the last one is used. MPEG-TS and MPEG-PS have
no index: their seek can land past the target or past the only keyframe, so a missed seek
is retried further back, and finally the file is read from the start.

The frame is scaled by FFmpeg's scaler straight from the decoder's YUV to a
POSTER_WIDTH_PX-wide RGB picture: no full-size RGB copy is ever made (a 4K frame as RGB
is 25 MB). The poster keeps the picture's shape as shown: pixel aspect applied, and a
phone video recorded sideways with a rotation flag is turned upright, so a portrait
video gets a portrait poster. Any container works, MPEG-TS included (its timestamps
start well above zero, so positions are taken from the stream's own start).

Blocking and CPU-bound: callers run it in a child process (web/media_processes.py).
"""

from __future__ import annotations

import io
import itertools
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image

from myyoutube.media.probe import display_size, open_input, prepare_decoder

# Posters are shown in a grid of ~240 px cards; 320 px wide is sharp there and on the
# player while staying around 10-20 KB as JPEG.
POSTER_WIDTH_PX = 320
POSTER_JPEG_QUALITY = 80
# Where in the video the poster frame is taken: the first frames are often black.
POSTER_POSITION = 0.10
# A poster must fit in one protocol frame (CHUNK_BYTES); a larger one is dropped.
MAX_POSTER_BYTES = 256 * 1024
# Frames decoded forward from the keyframe before the target, at most: 10 s at 30 fps,
# more than any sane GOP, and a bounded cost for a file with one keyframe per minute.
POSTER_MAX_FRAMES = 300

# Seeks in files without an index (MPEG-TS, MPEG-PS) are a search by timestamp: they can
# land past the target, or past the only keyframe so that nothing decodes. Each miss seeks
# again this much earlier; after the last, the file is read from the start.
SEEK_RETREATS_S = (0.0, 2.0, 10.0)
# A first frame this little past the target is the nearest one, not a missed seek.
SEEK_LANDING_SLACK_S = 0.001

# How to turn a decoded picture upright, by the rotation (degrees counter-clockwise) a
# player applies to it.
_UPRIGHT = {
    90: Image.Transpose.ROTATE_90,
    -90: Image.Transpose.ROTATE_270,
    270: Image.Transpose.ROTATE_270,
    180: Image.Transpose.ROTATE_180,
    -180: Image.Transpose.ROTATE_180,
}


def make_poster(path: Path, duration_s: float | None) -> bytes | None:
    """A JPEG of the frame nearest POSTER_POSITION into the video, or None if none decodes."""
    offset_s = (duration_s or 0.0) * POSTER_POSITION
    try:
        image = _poster_image(path, offset_s)
    except (av.FFmpegError, IndexError):
        return None
    if image is None:
        return None
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=POSTER_JPEG_QUALITY)
    poster = buffer.getvalue()
    return poster if len(poster) <= MAX_POSTER_BYTES else None


def _poster_image(path: Path, offset_s: float) -> Image.Image | None:
    """The small upright picture of the frame nearest `offset_s` from the video's start:
    seek there (retreating on a miss), else read from the start."""
    with open_input(path) as container:
        video = container.streams.video[0]
        prepare_decoder(video, threads=1)  # one frame is wanted: no frame threads
        time_base = video.time_base or Fraction(1, 1)
        start_s = float((video.start_time or 0) * time_base)
        target_s = start_s + offset_s
        for retreat_s in SEEK_RETREATS_S if offset_s > 0 else ():
            frame = _seeked_nearest(container, video, max(start_s, target_s - retreat_s), target_s)
            if frame is not None:
                return _small_upright_image(frame, video.sample_aspect_ratio)
    with open_input(path) as container:  # every seek missed, or no seek wanted
        video = container.streams.video[0]
        prepare_decoder(video, threads=1)
        frame = _nearest(_decoded(container, video), target_s)
        return None if frame is None else _small_upright_image(frame, video.sample_aspect_ratio)


def _seeked_nearest(container, video, seek_s: float, target_s: float):
    """Seek to the keyframe at or before `seek_s`, then the frame nearest `target_s`;
    None if the seek missed (nothing decodes, or the first frame is past the target)."""
    try:
        container.seek(int(seek_s / video.time_base), stream=video, backward=True)
    except av.FFmpegError:
        return None
    frames = _decoded(container, video)
    first = next(frames, None)
    if first is None or first.time is None or first.time > target_s + SEEK_LANDING_SLACK_S:
        return None
    return _nearest(itertools.chain([first], frames), target_s)


def _nearest(frames, target_s: float):
    """Of `frames` in decode order, the one nearest `target_s` (seconds, stream clock),
    looking at most POSTER_MAX_FRAMES far; None if there are none."""
    best = None
    for count, frame in enumerate(frames, start=1):
        if frame.time is not None and frame.time >= target_s:
            if best is None or best.time is None or frame.time - target_s < target_s - best.time:
                best = frame
            break
        best = frame
        if count >= POSTER_MAX_FRAMES:
            break
    return best


def _decoded(container, video):
    """Every frame the video decodes from the current position, skipping damaged packets
    (after a seek into MPEG-TS the first packets may reference frames not yet seen)."""
    for packet in container.demux(video):
        try:
            yield from video.decode(packet)
        except av.FFmpegError:
            continue


def _small_upright_image(frame, aspect) -> Image.Image:
    """`frame` scaled by FFmpeg to POSTER_WIDTH_PX wide as shown, then turned upright."""
    rotation = frame.rotation
    shown_width, shown_height = display_size(frame.width, frame.height, rotation, aspect)
    width, height = POSTER_WIDTH_PX, max(2, round(POSTER_WIDTH_PX * shown_height / shown_width))
    if abs(rotation) % 180 == 90:
        width, height = height, width  # scale the picture as coded, turn it afterwards
    small = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA")
    image = small.to_image()
    return image.transpose(_UPRIGHT[rotation]) if rotation in _UPRIGHT else image
