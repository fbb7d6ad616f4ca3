"""Sizes, durations and dates as people read them, shared by the pages and the `myyoutube` client.

Theory of operation
-------------------
Pure functions, no I/O. ``human_size`` and ``human_duration`` are mirrored exactly by
``web/static/text.js`` so a size reads the same in a server-rendered page, in the grid the
script builds and in the terminal.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

__all__ = ["agreeing", "counted", "human_duration", "human_size", "utc_text"]

# Binary steps carry binary names (IEC 80000-13): "1.0 MB" for 1,048,576 bytes read 5 %
# high to anyone who knows that a megabyte is 10^6 bytes, and 10 % at terabytes.
_SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(n: int | float) -> str:
    """Format a byte count with binary (1024) steps: ``1536 -> "1.5 KiB"``.

    Bytes are shown as an integer; larger units with one decimal below 100
    and none from 100 up. Rounding is half-up (same as text.js), and a value
    that would display as 1024 moves to the next unit (``1048575 -> "1.0 MiB"``).
    Negative or non-finite input raises ``ValueError``.
    """
    value = float(n)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"size must be a non-negative number, got {n!r}")
    unit, last = 0, len(_SIZE_UNITS) - 1
    while value >= 1024 and unit < last:
        value /= 1024
        unit += 1
    if unit == 0:
        return f"{int(value)} B"
    tenths = math.floor(value * 10 + 0.5)
    if tenths < 1000:
        return f"{tenths / 10:.1f} {_SIZE_UNITS[unit]}"
    whole = math.floor(value + 0.5)
    if whole >= 1024 and unit < last:
        return f"1.0 {_SIZE_UNITS[unit + 1]}"
    return f"{whole} {_SIZE_UNITS[unit]}"


def counted(n: int, noun: str, plural: str = "") -> str:
    """``n`` and the noun in the number it takes: "1 video", "2 videos", "0 videos";
    ``plural`` for a noun whose plural is not noun + s ("copy", "copies")."""
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"


def agreeing(n: int, one: str, more: str) -> str:
    """The word that agrees with a count of ``n``: ``agreeing(1, "is", "are") -> "is"``."""
    return one if n == 1 else more


def human_duration(seconds: float) -> str:
    """Format seconds as ``m:ss`` or ``h:mm:ss`` (rounded down to the second)."""
    total = int(max(0.0, float(seconds)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def utc_text(timestamp: float) -> str:
    """Server-side fallback date text, e.g. ``"2024-05-01 12:34 UTC"``."""
    moment = datetime.fromtimestamp(float(timestamp), tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")
