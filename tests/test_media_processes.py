"""Tests for myyoutube.web.media_processes: a new video's probe and poster run in child
processes of the web, below its priority, in bounded memory, stopped when they run too
long, and a worker that crashes refuses only the file that crashed it. Real spawned
processes; no cluster."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from myyoutube.bulk_threads import BULK_NICE, MEDIA_WORKER_MAX_ADDRESS_BYTES
from myyoutube.web import media_processes
from myyoutube.web.media_processes import MediaProcesses, StepCrashed, StepLost, StepTimedOut


def alive(pid: int) -> bool:
    """Whether process `pid` exists and has not exited (a zombie has)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
async def work():
    processes = MediaProcesses()
    yield processes
    processes.close()


@pytest.mark.skipif(sys.platform != "linux", reason="/proc, and the parent-death signal, are Linux's")
async def test_a_step_runs_in_a_child_process_below_the_webs_priority_in_bounded_memory(work):
    """A probe or poster (0.6 CPU-s for a 1080p poster) runs in a process of its own, so
    it never holds the interpreter's lock away from the event loop that serves viewers;
    that process is niced below the web and capped in memory, and the web keeps its own
    priority."""
    own_nice = os.nice(0)
    assert await work.run(os.getppid) == os.getpid()
    assert await work.run(os.nice, 0) == min(own_nice + BULK_NICE, 19)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft_in_worker, _ = await work.run(resource.getrlimit, resource.RLIMIT_AS)
    cap = MEDIA_WORKER_MAX_ADDRESS_BYTES
    assert soft_in_worker == (cap if hard == resource.RLIM_INFINITY else min(cap, hard))
    assert os.nice(0) == own_nice


def say_pid_then_sleep(path: str, seconds: float) -> None:
    """A step (run in a worker: importable by name) that says which process runs it."""
    Path(path).write_text(str(os.getpid()))
    time.sleep(seconds)


def pid_said(path: Path) -> int | None:
    text = path.read_text() if path.exists() else ""
    return int(text) if text else None


async def worker_of(path: Path) -> int:
    """The pid `say_pid_then_sleep` wrote to `path`, once it has."""
    for _ in range(600):
        if (pid := pid_said(path)) is not None:
            return pid
        await asyncio.sleep(0.05)
    raise AssertionError("the step never started")


async def test_a_step_past_its_bound_is_stopped_and_the_next_runs(work, monkeypatch, tmp_path):
    """A step that runs past MEDIA_STEP_TIMEOUT_S (a decoder looping on a crafted file)
    is refused in time, and its worker is killed rather than left burning a core; the
    next upload's step runs on fresh workers."""
    await work.run(os.getpid)  # the pool's workers started: the limit is the step's own
    original = media_processes.MEDIA_STEP_TIMEOUT_S
    monkeypatch.setattr(media_processes, "MEDIA_STEP_TIMEOUT_S", 1.0)
    started = time.monotonic()
    step = asyncio.ensure_future(work.run(say_pid_then_sleep, str(tmp_path / "pid"), 60))
    looping = await worker_of(tmp_path / "pid")
    with pytest.raises(StepTimedOut):
        await step
    assert time.monotonic() - started < 30
    assert gone_within(looping, 10), "the worker of the step that timed out is still running"
    monkeypatch.setattr(media_processes, "MEDIA_STEP_TIMEOUT_S", original)  # a new worker starts
    assert await work.run(os.getpid) not in (looping, os.getpid())


def pid_after(seconds: float) -> int:
    """A step that takes `seconds`, then says which process ran it."""
    time.sleep(seconds)
    return os.getpid()


async def test_steps_beyond_the_workers_wait_their_turn_without_losing_time(work, monkeypatch):
    """More uploads than workers at once: the steps past MEDIA_PROCESSES wait here for a
    worker, and their time limit counts from when they have one, so none of them is
    refused for time it spent waiting (2.5 s of work each, then 2.5 s of waiting for the
    second turn, against a limit of 4 s)."""
    workers = await asyncio.gather(
        *(work.run(pid_after, 0.5) for _ in range(media_processes.MEDIA_PROCESSES))
    )
    assert len(set(workers)) == media_processes.MEDIA_PROCESSES  # every worker started
    monkeypatch.setattr(media_processes, "MEDIA_STEP_TIMEOUT_S", 4.0)
    steps = 2 * media_processes.MEDIA_PROCESSES
    assert await asyncio.gather(*(work.run(time.sleep, 2.5) for _ in range(steps))) == [None] * steps


async def test_a_cancelled_step_is_stopped(work, tmp_path):
    """A step whose caller is cancelled (the web stopping) is stopped with it: nothing
    would time it out any more, and a crafted file could keep it looping."""
    step = asyncio.ensure_future(work.run(say_pid_then_sleep, str(tmp_path / "pid"), 60))
    worker = await worker_of(tmp_path / "pid")
    step.cancel()
    with pytest.raises(asyncio.CancelledError):
        await step
    assert gone_within(worker, 10), "the step of an upload that went away runs on"
    assert await work.run(sum, [1, 2]) == 3


async def test_a_crashing_file_is_refused_and_a_step_beside_it_still_succeeds(work):
    """A worker that crashes (a decoder on a crafted file: SIGABRT here) breaks every step
    its pool was running: the step that shared the pool is tried again and succeeds,
    while the step that crashes its worker again, alone, is refused; the web lives on."""
    beside = asyncio.ensure_future(work.run(time.sleep, 1.0))
    await asyncio.sleep(0.5)  # both steps in the pool at once
    with pytest.raises(StepCrashed):
        await work.run(os.abort)
    assert await beside is None
    assert await work.run(sum, [1, 2, 3]) == 6


async def test_a_worker_killed_from_outside_is_not_the_files_fault(work):
    """A worker killed by something else than its own crash (the kernel out of memory,
    an operator) says 'try again', not 'this file is harmful'."""
    with pytest.raises(StepLost):
        await work.run(signal.raise_signal, signal.SIGKILL)
    assert await work.run(sum, [1]) == 1


async def test_a_ctrl_c_at_the_terminal_is_left_to_the_web(work):
    """A Ctrl-C reaches every process of the terminal's group: the workers ignore it, so
    the web stops them itself instead of a worker's KeyboardInterrupt failing a step."""
    assert await work.run(signal.getsignal, signal.SIGINT) == signal.SIG_IGN


async def test_a_steps_own_refusal_reaches_the_caller_unchanged(work):
    """An exception the step raises itself (media's NotAVideo, say) is the caller's to
    turn into a 415, not a broken worker: the pool stays and the next step reuses it."""
    worker = await work.run(os.getpid)
    with pytest.raises(ValueError, match="invalid literal"):
        await work.run(int, "not a number")
    assert await work.run(os.getpid) == worker


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_workers_die_with_a_killed_web(tmp_path):
    """A web front end killed outright (SIGKILL: no cleanup runs) leaves no media worker
    behind: each asked the kernel to kill it when its parent dies."""
    script = textwrap.dedent(
        """
        import asyncio, os, signal
        from myyoutube.web.media_processes import MediaProcesses

        async def main():
            work = MediaProcesses()
            print(await work.run(os.getpid), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    web = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert web.returncode == -signal.SIGKILL, web.stderr
    worker = int(web.stdout.split()[0])
    assert gone_within(worker, 10), "a media worker outlived its killed web front end"
