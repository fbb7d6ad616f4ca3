"""HLS playlists (RFC 8216) for renditions stored as one fragmented MP4 each.

Theory of operation
-------------------
PeerTube's layout: each rendition is a single fragmented MP4 blob and its playlist
points at byte ranges of it. The *media playlist* of a rendition names the init segment
(`ftyp`+`moov`) with `#EXT-X-MAP:URI=...,BYTERANGE="len@0"` and then each `moof`+`mdat`
pair with `#EXT-X-BYTERANGE:len@offset` and its duration (`#EXTINF`). The *master
playlist* lists one `#EXT-X-STREAM-INF` per rendition with its peak bitrate, size and
codecs, smallest first: hls.js starts on the first listed rung, so playback starts fast,
and then climbs as its bandwidth estimate allows.

Everything comes from the renditions' stored fragment indexes (fragments.py); nothing
here reads a file. Pure functions, tested without files.

URIs are written as given: the caller percent-encodes them (a video's name may hold any
character), and one holding a quote or a line break is refused rather than written into
the playlist where it would break or inject a line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from myyoutube.media.fragments import FragmentIndex, average_bitrate, peak_bitrate

# EXT-X-MAP in a media playlist needs version 6 (5 with I-frames only); byte ranges 4.
# 7 is what FFmpeg's hls muxer writes for fMP4 and what hls.js and Safari expect.
HLS_VERSION = 7
PLAYLIST_CONTENT_TYPE = "application/vnd.apple.mpegurl"

_FORBIDDEN_IN_URI = ('"', "\n", "\r")


@dataclass(frozen=True)
class Variant:
    """One rendition as the master playlist announces it."""

    uri: str  # of its media playlist
    index: FragmentIndex
    frame_rate: Fraction | None = None


def _checked(uri: str) -> str:
    if not uri or any(character in uri for character in _FORBIDDEN_IN_URI):
        raise ValueError(f"a playlist URI must be non-empty and percent-encoded, not {uri!r}")
    return uri


def media_playlist(index: FragmentIndex, uri: str) -> str:
    """The VOD media playlist of the rendition at `uri`, one segment per moof+mdat."""
    uri = _checked(uri)
    target = max((math.ceil(index.segment_s(s)) for s in index.segments), default=1)
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{HLS_VERSION}",
        f"#EXT-X-TARGETDURATION:{max(1, target)}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-MAP:URI="{uri}",BYTERANGE="{index.init_length}@0"',
    ]
    for segment in index.segments:
        lines.append(f"#EXTINF:{index.segment_s(segment):.6f},")
        lines.append(f"#EXT-X-BYTERANGE:{segment.length}@{segment.offset}")
        lines.append(uri)
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def master_playlist(variants: Sequence[Variant]) -> str:
    """The master playlist listing every rendition, lowest bitrate first."""
    if not variants:
        raise ValueError("a master playlist needs at least one rendition")
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{HLS_VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for variant in sorted(variants, key=lambda v: peak_bitrate(v.index)):
        index = variant.index
        attributes = [
            f"BANDWIDTH={peak_bitrate(index)}",
            f"AVERAGE-BANDWIDTH={average_bitrate(index)}",
            f"RESOLUTION={index.width}x{index.height}",
            f'CODECS="{index.codecs}"',
        ]
        if variant.frame_rate:
            attributes.append(f"FRAME-RATE={float(variant.frame_rate):.3f}")
        lines.append("#EXT-X-STREAM-INF:" + ",".join(attributes))
        lines.append(_checked(variant.uri))
    return "\n".join(lines) + "\n"
