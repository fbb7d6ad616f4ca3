"""Web -> master messages of resumable (tus) uploads (codes 60-65).

Theory of operation
-------------------
Part of the protocol's vocabulary (messages.py says how a class becomes a frame). A
session holds an open blob on its replicas; its bytes grow by appends and become a video
at FinishUpload.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

# Web -> master: resumable uploads (tus, codes 60-65). A session holds an open blob on its
# replicas; its bytes grow by appends and become a video at FinishUpload. Every request
# names the session's owner: another account's session is answered as not found.


@dataclass(frozen=True)
class CreateUpload:
    """Open an upload session of `length` bytes: the name is reserved at once (Error
    'exists' if taken) and the quota checked. Ok({"upload": {...}}), the session."""

    TYPE: typing.ClassVar[int] = 60
    user: str
    name: str
    visibility: str
    title: str
    length: int


@dataclass(frozen=True)
class UploadStatus:
    """Ask for a session (its offset, length, name, expiry): Ok({"upload": {...}})."""

    TYPE: typing.ClassVar[int] = 61
    user: str
    upload_id: str


@dataclass(frozen=True)
class AppendUpload:
    """Append to a session at `offset` (its confirmed offset, else Error 'conflict'): once
    the master says Ok, Chunk* and End(size=bytes sent) follow; the answer is
    Ok({"upload": {...}}) once every live replica fsynced them."""

    TYPE: typing.ClassVar[int] = 62
    user: str
    upload_id: str
    offset: int


@dataclass(frozen=True)
class ReadUpload:
    """Read back a session's confirmed bytes: Ok({"size": n}), then Chunk* and End."""

    TYPE: typing.ClassVar[int] = 63
    user: str
    upload_id: str


@dataclass(frozen=True)
class FinishUpload:
    """Make a complete session a video of `content_type` (its blob is the original). After
    Ok, the uploader sends VideoDetails (optional) and End, as after PutVideo's chunks.
    Answered by VideoInfo."""

    TYPE: typing.ClassVar[int] = 64
    user: str
    upload_id: str
    content_type: str


@dataclass(frozen=True)
class TerminateUpload:
    """Drop a session and its partial replicas; Ok."""

    TYPE: typing.ClassVar[int] = 65
    user: str
    upload_id: str
