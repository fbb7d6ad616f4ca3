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
asks for the stop: the master's or the web's death ends the command (exit 1), while a
datanode that dies is reported and left down. Nothing is restarted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from myyoutube.launch import Role

# How often the supervisor checks that its children still run.
SUPERVISE_POLL_S = 0.5


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
            print(
                "myyoutube-cluster: interrupted again: stopped every role at once, without waiting "
                "(the master's stop-time index snapshot may not have been taken)",
                file=sys.stderr,
                flush=True,
            )
        except OSError:  # a closed terminal (SIGHUP) has nowhere to print
            pass
        raise SystemExit(128 + signum)

    def supervise(self) -> int:
        """Wait for a signal (exit 0) or the master's or web's death (exit 1).

        A datanode that dies is reported and left down: the others keep serving every
        video from their replicas, which is the point of having three.
        """
        reported = set()
        while not self.stop_requested:
            for role in self.roles:
                if role.alive() or role.port in reported:
                    continue
                where = f"{role.module} on port {role.port} exited (see {role.log_path})"
                if role.module != "myyoutube.datanode":
                    print(f"myyoutube-cluster: error: {where}", file=sys.stderr)
                    return 1
                print(
                    f"myyoutube-cluster: warning: {where}; serving from the other replicas",
                    file=sys.stderr,
                    flush=True,
                )
                reported.add(role.port)
            time.sleep(SUPERVISE_POLL_S)
        return 0

    def stop(self) -> None:
        # Web first so no new requests arrive, then the master while the datanodes still
        # run, so its stop-time index snapshot reaches them; the datanodes last.
        order = ["myyoutube.web", "myyoutube.master", "myyoutube.datanode"]
        if self.recovering is not None and self.recovering[0].poll() is None:
            self.recovering[0].terminate()  # an interrupted recovery keeps no partial index
            self.recovering[0].wait()
        for role in sorted(self.roles, key=lambda role: order.index(role.module)):
            role.stop()


def stop_signals() -> list[signal.Signals]:
    """The signals that stop the cluster: SIGINT, SIGTERM, and SIGHUP (the terminal
    closed: the roles, in process groups of their own, no longer get it from the
    terminal, and would outlive a command killed by it), unless SIGHUP is ignored, as
    `nohup myyoutube-cluster &` asks: the roles then inherit the ignoring."""
    hangup = [] if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN else [signal.SIGHUP]
    return [signal.SIGINT, signal.SIGTERM, *hangup]
