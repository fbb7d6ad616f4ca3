"""Minimum transfer rates: telling a slow client from a slowloris (pure; time passed in).

Theory of operation
-------------------
An idle deadline alone lets a client hold a slot for ever by moving a few bytes just
before each deadline (24 bytes every 5 s of upload, or reading 4 KB every 2 s of a
stream). So a transfer is judged window by window: at the end of each `window_s`, the
bytes it moved in that window must average at least `bytes_per_s`; below that it is too
slow and its connection is cut, freeing the slot. A window is long (tens of seconds) so
that a burst-and-pause pattern that still averages the minimum passes, as does a
player that fills its buffer and then reads at the video's bitrate.

The caller counts bytes (a running total) and asks `too_slow(total, now)` when `due_at`
comes; a window that passes opens the next one from there.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MinimumRate:
    """At least `bytes_per_s` on average over every `window_s`."""

    bytes_per_s: float
    window_s: float

    @property
    def bytes_per_window(self) -> float:
        return self.bytes_per_s * self.window_s


class RateWindow:
    """One transfer's current window: where it started and the running total then."""

    def __init__(self, minimum: MinimumRate, total: int, now: float) -> None:
        self.minimum = minimum
        self._start_total, self.due_at = total, now + minimum.window_s

    def moved_in_window(self, total: int) -> int:
        return total - self._start_total

    def too_slow(self, total: int, now: float) -> bool:
        """Judge the window ending now (call at or after `due_at`); True if it moved
        less than the minimum, otherwise the next window starts. Before `due_at` the
        window is still open: False."""
        if now < self.due_at:
            return False
        if self.moved_in_window(total) < self.minimum.bytes_per_window:
            return True
        self._start_total, self.due_at = total, now + self.minimum.window_s
        return False
