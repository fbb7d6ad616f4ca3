"""Tests for myyoutube.master.transfer: the sentences refusing an upload whose copies fall short (pure)."""

from __future__ import annotations

import pytest

from myyoutube.master.transfer import ReplicationFailed, needed, require_replicas


def test_copies_left_and_needed_are_counted_in_their_number():
    """A write that kept one copy said "Only 1 datanodes could keep storing the video", and
    a cluster needing one copy "1 are needed"; each count now takes its number."""
    assert (needed(1), needed(2)) == ("1 is needed", "2 are needed")
    with pytest.raises(ReplicationFailed) as refused:
        require_replicas("b" * 32, 1, 2, {"n1": "gone"})
    assert str(refused.value).startswith("Only 1 datanode could keep storing the video and 2 are needed;")
    require_replicas("b" * 32, 2, 2, {})  # enough left: no refusal
