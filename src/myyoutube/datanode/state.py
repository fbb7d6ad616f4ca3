"""Pure decisions of a datanode: reconnect backoff and scrub pacing (no I/O, no clock).

Theory of operation
-------------------
The datanode's asyncio code asks these objects what to do and passes the time in as
`now`; they never sleep or read a clock, so tests drive them with plain numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass
class ScrubSchedule:
    """Which blob to verify next: the one verified longest ago (never-verified first),
    once its last verification is `interval_s` old."""

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
