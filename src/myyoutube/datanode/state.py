"""Pure decisions of a datanode: reconnect backoff, scrub pacing, disk rescans and block
reports (no I/O, no clock).

Theory of operation
-------------------
The datanode's asyncio code asks these objects what to do and passes the time in as
`now`; they never sleep or read a clock, so tests drive them with plain numbers.

`BlockReports` is the datanode's half of the block-report protocol (the master's half is
master/reports.py). The store tells it every blob added or removed as it happens, the
scrubber and readers every blob found corrupt. Each heartbeat carries the changes not yet
acknowledged by the master, numbered by `seq`; the master's Commands answer acknowledges
the last report it applied, and only then are those changes forgotten. So a heartbeat
lost with its connection is covered by the next one, and a quiet heartbeat costs the same
whatever the disk holds. A full report (every blob, in chunks) goes at start-up, every
FULL_REPORT_INTERVAL_S, when the master asks, and when the changes piled up past
MAX_PENDING_CHANGES (the full report then says it all).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from myyoutube.protocol import REPORT_CHUNK_ENTRIES, BlockReportChunk, Heartbeat, RemoteProtocolError

# First retry after losing the master comes quickly (a restarted master is back within a
# second), later ones spread out so a long outage does not become a connection storm.
BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 5.0


@dataclass
class Backoff:
    """Exponential backoff between reconnection attempts, reset by a success."""

    failures: int = 0

    def succeeded(self) -> None:
        self.failures = 0

    def next_delay_s(self) -> float:
        # The exponent is capped: 2 ** 1024 no longer converts to a float.
        delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** min(self.failures, 32))
        self.failures += 1
        return delay


def pace_delay_s(bytes_done: int, started_at: float, now: float, bytes_per_s: int) -> float:
    """How long to wait so that `bytes_done` since `started_at` stays within the rate."""
    return max(0.0, started_at + bytes_done / bytes_per_s - now)


# The first line of a scrub-times file (scrubber.py), naming its format, so that a file of
# another format (a later release's) is ignored rather than misread.
SCRUB_TIMES_HEADER = "myyoutube-scrub-times 1"


@dataclass
class ScrubSchedule:
    """Which blob to verify next: the one verified longest ago (never-verified first),
    once its last verification is `interval_s` old. Times are seconds since the epoch, so
    that the schedule outlives the process (`encode`/`decode`)."""

    verified_at: dict[str, float] = field(default_factory=dict)

    def next_blob(self, blobs: set[str], now: float, interval_s: float) -> str | None:
        """The blob due for verification (last verified over `interval_s` ago), or None."""
        for gone in set(self.verified_at) - blobs:
            del self.verified_at[gone]
        if not blobs:
            return None
        oldest = min(blobs, key=lambda blob_id: (self.verified_at.get(blob_id, float("-inf")), blob_id))
        due = self.verified_at.get(oldest, float("-inf")) + interval_s <= now
        return oldest if due else None

    def verified(self, blob_id: str, now: float) -> None:
        self.verified_at[blob_id] = now

    def encode(self) -> bytes:
        """The verification times as the scrub-times file holds them: a header line, then
        one `blob_id seconds` line per blob (seconds since the epoch)."""
        lines = [SCRUB_TIMES_HEADER] + [f"{blob_id} {at!r}" for blob_id, at in self.verified_at.items()]
        return ("\n".join(lines) + "\n").encode()

    @classmethod
    def decode(cls, data: bytes, now: float) -> ScrubSchedule:
        """The schedule a scrub-times file holds. It is only a hint, so whatever cannot be
        read (another header, a damaged line, a time that is not a number) is skipped and
        those blobs are due at once, as if never verified. A time after `now` (the clock
        was set back) counts as `now`: kept as it is, the blob would wait for the clock."""
        lines = data.decode(errors="replace").splitlines()
        schedule = cls()
        if not lines or lines[0] != SCRUB_TIMES_HEADER:
            return schedule
        for line in lines[1:]:
            blob_id, _, at = line.partition(" ")
            try:
                seconds = float(at)
            except ValueError:
                continue
            if blob_id and math.isfinite(seconds):
                schedule.verified_at[blob_id] = min(seconds, now)
        return schedule


# --- disk rescans -----------------------------------------------------------------------------

# The disk is re-read this many heartbeats apart at most (30 s at the default 3 s), so a
# replica deleted by hand or a folder gone with its disk is noticed within seconds, as
# the heartbeats' deltas only know the changes this process made itself.
RESCAN_EVERY_HEARTBEATS = 10

# ...but a rescan may take at most this share of the time. Reading a folder of 200,000
# blobs costs ~1 s of CPU (one stat a file); every 30 s that would be 3 % of a core for
# a safety net, so a big disk is re-read less often (every ~100 s at 200,000 blobs, ~8
# minutes at 1,000,000), as HDFS's directory scanner is (every 6 hours).
RESCAN_MAX_SHARE = 0.01


def rescan_delay_s(heartbeat_s: float, last_rescan_s: float) -> float:
    """How long to wait before the next rescan, given how long the last one took."""
    return max(RESCAN_EVERY_HEARTBEATS * heartbeat_s, last_rescan_s / RESCAN_MAX_SHARE)


# --- block reports --------------------------------------------------------------------------

# A full block report this often, as HDFS does (dfs.blockreport.intervalMsec is 6 hours).
# Deltas keep the master current in between; the full report is the safety net that
# corrects any drift between the master's view and the disk (a surplus copy nobody
# re-examined, a change lost to a bug) within hours, for the cost of one list.
FULL_REPORT_INTERVAL_S = 6 * 3600.0

# The most changes kept for the next heartbeat. Past this (a burst of writes, or a master
# that has not acknowledged anything for a long while) one full report is cheaper and
# surer than a huge delta. Half a chunk: the rest of a heartbeat's room is for corrupt
# entries, which a full report does not carry.
MAX_PENDING_CHANGES = REPORT_CHUNK_ENTRIES // 2


class BlockReports:
    """What the next block report says and whether it is a full one."""

    def __init__(self, incarnation: str) -> None:
        self.incarnation = incarnation  # new for each start of the process
        self.seq = 0  # the number of the last report sent
        self.acked = 0  # the last report the master acknowledged
        self.full_wanted = True  # start-up: the first report lists everything
        self.full_at: float | None = None  # when the last acknowledged full report was taken
        self._full_sent: tuple[int, float] | None = None  # (seq, taken at) not yet acknowledged
        # blob id -> (size now, or None if removed; the first report it goes in)
        self._changes: dict[str, tuple[int | None, int]] = {}
        # blob id -> the last report that carried it, 0 if none did yet
        self._corrupt: dict[str, int] = {}

    # --- what happened on the disk -------------------------------------------------------

    def changed(self, blob_id: str, size: int | None) -> None:
        """The store added a blob of `size` bytes, or removed it (`size` None)."""
        self._changes[blob_id] = (size, self.seq + 1)
        if size is None:
            self._corrupt.pop(blob_id, None)  # gone: nothing left to repair here
        if len(self._changes) > MAX_PENDING_CHANGES:
            # The next full report is taken after every change so far: it says them all.
            self._changes.clear()
            self.full_wanted = True

    def found_corrupt(self, blob_id: str) -> None:
        """A blob failed its checksums (scrubber or read)."""
        self._corrupt.setdefault(blob_id, 0)

    @property
    def pending(self) -> int:
        """Changes and corrupt blobs the master has not acknowledged yet."""
        return len(self._changes) + len(self._corrupt)

    # --- what to send ------------------------------------------------------------------------

    def full_due(self, now: float) -> bool:
        """Whether the next report is a full one: wanted (start-up, the master asked, too
        many changes), one was cut off before its acknowledgement, or the interval passed."""
        interval_passed = self.full_at is not None and now - self.full_at >= FULL_REPORT_INTERVAL_S
        return self.full_wanted or self._full_sent is not None or interval_passed

    def heartbeat(self, capacity_bytes: int, used_bytes: int) -> Heartbeat:
        """The next heartbeat: every change since the last acknowledged report."""
        self.seq += 1
        added = [(b, size) for b, (size, _) in sorted(self._changes.items()) if size is not None]
        removed = [b for b, (size, _) in sorted(self._changes.items()) if size is None]
        room = REPORT_CHUNK_ENTRIES - len(self._changes)
        corrupt = sorted(self._corrupt)[:room]
        for blob_id in corrupt:
            self._corrupt[blob_id] = self.seq
        return Heartbeat(capacity_bytes, used_bytes, self.seq, self.acked, added, removed, corrupt)

    def start_full(self, now: float) -> int:
        """A full report is taken now: its number. Every change recorded so far is in it."""
        self.seq += 1
        self.full_wanted = False
        self._full_sent = (self.seq, now)
        return self.seq

    # --- what the master said ---------------------------------------------------------------

    def acknowledged(self, acked_seq: int, full_report: bool) -> None:
        """A Commands answer: the master applied reports up to `acked_seq`; `full_report`:
        it wants a full one."""
        if acked_seq > self.seq:
            raise RemoteProtocolError(
                f"master acknowledged report {acked_seq}, but the last sent is {self.seq}"
            )
        self.full_wanted = self.full_wanted or full_report
        if acked_seq <= self.acked:
            return
        self.acked = acked_seq
        # A full report that was taken after a change says it as well as a delta did.
        self._changes = {b: change for b, change in self._changes.items() if change[1] > acked_seq}
        self._corrupt = {b: sent for b, sent in self._corrupt.items() if not 0 < sent <= acked_seq}
        if self._full_sent is not None and self._full_sent[0] <= acked_seq:
            self.full_at, self._full_sent = self._full_sent[1], None


def full_report_chunks(seq: int, blobs: dict[str, int]) -> Iterator[BlockReportChunk]:
    """Full report `seq` of `blobs` (a snapshot: it must not change meanwhile) as chunks of
    at most REPORT_CHUNK_ENTRIES entries, the last one final; no blobs is one empty chunk."""
    entries = iter(blobs.items())
    total, sent = len(blobs), 0
    while True:
        chunk = list(itertools.islice(entries, REPORT_CHUNK_ENTRIES))
        sent += len(chunk)
        yield BlockReportChunk(seq=seq, total=total, blobs=chunk, final=sent == total)
        if sent == total:
            return
