"""The rendition ladder: which sizes and bitrates a video is transcoded to.

Theory of operation
-------------------
Every upload is made into H.264 renditions at the standard rungs (240p to 1080p) up to
its own size, so a phone on a slow link gets a small picture and a desktop a sharp one,
and a player switches between them mid-video (adaptive HLS). A rung is named by the
picture's short side, as people name qualities: a portrait 1080x1920 video's "720p" is
720x1280. Rules:

* Never upscale: a rung above the source's short side is left out, except that a source
  slightly short of a rung (a 1072-line "1080p", a 352x240 DVD-era file) gets that rung
  at its own size, rather than topping out one rung lower.
* A source smaller than the lowest rung still gets one rendition, at its own size: every
  upload must play somewhere.
* Dimensions are even (4:2:0 chroma is subsampled by two both ways) and keep the
  source's shape.
* Keyframes every ~KEYFRAME_INTERVAL_S, counted in source frames: every rung decodes the
  same frames in the same order, so frame N is a keyframe in all of them and HLS
  segments start at the same instant in every rung; a player switches rung at a segment
  boundary without a jump.

Pure: no I/O, tested without files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

# Keyframe (and so HLS segment) spacing. ~2 s is what PeerTube and Apple's HLS authoring
# spec use: short enough that a quality switch or a seek waits little, long enough that
# keyframes (several times the size of other frames) cost only a few % of bitrate.
KEYFRAME_INTERVAL_S = 2.0

# A rendition's video bitrate ceiling in bits/s at up to 30 frames per second, by rung.
# The encoder aims at constant quality (CRF) and this caps it for busy scenes; the values
# sit in the middle of YouTube's recommended encoder bitrates for each size (240p
# 300-700k, 360p 400-1000k, 480p 500-2000k, 720p 1.5-4M, 1080p 3-6M) so that a rung
# plays on a link a little faster than its number.
RUNG_VIDEO_BITRATES = {
    240: 400_000,
    360: 800_000,
    480: 1_400_000,
    720: 2_800_000,
    1080: 5_000_000,
}
# AAC-LC stereo bits/s by rung: 64k is where AAC-LC stereo stops sounding thin; the
# upper rungs, whose viewers have bandwidth to spare, get 128k (near-transparent).
RUNG_AUDIO_BITRATES = {240: 64_000, 360: 96_000, 480: 96_000, 720: 128_000, 1080: 128_000}
RUNG_HEIGHTS_PX = tuple(sorted(RUNG_VIDEO_BITRATES))

# Above 30 frames per second each frame gets less time, and needs a little less than
# proportionally more bits: YouTube's 60 fps recommendations are ~1.5x its 30 fps ones.
STANDARD_FRAME_RATE = 30
HIGH_FRAME_RATE_BITRATE_FACTOR = 1.5

# A source whose short side is at least this fraction of a rung gets that rung at its own
# size (see the module docstring): 0.9 admits a 1072-line or 1000-line "1080p".
NEAR_RUNG_FRACTION = 0.9

# Frame rates outside this range are a broken or missing header (MPEG-TS streams report
# 90000), not a real rate; the GOP is then counted at DEFAULT_FRAME_RATE.
MIN_FRAME_RATE = 1
MAX_FRAME_RATE = 240
DEFAULT_FRAME_RATE = Fraction(30)


@dataclass(frozen=True)
class Rung:
    """One rendition to make: picture size, frame rate, GOP and bitrate ceilings."""

    name: str  # "720p": the short side, as people name qualities
    width: int
    height: int
    frame_rate: Fraction
    gop_frames: int  # a keyframe every this many source frames
    video_bitrate: int  # bits/s, the encoder's ceiling
    audio_bitrate: int  # bits/s

    def to_dict(self) -> dict:
        """A JSON-ready form (the frame rate as "30000/1001"), for job records."""
        return {
            "name": self.name,
            "width": self.width,
            "height": self.height,
            "frame_rate": str(self.frame_rate),
            "gop_frames": self.gop_frames,
            "video_bitrate": self.video_bitrate,
            "audio_bitrate": self.audio_bitrate,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Rung:
        return cls(**dict(data, frame_rate=Fraction(data["frame_rate"])))


def usable_frame_rate(frame_rate: Fraction | float | None) -> Fraction:
    """The source's frame rate if it is believable, else DEFAULT_FRAME_RATE."""
    if frame_rate is None:
        return DEFAULT_FRAME_RATE
    rate = Fraction(frame_rate).limit_denominator(1001)
    return rate if MIN_FRAME_RATE <= rate <= MAX_FRAME_RATE else DEFAULT_FRAME_RATE


def gop_frames(frame_rate: Fraction | float | None) -> int:
    """Frames between keyframes: KEYFRAME_INTERVAL_S at the source's rate, at least 1."""
    return max(1, round(usable_frame_rate(frame_rate) * Fraction(KEYFRAME_INTERVAL_S)))


def even(value: float) -> int:
    """The nearest even number, at least 2 (4:2:0 pictures need even sides)."""
    return max(2, 2 * round(value / 2))


def even_floor(value: int) -> int:
    """The even number at or below `value`, at least 2: an even side that never upscales."""
    return max(2, value - value % 2)


def ladder(width: int, height: int, frame_rate: Fraction | float | None = None) -> list[Rung]:
    """The rungs for a source displayed at `width` x `height`, smallest first.

    `width` and `height` are the picture as shown (rotation and pixel aspect applied).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"a picture of {width}x{height} has no rungs")
    short, long = min(width, height), max(width, height)
    rate = usable_frame_rate(frame_rate)
    rungs: list[Rung] = []
    for nominal in RUNG_HEIGHTS_PX:
        if short < nominal * NEAR_RUNG_FRACTION:
            break
        rungs.append(_rung(nominal, even_floor(min(nominal, short)), short, long, width < height, rate))
    if not rungs:  # smaller than the lowest rung: one rendition at its own size
        rungs.append(_rung(RUNG_HEIGHTS_PX[0], even_floor(short), short, long, width < height, rate))
    return rungs


def _rung(nominal: int, side: int, short: int, long: int, portrait: bool, rate: Fraction) -> Rung:
    """The rung `nominal` made at short side `side` for a source of `short` x `long`."""
    other = min(even(long * side / short), even_floor(long))
    width, height = (side, other) if portrait else (other, side)
    # A rung made below its nominal size (a near or tiny source) needs proportionally
    # fewer bits: scale the ceiling by the share of the nominal picture's area.
    area_share = min(1.0, (side / nominal) ** 2)
    fps_factor = HIGH_FRAME_RATE_BITRATE_FACTOR if rate > STANDARD_FRAME_RATE else 1.0
    return Rung(
        name=f"{side}p",
        width=width,
        height=height,
        frame_rate=rate,
        gop_frames=gop_frames(rate),
        video_bitrate=math.ceil(RUNG_VIDEO_BITRATES[nominal] * area_share * fps_factor),
        audio_bitrate=RUNG_AUDIO_BITRATES[nominal],
    )
