"""Everything the cluster does to video bytes: recognise, describe, check, convert, index.

Theory of operation
-------------------
The web front end and the datanodes share this package; nothing in it knows about
sockets, the index or HTTP. Its modules, by responsibility:

* `sniff`: the container type from a file's first bytes; whether an MP4 needs faststart.
* `details`: which video details an uploader may state (the master's check).
* `probe`: what PyAV reads from a whole file before it is accepted, and the refusals
  (not a video, picture too large, cut short).
* `posters`: one small JPEG per video, from the frame nearest 10 %.
* `remux`: an MP4's `moov` moved to the front, without re-encoding.
* `ladder`: which renditions (sizes, bitrates, keyframe spacing) a source gets; pure.
* `transcode`: one rendition (H.264 + AAC fragmented MP4) of any source.
* `boxes`, `fragments`: MP4 box headers; a rendition's fragment index (byte ranges).
* `hls`: master and media playlists from fragment indexes; pure.

The names callers use are re-exported here, so `from myyoutube import media` then
`media.sniff(...)` is the usual spelling. Importing the package loads PyAV (~50 ms).
"""

from myyoutube.media.details import DETAIL_TYPES, MAX_CODEC_CHARS, clean_details
from myyoutube.media.fragments import FragmentIndex, NotFragmented, Segment, index_file
from myyoutube.media.hls import PLAYLIST_CONTENT_TYPE, Variant, master_playlist, media_playlist
from myyoutube.media.ladder import Rung, ladder
from myyoutube.media.posters import MAX_POSTER_BYTES, POSTER_WIDTH_PX, make_poster
from myyoutube.media.probe import (
    MAX_PIXELS,
    NotAVideo,
    PictureTooLarge,
    Source,
    Truncated,
    inspect,
    probe_source,
)
from myyoutube.media.remux import remux_faststart
from myyoutube.media.sniff import SNIFF_BYTES, needs_faststart, sniff
from myyoutube.media.transcode import Cancelled, Rendition, transcode

__all__ = [
    "DETAIL_TYPES",
    "MAX_CODEC_CHARS",
    "MAX_PIXELS",
    "MAX_POSTER_BYTES",
    "PLAYLIST_CONTENT_TYPE",
    "POSTER_WIDTH_PX",
    "SNIFF_BYTES",
    "Cancelled",
    "FragmentIndex",
    "NotAVideo",
    "NotFragmented",
    "PictureTooLarge",
    "Rendition",
    "Rung",
    "Segment",
    "Source",
    "Truncated",
    "Variant",
    "clean_details",
    "index_file",
    "inspect",
    "ladder",
    "make_poster",
    "master_playlist",
    "media_playlist",
    "needs_faststart",
    "probe_source",
    "remux_faststart",
    "sniff",
    "transcode",
]
