"""Tests for myyoutube.operator_commands: how `myyoutube status` words what /api/status says."""

from __future__ import annotations

from myyoutube.operator_commands import orphans_line, transcoding_line


def test_a_dead_datanodes_transcode_slots_are_not_counted():
    """With one of three datanodes dead, status said "3 slots on 3 datanodes" (the master
    keeps each node's slots as its last heartbeat said); the dead one's slots take no
    job, so the line counts the others only."""
    summary = {"jobs": {"queued": 1, "running": 0, "failed": 0}, "slots": {"a:1": 1, "b:1": 2, "c:1": 1}}
    assert transcoding_line(summary) == "transcoding: 1 queued, 0 running, 0 failed; 4 slots on 3 datanodes"
    assert transcoding_line(summary, dead={"b:1"}) == (
        "transcoding: 1 queued, 0 running, 0 failed; 2 slots on 2 datanodes"
    )
    # "1 slots on 1 datanode" before: the slots' noun took no number.
    assert transcoding_line(summary, dead={"b:1", "c:1"}).endswith("; 1 slot on 1 datanode")


def test_the_orphans_line_names_the_way_back_before_the_way_out():
    """After `--restore`, the orphans are the videos stored since the backup; the line
    said "restore the master's index, or purge-orphans if they are garbage", which an
    operator who had just restored read as "garbage". It names --recover, which brings
    them back, and says that purging is for good."""
    line = orphans_line(3)
    assert line.startswith("orphaned blobs: 3 (kept: ")
    assert "videos stored after the backup it was restored from" in line
    assert "--recover on an empty master folder brings those back" in line
    assert "`myyoutube admin purge-orphans` deletes them for good" in line
