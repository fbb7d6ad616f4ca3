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
`media.sniff(...)` is the usual spelling. The names from the modules that use PyAV
(probe, posters, remux, transcode) are loaded on first use: PyAV takes ~100 ms of CPU to
import, and the master, which starts first in every cluster, never decodes a frame.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from myyoutube.media.details import DETAIL_TYPES, MAX_CODEC_CHARS, clean_details
from myyoutube.media.fragments import FragmentIndex, NotFragmented, Segment, index_file
from myyoutube.media.hls import PLAYLIST_CONTENT_TYPE, Variant, master_playlist, media_playlist
from myyoutube.media.ladder import Rung, ladder
from myyoutube.media.sniff import SNIFF_BYTES, needs_faststart, sniff

if TYPE_CHECKING:  # the same names for the type checker, which loads nothing
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
    from myyoutube.media.transcode import Cancelled, Rendition, transcode

# Each name that needs PyAV, and the module of this package that defines it.
_LOADED_ON_USE = {
    **dict.fromkeys(("MAX_POSTER_BYTES", "POSTER_WIDTH_PX", "make_poster"), "posters"),
    **dict.fromkeys(
        ("MAX_PIXELS", "NotAVideo", "PictureTooLarge", "Source", "Truncated", "inspect", "probe_source"),
        "probe",
    ),
    "remux_faststart": "remux",
    **dict.fromkeys(("Cancelled", "Rendition", "transcode"), "transcode"),
}


def __getattr__(name: str) -> Any:
    """A name of _LOADED_ON_USE, imported with its module the first time it is asked for
    (PEP 562). Every name of that module is then kept here, so later uses never come back,
    and the import's own binding of the module's name is replaced by the function's."""
    module_name = _LOADED_ON_USE.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{module_name}")
    for loaded, source in _LOADED_ON_USE.items():
        if source == module_name:
            globals()[loaded] = getattr(module, loaded)
    return globals()[name]


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
