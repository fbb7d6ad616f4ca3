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

from myyoutube.bulk_threads import BULK_NICE
from myyoutube.web import media_processes
from myyoutube.web.media_processes import MediaProcesses, StepCrashed, StepTimedOut


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
    cap = media_processes.WORKER_MAX_ADDRESS_BYTES
    assert soft_in_worker == (cap if hard == resource.RLIM_INFINITY else min(cap, hard))
    assert os.nice(0) == own_nice


async def test_a_step_past_its_bound_is_stopped_and_the_next_runs(work, monkeypatch):
    """A step that runs past MEDIA_STEP_TIMEOUT_S (a decoder looping on a crafted file)
    is refused in time, and its worker is killed rather than left burning a core; the
    next upload's step runs on fresh workers."""
    looping = await work.run(os.getpid)
    monkeypatch.setattr(media_processes, "MEDIA_STEP_TIMEOUT_S", 0.5)
    started = time.monotonic()
    with pytest.raises(StepTimedOut):
        await work.run(time.sleep, 60)
    assert time.monotonic() - started < 30
    assert gone_within(looping, 10), "the worker of the step that timed out is still running"
    assert await work.run(os.getpid) not in (looping, os.getpid())


async def test_a_crashing_file_is_refused_and_a_step_beside_it_still_succeeds(work):
    """A worker that dies (a decoder crashing on a crafted file) breaks every step its
    pool was running: the step that shared the pool is tried again and succeeds, while
    the step that kills its worker again is refused; the web itself lives on."""
    beside = asyncio.ensure_future(work.run(time.sleep, 1.0))
    await asyncio.sleep(0.5)  # both steps in the pool at once
    with pytest.raises(StepCrashed):
        await work.run(os._exit, 3)
    assert await beside is None
    assert await work.run(sum, [1, 2, 3]) == 6


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
