"""Metadata sidecars beside a datanode's blobs: what each blob is, for a master that lost its index.

Theory of operation
-------------------
A blob's bytes say nothing of the video they belong to; only the master's index does.
So each blob may carry a sidecar, `{blob_id}.meta` beside `{blob_id}.blob`: a small JSON
object the master writes (master/sidecars.py says what is in it). The datanode does not
interpret it beyond three fields: `blob_id` (must name the blob it sits beside),
`version` (an integer) and its size (at most MAX_SIDECAR_BYTES). A sidecar replaces the
one on disk only if its version is at least as high, so an update delayed behind a newer
one (a lost heartbeat answer resent later) cannot roll a record back.

A sidecar is written to `.meta.part`, fsynced and renamed into place, so the file is
always a whole JSON object; a `.part` left by a crash is removed at start-up with the
blobs' own. When the master rebuilds its index it asks for every sidecar (ListSidecars)
and gets them in batches of at most SIDECARS_PER_BATCH entries and SIDECAR_BATCH_BYTES of
JSON, read from the disk in a worker thread one batch at a time.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

# A video's record is a title (200 characters), a description (5,000), a few names and
# numbers: under 32 KiB even in 4-byte UTF-8. Twice that leaves room for new fields
# while bounding what a master (or a bug) can make us store per blob.
MAX_SIDECAR_BYTES = 64 * 1024

# A batch is one frame's JSON meta: far below protocol.MAX_META_BYTES (8 MiB) whatever
# the sidecars hold, and a few milliseconds of decoding for the master.
SIDECARS_PER_BATCH = 500
SIDECAR_BATCH_BYTES = 1024 * 1024

SUFFIX = ".meta"


class BadSidecar(ValueError):
    """A sidecar the datanode will not store (wrong blob, no version, too large)."""


def encode(blob_id: str, sidecar: dict) -> bytes:
    """The sidecar as stored, or BadSidecar with the reason."""
    if sidecar.get("blob_id") != blob_id:
        raise BadSidecar(f"sidecar names blob {str(sidecar.get('blob_id'))[:40]!r}, not {blob_id}")
    if type(sidecar.get("version")) is not int:
        raise BadSidecar("sidecar has no integer version")
    data = json.dumps(sidecar, separators=(",", ":"), ensure_ascii=False).encode()
    if len(data) > MAX_SIDECAR_BYTES:
        raise BadSidecar(f"sidecar of {len(data)} bytes exceeds MAX_SIDECAR_BYTES")
    return data


def read(root: Path, blob_id: str) -> dict | None:
    """The stored sidecar of a blob, or None if it has none (or an unreadable one)."""
    try:
        with open(root / f"{blob_id}{SUFFIX}", "rb") as file:
            data = file.read(MAX_SIDECAR_BYTES + 1)
        sidecar = json.loads(data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("sidecar of %s is unreadable (%s); reported as missing", blob_id, exc)
        return None
    return sidecar if isinstance(sidecar, dict) and sidecar.get("blob_id") == blob_id else None


def write(root: Path, blob_id: str, data: bytes, version: int) -> bool:
    """Store an encoded sidecar unless the one on disk is the same or has a higher
    version; whether it was written. Blocking: run in a worker thread."""
    path = root / f"{blob_id}{SUFFIX}"
    current = read(root, blob_id)
    if current is not None and current == json.loads(data):
        # A repeat (pushed at commit, then in a heartbeat answer; an answer resent):
        # nothing new to make durable, so no write and no fsync.
        return False
    if current is not None and type(current.get("version")) is int and current["version"] > version:
        return False
    part = root / f"{blob_id}{SUFFIX}.part"
    try:
        with open(part, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(part, path)
    except BaseException:
        # Refused (a full disk): no part file is left beside the blob until a restart.
        part.unlink(missing_ok=True)
        raise
    return True


def remove(root: Path, blob_id: str) -> None:
    try:
        os.remove(root / f"{blob_id}{SUFFIX}")
    except FileNotFoundError:
        pass


def batches(root: Path, blob_ids: Iterable[str]) -> Iterator[tuple[list[dict], int]]:
    """Every sidecar of `blob_ids` in batches within the bounds above: (sidecars, how many
    of the batch's blobs have none). Blocking: call next() in a worker thread."""
    found: list[dict] = []
    without, size = 0, 0
    for blob_id in blob_ids:
        sidecar = read(root, blob_id)
        if sidecar is None:
            without += 1
            continue
        entry_bytes = len(json.dumps(sidecar, ensure_ascii=False).encode())
        if found and (len(found) == SIDECARS_PER_BATCH or size + entry_bytes > SIDECAR_BATCH_BYTES):
            yield found, without
            found, without, size = [], 0, 0
        found.append(sidecar)
        size += entry_bytes
    yield found, without
