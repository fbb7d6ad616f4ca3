"""Tests for tests/harness.py: the cluster of real processes the slow tests start."""

from __future__ import annotations

import pytest

from harness import Cluster
from myyoutube.launch import LaunchError


def test_a_cluster_that_fails_to_start_leaves_no_process_running(tmp_path):
    """When a role does not start (here every datanode is given a flag it refuses), the
    roles already running are stopped: a failed start never leaves a master behind."""
    cluster = Cluster(tmp_path, datanode_args=("--no-such-flag",))
    with pytest.raises(LaunchError):
        cluster.start()
    assert cluster.master is not None
    assert not cluster.master.alive()
