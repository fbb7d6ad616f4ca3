"""Web -> master messages that read a video's bytes.

Theory of operation
-------------------
Part of the protocol's vocabulary (messages.py says how a class becomes a frame). The web
front end reads a video in one of two ways. It asks the master where the part is
(LocateVideo, answered by VideoLocation with a grant, read_grants.py) and reads the bytes
from the datanodes itself, telling the master of a datanode that failed it (ReadFailed).
Or it has the master relay them (ReadVideo): started with --relay-reads, or when it
cannot reach the datanodes. A datanode on the web's own machine hands over a blob's files
instead (OpenLocalBlob, over a local socket: local_reads.py), so the web reads them from
the page cache itself.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass


@dataclass(frozen=True)
class ReadVideo:
    """Stat and read in one round trip: the master answers VideoInfo (the video's name,
    visibility, uploaded_at and parts: what answering HTTP needs), then streams up to
    `length` bytes of the video's `part` ('video' or 'poster') from `offset` as Chunk*
    then End, or Error at any point. `length` -1 means to the end; the range is clamped
    to the part's size (see read_plan.clamp), so an offset at or past the end reads nothing."""

    TYPE: typing.ClassVar[int] = 15
    name: str
    part: str
    offset: int
    length: int
    user: str


@dataclass(frozen=True)
class LocateVideo:
    """Where to read a video's `part` ('video', 'original', 'poster' or a rendition's
    height) from: answered by VideoLocation, or Error ('not_found' for a video the user
    may not see or a part it lacks)."""

    TYPE: typing.ClassVar[int] = 73
    name: str
    part: str
    user: str


@dataclass(frozen=True)
class VideoLocation:
    """The answer to LocateVideo: what a read needs of the video's record (as VideoInfo
    carries it, with the part's size in `parts`), the part's blob, the datanodes that
    hold it in the order to try them (healthy and not recently failed first; empty if
    none is running), the grant they want to see, and `stall_s`, how long a replica may
    fall silent midway before the reader moves on (the master's --stall-timeout: one
    setting for the cluster). The first `healthy` nodes are alive and have not failed a
    read lately, equally good: a reader that reuses the answer spreads its reads over
    them (location_cache.py). 0 from a master that predates the field: not reused."""

    TYPE: typing.ClassVar[int] = 74
    video: dict
    blob_id: str
    nodes: list[str]
    grant: str
    stall_s: float
    healthy: int = 0


@dataclass(frozen=True)
class ReadFailed:
    """A read the web made from datanode `node` failed or stalled (`why`), and it failed
    over: the master tries that node last for a while too, for every reader. Answered by Ok."""

    TYPE: typing.ClassVar[int] = 75
    node: str
    why: str


@dataclass(frozen=True)
class OpenLocalBlob:
    """Web -> a datanode on the same machine, over the datanode's local socket (never over
    TCP): open blob `blob_id`, which the `grant` lets the web read, for the web to read
    itself. Answered by Ok({"address": the datanode's advertised HOST:PORT, "size": the
    blob's bytes}) with two descriptors attached (the blob's file and its checksum file,
    both read-only), or Error ('other_node' if this datanode is not `node`)."""

    TYPE: typing.ClassVar[int] = 98
    node: str  # the HOST:PORT the web means: another host's node may share this one's port
    blob_id: str
    grant: str
