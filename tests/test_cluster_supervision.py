"""Tests for myyoutube.cluster_supervision: which signals stop a running cluster, and when a
role that died is started again (test_cluster.py kills a real master)."""

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


def test_a_role_is_restarted_a_few_times_per_window_then_no_more():
    """A role that died may be started again MAX_RESTARTS times within RESTART_WINDOW_S;
    the next death in that window is not restarted (something a restart will not mend),
    and once the first of those restarts is a window old, one more is allowed. Each
    role has its own budget."""
    budget = cluster_supervision.RestartBudget(limit=3, window_s=600.0)
    assert [budget.allow("master", now) for now in (0.0, 10.0, 20.0)] == [True, True, True]
    assert not budget.allow("master", 30.0)
    assert budget.allow("web", 30.0)
    assert budget.allow("master", 600.0)
    assert not budget.allow("master", 601.0)


def test_a_role_starts_again_on_its_own_port_without_first_start_flags():
    """A role started on any free port (--port 0) comes back on the port it got, where the
    others look for it; the master's --restore and --recover (which rebuild an index that
    is its own by then) are not given again."""
    args = ["--host", "127.0.0.1", "--port", "0", "--data-dir", "m", "--recover", "--expect-datanodes", "3"]
    assert cluster_supervision.restart_args(args, 41234) == [
        "--host",
        "127.0.0.1",
        "--port",
        "41234",
        "--data-dir",
        "m",
    ]
    restored = ["--port", "5000", "--restore", "/backups/index.db", "--private"]
    assert cluster_supervision.restart_args(restored, 5000) == ["--port", "5000", "--private"]
