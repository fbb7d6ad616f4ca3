"""What kind of video a stream of bytes is, judged by its first bytes, never by its name.

Theory of operation
-------------------
Browsers need a `Content-Type` that matches the container, and an uploader's claim (file
extension, multipart header) is not to be trusted. Every container we serve announces
itself in its first bytes: ISO BMFF (MP4, MOV, M4V, 3GP) with an `ftyp` box, Matroska and
WebM with the EBML magic plus a DocType, Ogg with `OggS`, MPEG-TS with a sync byte every
188 bytes, MPEG-PS (DVD and camcorder .mpg/.vob) with a pack header, AVI with
`RIFF....AVI `. `sniff` looks at a prefix and answers a MIME type or
None for "not a video we know".

`needs_faststart` reads the top-level MP4 boxes in the same prefix: a file whose `mdat`
(the media) comes before its `moov` (the index) cannot start playing until a browser has
fetched its end, so the web front end remuxes it before storing.
"""

from __future__ import annotations

from myyoutube.media.boxes import boxes_in

# How much of the start of a file `sniff` wants. The EBML header carrying WebM's DocType
# sits in the first few dozen bytes; MPEG-TS needs three 188-byte packets to be sure.
SNIFF_BYTES = 4096

_QUICKTIME_BRANDS = {b"qt  "}
# The prefix is all we have of the file: any box size up to this is believable.
_UNKNOWN_FILE_END = 2**63
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_TS_PACKET_BYTES = 188
_MPEG_PS_PACK_HEADER = b"\x00\x00\x01\xba"


def sniff(prefix: bytes) -> str | None:
    """The MIME type of the video whose file starts with `prefix`, or None."""
    if len(prefix) >= 12 and prefix[4:8] == b"ftyp":
        return "video/quicktime" if prefix[8:12] in _QUICKTIME_BRANDS else "video/mp4"
    if prefix.startswith(_EBML_MAGIC):
        head = prefix[:SNIFF_BYTES]
        if b"webm" in head:
            return "video/webm"
        if b"matroska" in head:
            return "video/x-matroska"
        return None
    if prefix.startswith(b"OggS"):
        return "video/ogg"
    if prefix[:4] == b"RIFF" and prefix[8:12] == b"AVI ":
        return "video/x-msvideo"
    if prefix.startswith(_MPEG_PS_PACK_HEADER):
        return "video/mpeg"
    if len(prefix) >= 3 * _TS_PACKET_BYTES and all(prefix[i * _TS_PACKET_BYTES] == 0x47 for i in range(3)):
        return "video/mp2t"
    return None


def needs_faststart(prefix: bytes) -> bool:
    """True if this MP4/MOV prefix shows `mdat` before any `moov` box.

    Walks top-level box headers as far as the prefix reaches (the boxes themselves run on
    into the rest of the file, whose size is not known here).
    """
    for box in boxes_in(prefix, space_end=_UNKNOWN_FILE_END):
        if box.kind == b"moov":
            return False
        if box.kind == b"mdat":
            return True
    return False
