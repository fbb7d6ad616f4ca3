"""The cluster's own messages: datanodes with the master, and blobs between nodes.

Theory of operation
-------------------
Part of the protocol's vocabulary (messages.py says how a class becomes a frame): the
datanode's control connection to the master (registration, heartbeats, block reports,
each answered by Commands), the master's blob requests on data connections, a
transcoding node's requests, write pipelines with their acknowledgements and recovery,
and the index's recovery and backup (sidecar listings from datanodes; BackupIndex, which
an admin asks through the web).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field

# Datanode <-> master, on the datanode's control connection. Every datanode frame
# (Register, Heartbeat, BlockReportChunk) is answered by one Commands.

# A blob held by a datanode, as a block report lists it: (blob_id, size in bytes).
BlobEntry = tuple[str, int]


@dataclass(frozen=True)
class Register:
    """Datanode -> master, first on its control connection: who it is and its space.
    `incarnation` is new each time the datanode process starts, so the master knows
    whether the reports it applied still describe this process's disk."""

    TYPE: typing.ClassVar[int] = 20
    node_id: str  # stable across restarts and address changes: the node's identity
    address: str  # where the master and peers reach it now
    capacity_bytes: int
    used_bytes: int
    incarnation: str


@dataclass(frozen=True)
class Heartbeat:
    """Datanode -> master, every interval: alive, space, and what changed on its disk
    since report `base_seq`, the last one the master acknowledged. `seq` numbers this
    report; it grows with every report (full or not) of one incarnation."""

    TYPE: typing.ClassVar[int] = 21
    capacity_bytes: int
    used_bytes: int
    seq: int
    base_seq: int
    added: list[BlobEntry]
    removed: list[str]
    corrupt: list[str]
    # Transcoding (master/jobs.py): how many jobs this node may run at once (its
    # --transcode-slots), the jobs running here with their progress (0..1; each renews
    # the job's lease) and jobs that failed since the last heartbeat, with the reason.
    transcode_slots: int = 0
    transcoding: list[tuple[str, float]] = field(default_factory=list)
    transcode_failures: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Commands:
    """Master -> datanode, answering each datanode frame: blobs to delete, the last report
    the master applied, whether it wants a full block report now, and the heartbeat
    interval the cluster runs at (configuration comes from the master)."""

    TYPE: typing.ClassVar[int] = 22
    delete_blobs: list[str]
    acked_seq: int
    full_report: bool
    heartbeat_s: float  # the master's interval, which every datanode adopts
    # Transcode jobs leased to this node (each a dict: job_id, video, source_blob,
    # source_size, rung, holds_source) and job ids it must stop (deleted, re-leased).
    transcode_jobs: list[dict] = field(default_factory=list)
    cancel_jobs: list[str] = field(default_factory=list)
    # Newer metadata sidecars for blobs the node holds (sidecars.py), at most
    # SIDECARS_PER_COMMANDS; the node keeps the highest version of each.
    sidecars: list[dict] = field(default_factory=list)
    # The master's --upload-expiry (0: not said): how long an idle resumable upload lives,
    # from which the node tells an open blob no session will ever end (open_blobs.py).
    upload_expiry_s: float = 0.0
    # The key this master signs read grants with (read_grants.py), hex; new at each start.
    read_key: str = ""


@dataclass(frozen=True)
class BlockReportChunk:
    """Datanode -> master: part of full report `seq`, which lists `total` blobs in all.
    Chunks follow each other until the one marked `final`."""

    TYPE: typing.ClassVar[int] = 24
    seq: int
    total: int
    blobs: list[BlobEntry]
    final: bool


# Master -> datanode, on a data connection.


@dataclass(frozen=True)
class WriteBlob:
    """Store a new blob; Chunk* and End follow, answered by End (size and sha256 stored).
    `sidecar` (if not empty) is the blob's metadata, published with it."""

    TYPE: typing.ClassVar[int] = 30
    blob_id: str
    sidecar: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ReadBlob:
    """Stream `length` bytes of a blob from `offset`, checksums verified: Chunk* then End."""

    TYPE: typing.ClassVar[int] = 31
    blob_id: str
    offset: int
    length: int
    # The master's permission (read_grants.py), which a reader other than the master
    # (the web front end) must show; empty from the master.
    grant: str = ""


