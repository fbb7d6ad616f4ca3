"""Watching the roles `myyoutube-cluster` started, and stopping them in order.

Theory of operation
-------------------
SIGINT, SIGTERM or SIGHUP stops every child and exits 0, also while they are still
starting. The children run in process groups of their own, so a Ctrl-C reaches only this
command, which stops them in order (web, master, datanodes: the master's stop-time
snapshot needs the datanodes). A second stop signal (Ctrl-C again: the user will not wait
for a master's snapshot held up by a hung datanode, say) kills every role process still
running, by its process group, and exits 128 + the signal's number (130 for Ctrl-C).

Once every role runs, `supervise` looks at them every SUPERVISE_POLL_S until a signal
asks for the stop. A role that died (a crash, the OOM killer, a `kill -9`) is said and
started again on its own port and data: every role is built to come back (the master
replays its index, the others reconnect). Each may be restarted MAX_RESTARTS times per
RESTART_WINDOW_S (`RestartBudget`, pure); past that something is wrong that a restart
will not mend (a full disk, a broken file), and the master's or the web's death then ends
the command (exit 1), while a datanode is left down: the others serve its videos from
their replicas.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from myyoutube.launch import LaunchError, Role, await_role, spawn_role

# How often the supervisor checks that its children still run.
SUPERVISE_POLL_S = 0.5

# A role that died is started again at most this many times per window: enough for the
# rare crash (each restart costs seconds of service), few enough that a role that cannot
# stay up (a full disk, a broken config) is reported rather than restarted forever.
MAX_RESTARTS = 3
RESTART_WINDOW_S = 600.0

# Flags that make sense only for a role's first start: the master's --restore and
# --recover (with --expect-datanodes) rebuild an index that, once rebuilt, is its own.
_FIRST_START_ONLY = {"--restore": 1, "--recover": 0, "--expect-datanodes": 1}


class RestartBudget:
    """How many times each role may still be restarted (pure: time comes in as `now`)."""

    def __init__(self, limit: int = MAX_RESTARTS, window_s: float = RESTART_WINDOW_S) -> None:
        self._limit = limit
        self._window_s = window_s
        self._restarts: dict[str, collections.deque[float]] = {}

    def allow(self, role: str, now: float) -> bool:
        """Whether `role` may be restarted at `now`; counts the restart if so."""
        recent = self._restarts.setdefault(role, collections.deque(maxlen=self._limit))
        if len(recent) == self._limit and now - recent[0] < self._window_s:
            return False
        recent.append(now)
        return True


def restart_args(args: list[str], port: int) -> list[str]:
    """A role's arguments to start it again: on the port it had (one the OS picked is kept,
    so that the others find it where they left it), without first-start-only flags."""
    kept: list[str] = []
    skip = 0
    for index, arg in enumerate(args):
        if skip:
            skip -= 1
        elif arg in _FIRST_START_ONLY:
            skip = _FIRST_START_ONLY[arg]
        elif index > 0 and args[index - 1] == "--port":
            kept.append(str(port))
        else:
            kept.append(arg)
    return kept


class Supervisor:
    """The roles started so far (cluster.py starts them), watched until a stop is asked
    for, then stopped in order."""

    def __init__(self) -> None:
        self.roles: list[Role] = []
        # The master's process, arguments and log while it rebuilds its index (--recover).
        self.recovering: tuple[subprocess.Popen, list[str], Path] | None = None
        # Every role process started, also those still starting: what a second signal kills.
        self.spawned: list[subprocess.Popen] = []
        self.stop_requested = False
        self.restarts = RestartBudget()

    def request_stop(self, signum: int = signal.SIGINT, _frame: object = None) -> None:
        """SIGINT's, SIGTERM's and SIGHUP's handler, from before the first role starts: the start
        stops before the next role (never while one is being forked, when an exception
        would lose the child it made), or supervise() returns. A second signal kills
        everything still running at once (stop_now)."""
        if self.stop_requested:
            self.stop_now(signum)
        self.stop_requested = True

    def stop_now(self, signum: int) -> None:
        """Kill every role process still running, with whatever it started (each leads its
        own process group), say so and exit 128 + signum, the shell's code for a command
        ended by that signal. A process not yet waited for (poll() None) still owns its
        pid, so the group signalled is the role's and no other."""
        for process in self.spawned:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:  # reaped by a wait this signal interrupted
                    pass
        try:
            _say(
                "interrupted again: stopped every role at once, without waiting "
                "(the master's stop-time index snapshot may not have been taken)"
            )
        except OSError:  # a closed terminal (SIGHUP) has nowhere to print
            pass
        raise SystemExit(128 + signum)

    def supervise(self) -> int:
        """Restart roles that die, within their RestartBudget, until a signal (exit 0) or
        the master's or web's death past it (exit 1). A datanode past it is left down: the
        others keep serving every video from their replicas."""
        left_down = set()
        while not self.stop_requested:
            for index, role in enumerate(self.roles):
                if role.alive() or role.address in left_down:
                    continue
                where = (
                    f"{role.module} on port {role.port} exited ({_how(role.process)}; see {role.log_path})"
                )
                if self.restarts.allow(role.address, time.monotonic()):
                    _say(f"warning: {where}; starting it again")
                    self.roles[index] = self._restarted(role)
                    continue
                often = (
                    f"started again {MAX_RESTARTS} times within {RESTART_WINDOW_S / 60:.0f} minutes already"
                )
                if role.module != "myyoutube.datanode":
                    _say(f"error: {where}; {often}, so the service stops")
                    return 1
                _say(f"warning: {where}; {often}, so it is left down: serving from the other replicas")
                left_down.add(role.address)
            time.sleep(SUPERVISE_POLL_S)
        return 0

    def _restarted(self, role: Role) -> Role:
        """`role` started again on its port and data; the dead one if that failed (the
        next look finds it dead, and its budget decides)."""
        args = restart_args(role.args, role.port)
        process = spawn_role(role.module, args, role.log_path, own_process_group=True)
        # What a second Ctrl-C kills; the dead are dropped, or restarts would grow the list.
        self.spawned = [*(spawned for spawned in self.spawned if spawned.poll() is None), process]
        try:
            return await_role(
                process, role.module, args, role.log_path, interrupted=lambda: self.stop_requested
            )
        except LaunchError as exc:  # StartInterrupted too: the stop goes on as asked
            if not self.stop_requested:
                _say(f"warning: {role.module} on port {role.port} did not start again: {exc}")
            return dataclasses.replace(role, process=process)

    def stop(self) -> None:
        # Web first so no new requests arrive, then the master while the datanodes still
        # run, so its stop-time index snapshot reaches them; the datanodes last.
        order = ["myyoutube.web", "myyoutube.master", "myyoutube.datanode"]
        if self.recovering is not None and self.recovering[0].poll() is None:
            self.recovering[0].terminate()  # an interrupted recovery keeps no partial index
            self.recovering[0].wait()
        for role in sorted(self.roles, key=lambda role: order.index(role.module)):
            role.stop()


def _say(line: str) -> None:
    print(f"myyoutube-cluster: {line}", file=sys.stderr, flush=True)


def _how(process: subprocess.Popen) -> str:
    """How a role's process ended, in words."""
    code = process.returncode
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


def stop_signals() -> list[signal.Signals]:
    """The signals that stop the cluster: SIGINT, SIGTERM, and SIGHUP (the terminal
    closed: the roles, in process groups of their own, no longer get it from the
    terminal, and would outlive a command killed by it), unless SIGHUP is ignored, as
    `nohup myyoutube-cluster &` asks: the roles then inherit the ignoring."""
    hangup = [] if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN else [signal.SIGHUP]
    return [signal.SIGINT, signal.SIGTERM, *hangup]
