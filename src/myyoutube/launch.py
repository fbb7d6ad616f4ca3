"""Starting and stopping role processes: used by `myyoutube-cluster`, benchmarks and tests.

Theory of operation
-------------------
A role is started as `python -m myyoutube.<role> ...` with its stdout on a pipe and its
stderr (the log) appended to a file. `start_role` waits for the role's announcement line
`<prog> listening on HOST:PORT`, which also tells the real port when 0 was asked for. If
the process exits first, the last line of its log (the one-line reason every command
prints) becomes the `LaunchError`. A thread then drains stdout so the pipe never fills.
Processes are only ever signalled by their own pid.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# A role binds and (for a datanode) registers within a second on an idle machine; a busy
# CI machine importing aiohttp for the first time can take several.
STARTUP_TIMEOUT_S = 30.0
# On stop, SIGTERM first; a role that has not exited after this long gets SIGKILL.
STOP_TIMEOUT_S = 10.0

# How often a wait for a role's announcement checks whether it should give up: a Ctrl-C
# during a long start (an index recovery) is obeyed within this.
INTERRUPT_CHECK_S = 0.2

# Enough for any start-up chatter on stdout in one read.
ANNOUNCEMENT_READ_BYTES = 4096

_ANNOUNCEMENT = re.compile(r"listening on (\S+):(\d+)\s*$")


class LaunchError(Exception):
    pass


class StartInterrupted(LaunchError):
    """The wait for a role's announcement was interrupted (a signal asked to stop)."""


@dataclass
class Role:
    module: str
    args: list[str]
    log_path: Path
    process: subprocess.Popen
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int:
        """SIGTERM, then SIGKILL if it lingers; returns the exit status."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def kill(self) -> None:
        """SIGKILL: the crash a power cut or the OOM killer causes."""
        self.process.kill()
        self.process.wait()

    def pause(self) -> None:
        """SIGSTOP: a hung process that still holds its sockets open."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)


def last_log_line(log_path: Path) -> str:
    try:
        lines = log_path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


def start_role(module: str, args: list[str], log_path: Path, prefix: tuple[str, ...] = ()) -> Role:
    """Start `python -m <module> <args>` and wait for its announcement. `prefix` runs it
    through another command that execs it (e.g. `ip netns exec NS` in multi-host tests)."""
    return await_role(spawn_role(module, args, log_path, prefix), module, args, log_path)


def spawn_role(
    module: str,
    args: list[str],
    log_path: Path,
    prefix: tuple[str, ...] = (),
    own_process_group: bool = False,
) -> subprocess.Popen:
    """Start the role's process without waiting for it (await_role does). With
    `own_process_group` it is out of the starter's process group, so a Ctrl-C at the
    terminal (SIGINT to that whole group) reaches only the starter, which then stops its
    roles in its own order."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            [*prefix, sys.executable, "-m", module, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log_file,
            process_group=0 if own_process_group else None,
        )


def await_role(
    process: subprocess.Popen,
    module: str,
    args: list[str],
    log_path: Path,
    timeout_s: float = STARTUP_TIMEOUT_S,
    interrupted: Callable[[], bool] = lambda: False,
) -> Role:
    """Wait for a spawned role's announcement (killing it if it does not come; if
    `interrupted()` turns true meanwhile, StartInterrupted once it stopped cleanly)."""
    try:
        host, port = _await_announcement(process, module, log_path, timeout_s, interrupted)
    except StartInterrupted:
        # Asked to stop: as a started role is stopped, so that one busy with its start
        # (an index recovery) leaves no half-done work behind.
        Role(module, args, log_path, process, "", 0).stop()
        raise
    except BaseException:
        process.kill()
        process.wait()
        raise
    threading.Thread(target=_drain, args=(process.stdout,), daemon=True).start()
    return Role(module, args, log_path, process, host, port)


def _await_announcement(
    process: subprocess.Popen, module: str, log_path: Path, timeout_s: float, interrupted: Callable[[], bool]
) -> tuple[str, int]:
    """Read the role's stdout until its announcement line. Reads go straight to the pipe
    (os.read) and lines are split here: a buffered readline could take two lines in one
    read, and select() would then wait on an empty pipe for the second one."""
    stdout = process.stdout
    assert stdout is not None, "start_role opens the role's stdout as a pipe"
    deadline = time.monotonic() + timeout_s
    pending = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if interrupted():
                raise StartInterrupted(f"{module} was stopped while starting")
            if not selector.select(timeout=min(INTERRUPT_CHECK_S, max(0.0, deadline - time.monotonic()))):
                continue
            data = os.read(stdout.fileno(), ANNOUNCEMENT_READ_BYTES)
            if not data:  # EOF: the process is exiting
                process.wait()
                reason = last_log_line(log_path) or f"exit status {process.returncode}"
                raise LaunchError(f"{module} did not start: {reason}")
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                match = _ANNOUNCEMENT.search(line.decode(errors="replace"))
                if match:
                    return match.group(1), int(match.group(2))
    raise LaunchError(f"{module} did not announce itself within {timeout_s:g}s")


def _drain(pipe) -> None:
    for _ in iter(lambda: pipe.read(4096), b""):
        pass
