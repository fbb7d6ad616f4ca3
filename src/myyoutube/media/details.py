"""Which video details an uploader may state, and the checks each value must pass.

Theory of operation
-------------------
The web front end reads a video's duration, size, codec and bitrate with PyAV and sends
them to the master with the commit. The master trusts nothing it is sent: `clean_details`
keeps only the known keys whose values have the right type and a sane range, so the
index and the pages only ever show what they expect.
"""

from __future__ import annotations

# What an uploader may say about a video, with the type each value must have. Anything
# else is dropped: the index keeps only what pages and /listar show.
DETAIL_TYPES: dict[str, type] = {
    "duration_s": float,
    "width": int,
    "height": int,
    "codec": str,
    "bitrate": int,
    "remuxed": bool,
    "frame_rate": float,  # what the rendition ladder is timed by
    "pixel_format": str,  # whether browsers decode the original ("yuv420p10le": not all)
}
# Codec names are short identifiers ("h264", "vp9"); a longer one is not a codec name.
MAX_CODEC_CHARS = 32


def clean_details(details: dict) -> dict:
    """Keep the known video details whose values have the right type and a sane range."""
    clean = {}
    for key, kind in DETAIL_TYPES.items():
        value = details.get(key)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            continue
        # value is a `kind` now; testing its type rather than `kind` lets mypy see that too
        # (a bool passes the int range check: 0 and 1 are in range).
        if isinstance(value, int | float) and not 0 <= value < 10**12:
            continue
        if isinstance(value, str) and not (0 < len(value) <= MAX_CODEC_CHARS and value.isprintable()):
            continue
        clean[key] = value
    return clean
