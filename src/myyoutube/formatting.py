"""Sizes, durations and dates as people read them, shared by the pages and the `myyoutube` client.

Theory of operation
-------------------
Pure functions, no I/O. ``human_size`` and ``human_duration`` are mirrored exactly by
``web/static/text.js`` so a size reads the same in a server-rendered page, in the grid the
script builds and in the terminal. ``parse_size`` goes the other way, for the flags that
take a number of bytes: an operator writes ``--quota-bytes 5GiB``, not 5368709120.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

__all__ = [
    "BadSize",
    "agreeing",
    "counted",
    "exception_text",
    "human_duration",
    "human_size",
    "parse_size",
    "utc_text",
]

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


# What parse_size multiplies by, keyed by the unit in lower case. The names follow GNU
# coreutils (dd, head, sort), which operators already type: a bare K, M, G or T is
# binary like KiB; KB, MB, GB and TB are decimal, as disks and networks count.
_SIZE_FACTORS = {
    "": 1,
    "b": 1,
    **{prefix: 1024**power for power, prefix in enumerate("kmgtp", start=1)},
    **{prefix + "ib": 1024**power for power, prefix in enumerate("kmgtp", start=1)},
    **{prefix + "b": 1000**power for power, prefix in enumerate("kmgtp", start=1)},
}
_SIZE_TEXT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", re.ASCII)
SIZE_EXAMPLES = "a number of bytes, or with a unit: 500MiB, 2GiB, 1.5GB"
# Longer text is no size anyone means (2^63 bytes is 19 digits), and Python refuses to
# turn more than 4,300 digits into an int with an error of its own.
MAX_SIZE_TEXT = 64


class BadSize(ValueError):
    """Text that parse_size cannot read as a whole number of bytes; says so in a sentence."""


def parse_size(text: str) -> int:
    """A size as an operator writes it, in bytes: ``"1048576"``, ``"1MiB"``, ``"1 M"``
    (binary), ``"1.5GB"`` (decimal). BadSize for anything else, or for a fraction of a
    byte (``"1.5B"``): a quota or a limit is counted in whole bytes."""
    if len(text) > MAX_SIZE_TEXT:
        raise BadSize(f"expected {SIZE_EXAMPLES}; got {text[:MAX_SIZE_TEXT]!r}... ({len(text)} characters)")
    match = _SIZE_TEXT.fullmatch(text)
    factor = _SIZE_FACTORS.get(match.group(2).lower()) if match else None
    if match is None or factor is None:
        raise BadSize(f"expected {SIZE_EXAMPLES}; got {text!r}")
    whole, _, fraction = match.group(1).partition(".")
    # Exact arithmetic: float("0.1") * 1000**5 is not a whole number of bytes.
    numerator = int(whole + fraction) * factor
    denominator = 10 ** len(fraction)
    if numerator % denominator:
        raise BadSize(f"{text!r} is not a whole number of bytes")
    return numerator // denominator


def counted(n: int, noun: str, plural: str = "") -> str:
    """``n`` and the noun in the number it takes: "1 video", "2 videos", "0 videos";
    ``plural`` for a noun whose plural is not noun + s ("copy", "copies")."""
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"


def agreeing(n: int, one: str, more: str) -> str:
    """The word that agrees with a count of ``n``: ``agreeing(1, "is", "are") -> "is"``."""
    return one if n == 1 else more


def exception_text(exc: BaseException) -> str:
    """Why a link or a replica failed, for a log line or a reason kept with a node:
    "ConnectionRefusedError: [Errno 111] Connect call failed (...)", or only the type when
    the exception says nothing more (a timeout), not "TimeoutError: " with nothing after."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
