"""Tests for myyoutube.master.snapshots with a master in the test's own process (the
snapshots' round trip through real processes is in test_recovery.py)."""

from __future__ import annotations

import time

from harness import commit_one_video, in_process_master
from myyoutube.master import snapshots, status, transfer

NOW = 1_800_000_000.0


async def test_a_snapshot_that_could_not_be_stored_is_not_listed(tmp_path):
    """A snapshot whose copies no datanode took (they died, or are full) fails with a log
    line and leaves no row behind: /status does not name it as the last snapshot taken,
    and failing every interval does not add a row each time. Before, each failed try
    stayed listed until the next one that worked."""
    master = in_process_master(tmp_path)
    commit_one_video(master, NOW)
    try:
        for _ in range(2):
            await snapshots.take_logging_failure(master)
        assert master.index.recovery.snapshots() == []
        assert status.cluster_report(master, time.time())["last_snapshot_at"] is None
    finally:
        master.pools.close()
        master.index.close()


def test_a_failed_snapshot_is_said_in_its_own_sentence():
    """The log line of a snapshot the datanodes did not take repeated the upload's refusal,
    "index snapshot failed: Only 1 of the 3 datanodes with room could store the video and
    2 are needed; try again shortly (the master's log says why)": no video was stored,
    and the line was the master's log. It now says what failed and what it means."""
    refused = transfer.ReplicationFailed("Only 1 of the 3 datanodes with room could store the video")
    line = snapshots.failure_sentence(refused, 2)
    assert line == (
        "index snapshot failed: fewer than 2 datanodes could store it (the warnings above say why "
        "each refused); the previous snapshot stays the newest, the one a --recover would load"
    )
    full = transfer.ReplicationFailed("The storage is out of space", code="no_space")
    assert "(the datanodes are out of space)" in snapshots.failure_sentence(full, 1)
    assert "fewer than 1 datanode could" in snapshots.failure_sentence(full, 1)
    copy = snapshots.failure_sentence(OSError(28, "No space left on device"), 2)
    assert copy.startswith("index snapshot failed: the index could not be copied (")
