"""Minimum transfer rates judged window by window (myyoutube.rates), without sockets."""

from __future__ import annotations

from myyoutube.rates import MinimumRate, RateWindow

FLOOR = MinimumRate(bytes_per_s=100, window_s=10)


def test_a_window_below_the_minimum_is_too_slow():
    """24 bytes every 5 s (the issue's slowloris upload) is far below 100 bytes/s."""
    window = RateWindow(FLOOR, total=0, now=0.0)
    assert window.due_at == 10.0
    assert window.too_slow(total=48, now=10.0)


def test_a_window_at_the_minimum_passes_and_the_next_is_judged_alone():
    """A window that averaged the minimum opens the next one; what came before does not
    count in it, so a client cannot bank a fast start and then trickle."""
    window = RateWindow(FLOOR, total=0, now=0.0)
    assert not window.too_slow(total=1000, now=10.0)
    assert window.due_at == 20.0
    assert window.moved_in_window(1500) == 500
    assert window.too_slow(total=1500, now=20.0)


def test_a_burst_then_a_pause_within_one_window_passes():
    """A player that takes its buffer's worth at once and then waits averages enough."""
    window = RateWindow(FLOOR, total=5000, now=100.0)
    assert not window.too_slow(total=6000, now=110.0)


def test_a_window_is_not_judged_before_it_ends():
    """Asked early (a timer fired ahead of time), the window stays open."""
    window = RateWindow(FLOOR, total=0, now=0.0)
    assert not window.too_slow(total=0, now=9.0)
    assert window.due_at == 10.0
