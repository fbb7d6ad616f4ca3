"""Tests for myyoutube.read_failures: nodes that failed a read are tried last, for a while (pure)."""

from __future__ import annotations

import pytest

from myyoutube.read_failures import MAX_REMEMBERED, READ_FAILURE_MEMORY_S, RecentFailures

pytestmark = pytest.mark.fast


def test_a_node_that_just_failed_is_tried_last_then_in_its_turn_again():
    """Within READ_FAILURE_MEMORY_S a failed node goes after the others (still tried:
    it may be the only holder); after it, the given order stands again."""
    failures = RecentFailures()
    failures.failed("a:1", now=100.0)
    assert failures.tried_last(["a:1", "b:2", "c:3"], now=101.0) == ["b:2", "c:3", "a:1"]
    assert failures.tried_last(["a:1"], now=101.0) == ["a:1"]
    later = 100.0 + READ_FAILURE_MEMORY_S
    assert failures.tried_last(["a:1", "b:2", "c:3"], now=later) == ["a:1", "b:2", "c:3"]


def test_all_holders_failed_lately_only_when_each_did_and_there_are_some():
    """What sends a read straight to the master's relay: every holder named failed a read
    within READ_FAILURE_MEMORY_S. One good holder, an empty list, or the memory running
    out each lets the read try the datanodes again."""
    failures = RecentFailures()
    failures.failed("a:1", now=100.0)
    failures.failed("b:2", now=110.0)
    assert failures.all_recently(["a:1", "b:2"], now=111.0)
    assert not failures.all_recently(["a:1", "b:2", "c:3"], now=111.0)
    assert not failures.all_recently([], now=111.0)
    assert not failures.all_recently(["a:1", "b:2"], now=100.0 + READ_FAILURE_MEMORY_S)


def test_the_memory_is_bounded_and_keeps_the_recent_failures():
    """Addresses that come and go (ports new at each restart) never grow the memory
    past MAX_REMEMBERED; old entries make room, recent ones stay."""
    failures = RecentFailures()
    for port in range(MAX_REMEMBERED):
        failures.failed(f"old:{port}", now=0.0)
    failures.failed("new:1", now=READ_FAILURE_MEMORY_S + 1)
    failures.failed("new:2", now=READ_FAILURE_MEMORY_S + 2)
    assert len(failures._failed_at) == 2
    assert failures.recently("new:1", now=READ_FAILURE_MEMORY_S + 3)
