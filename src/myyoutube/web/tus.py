"""tus 1.0 headers: parsing and checking, no I/O (the handlers are in resumable.py).

Theory of operation
-------------------
tus (https://tus.io/protocols/resumable-upload, version 1.0.0) is HTTP with a handful of
headers: `POST /files/` with `Upload-Length` and `Upload-Metadata` creates an upload and
answers its URL; `HEAD` on it tells `Upload-Offset`; `PATCH` with `Upload-Offset` and an
`application/offset+octet-stream` body appends; `DELETE` terminates. Every request but
OPTIONS carries `Tus-Resumable: 1.0.0`, and every answer says it back.

This module turns headers into checked values or a `TusError` carrying the HTTP status
and a sentence for a person: 412 for another protocol version, 400 for a malformed or
missing header or a title an edit would refuse (videotext.clean_title), 415 for a PATCH body of another type, 409 for an offset that is not the
upload's (the client must ask with HEAD and resume from there), 413 for an upload past
the size limit or a PATCH past the declared length.
"""

from __future__ import annotations

import base64
import email.utils
import re
from collections.abc import Mapping
from dataclasses import dataclass

from myyoutube import permissions, videotext
from myyoutube.formatting import human_size

TUS_VERSION = "1.0.0"
EXTENSIONS = ("creation", "creation-with-upload", "termination", "expiration")
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"

# Upload-Metadata carries a file name, a chosen name, a title and a visibility, each short: anything past
# this is not ours (and base64 grows it by a third).
MAX_METADATA_CHARS = 8 * 1024

# A byte count in a header: digits only (no sign, no spaces). Up to 40 of them are read
# (a longer one is not a number any client sends), so that a count too large for a
# signed 64-bit integer is refused for what it is, past the size limit (413) or not the
# upload's offset (409), by the checks that follow, before it goes anywhere else.
_DIGITS = re.compile(r"[0-9]{1,40}\Z")
# A metadata key: tus says ASCII, no spaces or commas, and not empty.
_KEY = re.compile(r"[!-+\--~]+\Z")


class TusError(Exception):
    """A request tus says to refuse; `status` and the sentence go back to the client."""

    def __init__(self, status: int, sentence: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(sentence)
        self.status = status
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class Creation:
    """What a creation request asks for."""

    length: int
    filename: str
    # The name the uploader chose for the video ("" for the file's own name).
    name: str
    title: str
    visibility: str


def answer_headers(**more: str) -> dict[str, str]:
    """Headers every tus answer carries, plus `more` (Upload_Offset -> Upload-Offset)."""
    return {"Tus-Resumable": TUS_VERSION, **{k.replace("_", "-"): v for k, v in more.items()}}


def options_headers(max_size: int) -> dict[str, str]:
    """What OPTIONS tells a client about this server."""
    return answer_headers(
        Tus_Version=TUS_VERSION, Tus_Extension=",".join(EXTENSIONS), Tus_Max_Size=str(max_size)
    )


def check_version(headers: Mapping[str, str]) -> None:
    sent = headers.get("Tus-Resumable")
    if sent != TUS_VERSION:
        raise TusError(
            412,
            f"This server speaks tus {TUS_VERSION}; send the header Tus-Resumable: {TUS_VERSION}.",
            {"Tus-Version": TUS_VERSION},
        )


def byte_count(headers: Mapping[str, str], name: str) -> int:
    """A non-negative integer header; 400 if missing or malformed."""
    value = headers.get(name)
    if value is None:
        raise TusError(400, f"The {name} header is missing.")
    if not _DIGITS.match(value.strip()):
        raise TusError(400, f"The {name} header must be a whole number of bytes.")
    return int(value.strip())


def parse_metadata(value: str) -> dict[str, str]:
    """Upload-Metadata: comma-separated `key base64value` pairs (the value may be absent)."""
    if len(value) > MAX_METADATA_CHARS:
        raise TusError(400, f"Upload-Metadata is longer than {MAX_METADATA_CHARS // 1024} KiB.")
    metadata: dict[str, str] = {}
    for pair in value.split(","):
        if not pair.strip():
            continue
        key, _, encoded = pair.strip().partition(" ")
        if not _KEY.match(key) or key in metadata:
            raise TusError(400, "Upload-Metadata is malformed: each key once, in ASCII, without spaces.")
        try:
            metadata[key] = base64.b64decode(encoded.strip(), validate=True).decode()
        except ValueError:  # binascii.Error, UnicodeDecodeError, or a value not in ASCII at all
            raise TusError(400, f"Upload-Metadata's {key[:40]!r} is not base64 of UTF-8 text.") from None
    return metadata


def creation(headers: Mapping[str, str], limit: int) -> Creation:
    """A creation request's length and metadata, checked against the size `limit`."""
    check_version(headers)
    if "Upload-Defer-Length" in headers:
        raise TusError(400, "Send Upload-Length: this server needs the size when the upload begins.")
    length = byte_count(headers, "Upload-Length")
    if length > limit:
        raise TusError(413, f"The file is larger than the {human_size(limit)} upload limit.")
    if length == 0:
        raise TusError(400, "The file is empty; choose a video file.")
    metadata = parse_metadata(headers.get("Upload-Metadata", ""))
    filename = metadata.get("filename", "")
    if not filename and not metadata.get("name", "").strip():
        raise TusError(400, "Name the file: Upload-Metadata needs a 'filename'.")
    visibility = metadata.get("visibility", permissions.PUBLIC).strip()
    if visibility not in permissions.VISIBILITIES:
        raise TusError(400, f"The visibility must be one of {', '.join(permissions.VISIBILITIES)}.")
    title = metadata.get("title", "").strip()
    try:
        # The same rules as an edit of the title (PATCH /videos/NAME): a title stored
        # without them could not be kept by the next edit of the description.
        title = videotext.clean_title(title) if title else ""
    except videotext.BadText as exc:
        raise TusError(400, str(exc)) from None
    return Creation(length, filename, metadata.get("name", ""), title, visibility)


def has_body(headers: Mapping[str, str]) -> bool:
    """Whether a creation request carries its first bytes (Creation-With-Upload)."""
    return headers.get("Content-Type", "").split(";")[0].strip() == OFFSET_CONTENT_TYPE and (
        headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in headers
    )


def patch_offset(headers: Mapping[str, str]) -> int:
    """A PATCH request's Upload-Offset, once its version and body type are right."""
    check_version(headers)
    if headers.get("Content-Type", "").split(";")[0].strip() != OFFSET_CONTENT_TYPE:
        raise TusError(415, f"Send the bytes with Content-Type: {OFFSET_CONTENT_TYPE}.")
    return byte_count(headers, "Upload-Offset")


def check_patch(offset: int, upload: Mapping[str, int], content_length: int | None) -> None:
    """Refuse a PATCH at another offset than the upload's (409) or reaching past its
    declared length (413), before any byte is read."""
    if offset != upload["offset"]:
        raise TusError(
            409,
            f"The upload is at byte {upload['offset']}, not {offset}; ask with HEAD and resume from there.",
            {"Upload-Offset": str(upload["offset"])},
        )
    if content_length is not None and offset + content_length > upload["length"]:
        raise TusError(413, past_end(upload["length"]))


def past_end(length: int) -> str:
    return f"The upload was declared {length} bytes long; these bytes go past its end."


def expires(epoch_s: float) -> str:
    """An Upload-Expires value (an HTTP date, RFC 9110 §5.6.7)."""
    return email.utils.formatdate(epoch_s, usegmt=True)
