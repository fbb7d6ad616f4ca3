"""Posters: one small JPEG per video, for the grid and the player before it starts.

Theory of operation
-------------------
`make_poster` decodes one frame about 10 % in and encodes it as a small JPEG, which is
stored in the cluster beside the video. It is blocking and CPU-bound: callers run it in a
worker thread.
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