@dataclass(frozen=True)
class DeleteBlob:
    """Remove a blob's files; answered by Ok even if it was already gone."""

    TYPE: typing.ClassVar[int] = 32
    blob_id: str


# Datanode -> master, on a connection of their own (codes 70-79): a transcoding node
# fetches a job's source it does not hold and stores the rendition it made.


@dataclass(frozen=True)
class FetchSource:
    """Stream the source video of a job leased to the asking node: answered by
    Ok({"size": n}), then Chunk* and End, or Error."""

    TYPE: typing.ClassVar[int] = 70
    job_id: str


@dataclass(frozen=True)
class StoreRendition:
    """Store the rendition a leased job made: `size` bytes follow as Chunk* and End once
    the master says Ok; `fragment_index` is its media.FragmentIndex.to_json(). Answered
    by Ok once replicated and committed (the job is then done), or Error."""

    TYPE: typing.ClassVar[int] = 71
    job_id: str
    size: int
    fragment_index: str


# Master or datanode -> datanode (codes 95-99): write pipelines and their recovery.


@dataclass(frozen=True)
class ChainWriteBlob:
    """Store a new blob and pass it on to `downstream` (datanode addresses, in order): a
    write pipeline. Answered by Ok {"chain": nodes in it}, then Chunk* and End, answered
    by Ok {"stored": nodes that stored it, "failed": {node: why}, "size", "sha256"}."""

    TYPE: typing.ClassVar[int] = 95
    blob_id: str
    downstream: list[str]


@dataclass(frozen=True)
class ChainResumeBlob:
    """Pipeline recovery (chain_acks.py): reopen this node's partial copy of a chain write
    at `offset` (bytes past it are dropped) and go on as ChainWriteBlob does, passing the
    resume on to `downstream`. Only a blob this node was chain-writing a short while ago
    (datanode/chain_writes.py keeps it for PARKED_KEEP_S) can be resumed; Error 'not_found' or
    'short' otherwise."""

    TYPE: typing.ClassVar[int] = 96
    blob_id: str
    offset: int
    downstream: list[str]


@dataclass(frozen=True)
class ChainAck:
    """Up a write pipeline, between its Ok and its final answer: every byte before
    `offset` is written by the sender and by every node behind it that is still in the
    chain; `lost` names the nodes dropped behind the sender so far (each the one that
    failed, not those cut off behind it)."""

    TYPE: typing.ClassVar[int] = 97
    offset: int
    lost: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AppendBlob:
    """Master -> datanode: append to an open (resumable) blob from `offset`; bytes it
    holds past `offset` were never confirmed and are dropped, and offset 0 creates it.
    After Ok: Chunk* then End(size=the new length); the node fsyncs and answers
    End(size, ''). Error 'short' if it holds fewer than `offset` bytes."""

    TYPE: typing.ClassVar[int] = 66
    blob_id: str
    offset: int


@dataclass(frozen=True)
class SealBlob:
    """Master -> datanode: publish an open blob of exactly `size` bytes as a complete one
    (idempotent); answered by End(size, sha256)."""

    TYPE: typing.ClassVar[int] = 67
    blob_id: str
    size: int


# Recovery (codes 80-89): rebuilding the index from what the datanodes hold.


@dataclass(frozen=True)
class ListSidecars:
    """Master -> datanode, on a data connection: send the metadata sidecar of every blob
    held, as SidecarBatch frames until the one marked `final`."""

    TYPE: typing.ClassVar[int] = 80


@dataclass(frozen=True)
class SidecarBatch:
    """Datanode -> master: some sidecars (each a dict, see master/sidecars.py), at most
    SIDECARS_PER_BATCH of them and SIDECAR_BATCH_BYTES of JSON; `held_without` counts blobs held
    without a sidecar among those this batch covers."""

    TYPE: typing.ClassVar[int] = 81
    sidecars: list[dict]
    held_without: int
    final: bool


@dataclass(frozen=True)
class PutSidecars:
    """Master -> datanode, on a data connection: store these sidecars of blobs held there
    (a video's, as it is committed: master/sidecars.py); answered by Ok."""

    TYPE: typing.ClassVar[int] = 83
    sidecars: list[dict]


@dataclass(frozen=True)
class BackupIndex:
    """Web -> master, for an admin: a consistent copy of the index, streamed as Chunk*
    then End (size and sha256)."""

    TYPE: typing.ClassVar[int] = 82
    user: str
