"""Which of a datanode's block reports the master has applied (pure: no I/O, no clock).

Theory of operation
-------------------
A datanode tells the master what it holds in two ways, as HDFS does. A *full report*
lists every blob it holds: it is sent when the datanode starts, every
FULL_REPORT_INTERVAL_S, and whenever the master asks. It travels in BlockReportChunk
frames of at most REPORT_CHUNK_ENTRIES entries, which `ReportLedger.add_chunk` assembles;
the master reconciles the whole list once the final chunk is in. Every heartbeat in
between carries a *delta*: blobs added, removed and found corrupt since `base_seq`, the
last report the master acknowledged. The master's cost per heartbeat is then the size of
the change, not the size of the disk.

A delta is cumulative: the datanode keeps every change until a report carrying it is
acknowledged, so a delta or an acknowledgement lost with a connection is covered by the
next delta, and applying a delta on top of a later report the master already applied is
harmless (each entry is the blob's latest state, not an increment).

The `ReportLedger` of a node remembers which incarnation of the datanode process its
reports describe and the last report applied. A delta fits only on a full report of the
same incarnation, with `base_seq <= applied_seq < seq`. Anything else is a gap (the master
restarted and knows nothing of the node, or the node restarted and its disk may differ)
and the master asks for a full report rather than apply it. So does a node that comes back
after being declared dead: its copies may have been re-made elsewhere meanwhile, and only
a judgement of its whole list finds the surplus.

Every bound a peer could stretch is checked here: a chunk holds at most
REPORT_CHUNK_ENTRIES entries, a report declares at most MAX_REPORT_BLOBS, the master never
buffers more entries than the report declared, and a delta holds at most
REPORT_CHUNK_ENTRIES ids. Breaking one is a RemoteProtocolError, which closes only that
node's connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from myyoutube.protocol import (
    MAX_REPORT_BLOBS,
    REPORT_CHUNK_ENTRIES,
    BlockReportChunk,
    Heartbeat,
    RemoteProtocolError,
)


@dataclass(frozen=True)
class Delta:
    """What changed on a datanode's disk since report `base_seq`, as report `seq`."""

    seq: int
    base_seq: int
    added: dict[str, int] = field(default_factory=dict)  # blob id -> size now held
    removed: list[str] = field(default_factory=list)  # no longer held
    corrupt: list[str] = field(default_factory=list)  # held, but failed its checksums


def delta_of(beat: Heartbeat) -> Delta:
    """The delta a heartbeat carries; a protocol error if it carries more than one chunk's
    worth of entries (the datanode sends a full report instead)."""
    entries = len(beat.added) + len(beat.removed) + len(beat.corrupt)
    if entries > REPORT_CHUNK_ENTRIES:
        raise RemoteProtocolError(f"heartbeat carries {entries} changes, over {REPORT_CHUNK_ENTRIES}")
    return Delta(beat.seq, beat.base_seq, dict(beat.added), list(beat.removed), list(beat.corrupt))


@dataclass
class FullReportAssembly:
    """A full report whose chunks are still arriving."""

    seq: int
    total: int  # entries the report declared
    blobs: dict[str, int] = field(default_factory=dict)
    received: int = 0  # entries received so far (duplicates included)


@dataclass
class ReportLedger:
    """The master's record of one datanode's block reports."""

    incarnation: str = ""
    applied_seq: int = 0  # the last report applied (and acknowledged); 0: none
    has_full: bool = False  # a full report of this incarnation was applied
    full_wanted: bool = True  # ask the node for a full report
    full_reports: int = 0  # full reports applied from this incarnation
    assembly: FullReportAssembly | None = None

    def registered(self, incarnation: str, was_dead: bool) -> None:
        """The node (re)connected. Another incarnation starts over; a node back from the
        dead, or one this master has no full report of, is asked for a full report."""
        if incarnation != self.incarnation:
            self.incarnation, self.applied_seq, self.has_full, self.full_reports = incarnation, 0, False, 0
        self.assembly = None  # a report cut off with the old connection is void
        self.full_wanted = self.full_wanted or was_dead or not self.has_full

    @property
    def asks_full_report(self) -> bool:
        """Whether the next Commands asks for a full report (not while one is arriving)."""
        return self.full_wanted and self.assembly is None

    def delta_fits(self, delta: Delta) -> bool:
        """Whether `delta` applies on what this master holds; if not, a full report is
        wanted instead."""
        if self.assembly is not None:
            raise RemoteProtocolError(f"heartbeat in the middle of full report {self.assembly.seq}")
        fits = self.has_full and delta.base_seq <= self.applied_seq < delta.seq
        if not fits:
            self.full_wanted = True
        return fits

    def delta_applied(self, delta: Delta) -> None:
        self.applied_seq = delta.seq

    def add_chunk(self, chunk: BlockReportChunk) -> dict[str, int] | None:
        """Take one chunk of a full report: the whole report once `chunk.final`, else None."""
        assembly = self.assembly
        if assembly is None:
            if not 0 <= chunk.total <= MAX_REPORT_BLOBS:
                raise RemoteProtocolError(f"full report of {chunk.total} blobs, over {MAX_REPORT_BLOBS}")
            if chunk.seq <= self.applied_seq:
                raise RemoteProtocolError(f"full report {chunk.seq} after report {self.applied_seq}")
            assembly = self.assembly = FullReportAssembly(chunk.seq, chunk.total)
        elif (chunk.seq, chunk.total) != (assembly.seq, assembly.total):
            raise RemoteProtocolError(f"chunk of report {chunk.seq} inside full report {assembly.seq}")
        if len(chunk.blobs) > REPORT_CHUNK_ENTRIES:
            raise RemoteProtocolError(
                f"report chunk of {len(chunk.blobs)} entries, over {REPORT_CHUNK_ENTRIES}"
            )
        if not chunk.blobs and not chunk.final:
            raise RemoteProtocolError("empty report chunk before the final one")
        assembly.received += len(chunk.blobs)
        if assembly.received > assembly.total:
            raise RemoteProtocolError(
                f"full report {assembly.seq} lists more than the {assembly.total} it declared"
            )
        assembly.blobs.update(chunk.blobs)
        if not chunk.final:
            return None
        if assembly.received != assembly.total:
            raise RemoteProtocolError(
                f"full report {assembly.seq} ended after {assembly.received} of {assembly.total} entries"
            )
        self.assembly = None
        return assembly.blobs

    def full_applied(self, seq: int) -> None:
        self.applied_seq, self.has_full, self.full_wanted = seq, True, False
        self.full_reports += 1
