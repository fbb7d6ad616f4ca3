"""Everything the cluster does to video bytes: recognise, describe, check, convert, index.

Theory of operation
-------------------
The web front end and the datanodes share this package; nothing in it knows about
sockets, the index or HTTP. Its modules, by responsibility:

* `sniff`: the container type from a file's first bytes; whether an MP4 needs faststart.
* `details`: which video details an uploader may state (the master's check).
* `probe`: what PyAV reads from a whole file before it is accepted, and refusals.
* `posters`: one small JPEG per video.
* `remux`: an MP4's `moov` moved to the front, without re-encoding.
* `ladder`: which renditions (sizes, bitrates, keyframe spacing) a source gets; pure.

The names callers use are re-exported here, so `from myyoutube import media` then
`media.sniff(...)` is the usual spelling.
"""

from myyoutube.media.details import DETAIL_TYPES, MAX_CODEC_CHARS, clean_details
from myyoutube.media.ladder import Rung, ladder
from myyoutube.media.posters import MAX_POSTER_BYTES, POSTER_WIDTH_PX, make_poster
from myyoutube.media.probe import MAX_PIXELS, NotAVideo, PictureTooLarge, Source, Truncated, inspect, probe
from myyoutube.media.remux import remux_faststart
from myyoutube.media.sniff import SNIFF_BYTES, needs_faststart, sniff

__all__ = [
    "DETAIL_TYPES",
    "MAX_CODEC_CHARS",
    "MAX_PIXELS",
    "MAX_POSTER_BYTES",
    "POSTER_WIDTH_PX",
    "SNIFF_BYTES",
    "NotAVideo",
    "PictureTooLarge",
    "Rung",
    "Source",
    "Truncated",
    "clean_details",
    "inspect",
    "ladder",
    "make_poster",
    "needs_faststart",
    "probe",
    "remux_faststart",
    "sniff",
]
