"""Tests for myyoutube.datanode.state: reconnect backoff, scrub pacing and scrub order."""

from __future__ import annotations

import pytest

from myyoutube.datanode.state import (
    BACKOFF_FIRST_S,
    BACKOFF_MAX_S,
    Backoff,
    ScrubSchedule,
    pace_delay_s,
)

DAY = 24 * 3600.0


# --- Backoff --------------------------------------------------------------------------------


def test_backoff_doubles_from_first_delay_up_to_the_cap():
    """Delays go 0.2, 0.4, 0.8, 1.6, 3.2 then stay at BACKOFF_MAX_S."""
    assert (BACKOFF_FIRST_S, BACKOFF_MAX_S) == (0.2, 5.0)
    backoff = Backoff()
    delays = [backoff.next_delay_s() for _ in range(8)]
    assert delays == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0])
    assert backoff.failures == 8


def test_backoff_success_resets_to_first_delay():
    """After succeeded(), the next delay is BACKOFF_FIRST_S again."""
    backoff = Backoff()
    for _ in range(5):
        backoff.next_delay_s()
    backoff.succeeded()
    assert backoff.failures == 0
    assert backoff.next_delay_s() == pytest.approx(BACKOFF_FIRST_S)


def test_backoff_stays_capped_after_many_failures():
    """After a hundred failures the delay is still exactly BACKOFF_MAX_S."""
    backoff = Backoff(failures=100)
    assert backoff.next_delay_s() == BACKOFF_MAX_S


def test_backoff_survives_a_very_long_outage():
    """Even after 2000 consecutive failures the delay is BACKOFF_MAX_S, not an exception."""
    backoff = Backoff(failures=2000)
    assert backoff.next_delay_s() == BACKOFF_MAX_S


# --- pace_delay_s ---------------------------------------------------------------------------


def test_pace_delay_waits_for_bytes_ahead_of_the_rate():
    """1 MB done after 0.25 s at 1 MB/s means waiting 0.75 s more."""
    assert pace_delay_s(1_000_000, started_at=10.0, now=10.25, bytes_per_s=1_000_000) == pytest.approx(0.75)


def test_pace_delay_is_zero_when_behind_the_rate():
    """Being slower than the rate never asks for a wait."""
    assert pace_delay_s(500_000, started_at=10.0, now=12.0, bytes_per_s=1_000_000) == 0.0


def test_pace_delay_is_zero_exactly_on_the_rate():
    """Being exactly on schedule asks for no wait."""
    assert pace_delay_s(2_000_000, started_at=0.0, now=2.0, bytes_per_s=1_000_000) == 0.0


def test_pace_delay_of_nothing_done_is_zero():
    """No bytes done yet means no wait."""
    assert pace_delay_s(0, started_at=5.0, now=5.0, bytes_per_s=10) == 0.0


# --- ScrubSchedule --------------------------------------------------------------------------


def test_scrub_never_verified_blobs_first_in_id_order():
    """Blobs never verified are due at once, lowest id first."""
    schedule = ScrubSchedule()
    schedule.verified("a", 100.0)
    assert schedule.next_blob({"a", "c", "b"}, now=100.0, interval_s=DAY) == "b"
    schedule.verified("b", 101.0)
    assert schedule.next_blob({"a", "c", "b"}, now=101.0, interval_s=DAY) == "c"


def test_scrub_nothing_due_until_interval_has_passed():
    """Once every blob is verified, nothing is due until the oldest verification is interval_s old."""
    schedule = ScrubSchedule()
    schedule.verified("a", 100.0)
    schedule.verified("b", 50.0)
    blobs = {"a", "b"}
    assert schedule.next_blob(blobs, now=50.0 + DAY - 1, interval_s=DAY) is None
    assert schedule.next_blob(blobs, now=50.0 + DAY, interval_s=DAY) == "b"
    schedule.verified("b", 50.0 + DAY)
    assert schedule.next_blob(blobs, now=100.0 + DAY - 0.5, interval_s=DAY) is None
    assert schedule.next_blob(blobs, now=100.0 + DAY, interval_s=DAY) == "a"


def test_scrub_picks_the_longest_ago_verified():
    """Among due blobs the one verified longest ago is next."""
    schedule = ScrubSchedule()
    for blob_id, at in {"x": 30.0, "y": 10.0, "z": 20.0}.items():
        schedule.verified(blob_id, at)
    assert schedule.next_blob({"x", "y", "z"}, now=1000.0, interval_s=60.0) == "y"


def test_scrub_forgets_blobs_that_are_gone():
    """A blob no longer stored is dropped from the schedule and never returned."""
    schedule = ScrubSchedule()
    schedule.verified("gone", 0.0)
    schedule.verified("kept", 5.0)
    assert schedule.next_blob({"kept"}, now=1000.0, interval_s=60.0) == "kept"
    assert schedule.verified_at == {"kept": 5.0}


def test_scrub_of_no_blobs_is_none():
    """With no blobs there is nothing to scrub, and old records are cleared."""
    schedule = ScrubSchedule()
    schedule.verified("old", 0.0)
    assert schedule.next_blob(set(), now=1000.0, interval_s=1.0) is None
    assert schedule.verified_at == {}
