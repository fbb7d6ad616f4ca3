"""Tests for myyoutube.cluster_supervision: which signals stop a running cluster."""

from __future__ import annotations

import signal

from myyoutube import cluster_supervision


def test_nohup_keeps_the_cluster_running_when_the_terminal_closes():
    """`nohup myyoutube-cluster &` ignores SIGHUP, and the roles inherit that: the cluster
    must not take SIGHUP over to stop them (it does stop on SIGHUP otherwise, as the roles,
    in process groups of their own, no longer get it from the terminal)."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        assert signal.SIGHUP not in cluster_supervision.stop_signals()
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        assert signal.SIGHUP in cluster_supervision.stop_signals()
    finally:
        signal.signal(signal.SIGHUP, previous)
