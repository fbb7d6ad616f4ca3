"""Tests for myyoutube.cluster_supervision: which signals stop a running cluster."""

from __future__ import annotations

import signal
import subprocess

import pytest

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


def test_a_second_stop_signal_kills_every_role_at_once():
    """A first signal asks for the ordered stop; a second one (Ctrl-C again) kills every
    role process still running, by its process group, and exits 130; it used to be
    ignored. (test_cluster.py presses Ctrl-C twice on a real cluster.)"""
    supervisor = cluster_supervision.Supervisor()
    role = subprocess.Popen(["sleep", "60"], process_group=0)
    supervisor.spawned.append(role)
    try:
        supervisor.request_stop(signal.SIGINT)
        assert supervisor.stop_requested and role.poll() is None
        with pytest.raises(SystemExit) as exited:
            supervisor.request_stop(signal.SIGINT)
        assert exited.value.code == 130
        assert role.wait(5) == -signal.SIGKILL
    finally:
        role.kill()
        role.wait()
