"""A new video's probe and poster, run in child processes of the web front end.

Theory of operation
-------------------
Every upload is probed (media.inspect) and given a poster (media.make_poster) before it
is committed: FFmpeg decoding a stranger's file, seconds of CPU for a large picture. In a
thread of the web, that work held the interpreter's lock in turns with the event loop, so
every viewer's range waited behind the decoder's Python steps (bench/mixed_load.py:
without posters, ~20 % more ranges answered with a lower p99), and a decoder that crashed
on a crafted file took the whole front end down with it. So the work runs in a pool of
MEDIA_PROCESSES spawned processes (`MediaProcesses`), started on the first upload and kept:

- at most MEDIA_PROCESSES steps are handed to the pool at once (more wait their turn
  here), so a step's time limit counts from when a worker is its own, and the pool never
  holds queued steps that a kill would cancel;
- each worker lowers its own priority by bulk_threads.BULK_NICE (viewers first), caps its
  address space (bulk_threads.MEDIA_WORKER_MAX_ADDRESS_BYTES: a poster decodes one frame,
  far below it), ignores the terminal's Ctrl-C (the web stops it), and dies with the web
  front end (Linux's parent-death signal), so no worker outlives a killed web;
- a step that runs past MEDIA_STEP_TIMEOUT_S (a decoder looping on a crafted file), or
  that is cancelled (the web stopping), has the pool's workers killed, since a process,
  unlike a thread, can be stopped; the timed-out upload is refused with a 503;
- a worker that died (a crash, the kill above) fails every step the pool was running:
  each is tried once more, alone in a pool of one worker, so an upload that merely shared
  the pool with a crashing file is stored. Only a file whose lone worker then dies of a
  crash signal (SIGSEGV, SIGABRT...) is refused as the file's fault (422); a worker
  killed otherwise (out of memory, a stop) is a 503 to try again.

Spawned, not forked: the web runs threads (bulk writes, the resolver) whose locks a fork
could copy held. A spawned worker imports what it runs (PyAV) once and stays warm.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import logging
import multiprocessing
import os
import resource
import signal
import sys
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from myyoutube.bulk_threads import BULK_NICE, MEDIA_WORKER_MAX_ADDRESS_BYTES

log = logging.getLogger(__name__)

# New videos probed and given a poster at once, per front end; more wait their turn
# (MediaProcesses.run). A poster decodes up to media.POSTER_MAX_FRAMES frames (0.6 CPU-s for a 1080p
# frame 2 s past its keyframe here), so this is also the cores they may take, below the
# viewers' priority.
MEDIA_PROCESSES = 2
# The longest one step (the probe, the poster) may take before the upload is refused.
# Both are bounded by media's own limits (frames decoded, pixels) to seconds of CPU, or a
# minute at a tenth of a core on a machine busy with viewers; past this a decoder is
# looping on a crafted file. Meanwhile the master hears keepalives (uploads.commit), or
# its UPLOAD_STALL_TIMEOUT_S would drop a busy machine's slow but healthy upload.
MEDIA_STEP_TIMEOUT_S = 600.0

# How long a step whose lone worker died waits for that worker's exit code, which tells a
# crash from a kill: the pool fails its steps before it reaps the dead worker, and a
# niced worker on a busy machine may still be on its way out.
EXIT_CODE_WAIT_S = 5.0
_EXIT_CODE_POLL_S = 0.05

_PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies


# How a worker that died of a decoder's own fault ends: the file crashes the video reader.
_CRASH_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE})


class StepTimedOut(Exception):
    """A media step ran past MEDIA_STEP_TIMEOUT_S; its worker was killed."""


class StepCrashed(Exception):
    """A media step's worker died, and crashed again with the step alone: the file kills
    decoders."""


class StepLost(Exception):
    """A media step's worker was killed from outside (out of memory, a stop): try again."""


class MediaProcesses:
    """The pool of media workers, started on first use and replaced when it breaks."""

    def __init__(self, processes: int = MEDIA_PROCESSES) -> None:
        assert processes > 0
        self._processes = processes
        self._pool: _Pool | None = None
        # Made on first use by each event loop (a test suite runs several in turn).
        self._turns: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """`function(*args)` in a worker (both picklable); what it returns or raises.
        StepTimedOut past MEDIA_STEP_TIMEOUT_S; StepCrashed or StepLost if its worker died
        on the shared pool and again alone."""
        async with self._turn():
            pool = self._started()
            try:
                return await _step(pool, function, args)
            except BrokenProcessPool:
                log.warning("a media worker died during %s; trying it once more, alone", _name(function))
            finally:
                if pool.broken_down:
                    self._discard(pool)
            # Alone on a pool of its own: a file that kills decoders now breaks only its own
            # step, never again the steps of other uploads retried beside it.
            alone = _new_pool(1)
            try:
                return await _step(alone, function, args)
            except BrokenProcessPool as exc:
                died_of = await _death_signals(_workers(alone))
                if _CRASH_SIGNALS.intersection(died_of):
                    raise StepCrashed(f"{_name(function)}: a media worker crashed twice") from exc
                raise StepLost(f"{_name(function)}: a media worker was killed (signals {died_of})") from exc
            finally:
                _kill(alone)

    def close(self) -> None:
        """Stop the workers (a step still running fails); a later `run` starts new ones."""
        if self._pool is not None:
            self._discard(self._pool)

    def _turn(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._turns is None or self._turns[0] is not loop:
            self._turns = loop, asyncio.Semaphore(self._processes)
        return self._turns[1]

    def _started(self) -> _Pool:
        if self._pool is None:
            self._pool = _new_pool(self._processes)
        return self._pool

    def _discard(self, pool: _Pool) -> None:
        """Kill `pool`'s workers and forget it (steps that shared it see it broken)."""
        if pool is self._pool:
            self._pool = None
        _kill(pool)


class _Pool(concurrent.futures.ProcessPoolExecutor):
    """A pool that says whether one of its steps found it broken, timed out or left it."""

    broken_down = False


def _new_pool(processes: int) -> _Pool:
    return _Pool(
        processes,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_started,
        initargs=(os.getpid(),),
    )


async def _step(pool: _Pool, function: Callable[..., Any], args: tuple) -> Any:
    try:
        async with asyncio.timeout(MEDIA_STEP_TIMEOUT_S):
            return await asyncio.get_running_loop().run_in_executor(pool, function, *args)
    except TimeoutError as exc:
        pool.broken_down = True  # its looping worker goes with it: nothing else stops it
        raise StepTimedOut(f"{_name(function)} ran past {MEDIA_STEP_TIMEOUT_S:g} s") from exc
    except (BrokenProcessPool, asyncio.CancelledError):
        # Cancelled (the web stopping; aiohttp does not cancel a handler whose client hung
        # up): its step would run on, unwatched by any timer, as long as a crafted file
        # makes it loop.
        pool.broken_down = True
        raise


async def _death_signals(workers: list[multiprocessing.process.BaseProcess]) -> list[int]:
    """The signals that ended `workers` (dead ones), once each has an exit code or
    EXIT_CODE_WAIT_S passed."""
    for _ in range(round(EXIT_CODE_WAIT_S / _EXIT_CODE_POLL_S)):
        if all(process.exitcode is not None for process in workers):
            break
        await asyncio.sleep(_EXIT_CODE_POLL_S)
    return [-code for process in workers if (code := process.exitcode or 0) < 0]


def _workers(pool: _Pool) -> list[multiprocessing.process.BaseProcess]:
    # ProcessPoolExecutor has no public way to reach its workers before Python 3.14
    # (kill_workers); its worker table, kept until shutdown, is the one handle on them.
    return list((getattr(pool, "_processes", None) or {}).values())


def _kill(pool: _Pool) -> None:
    # The pool's manager thread may be inside recv() of a result a killed worker had begun
    # to send (a poster takes several writes). That recv() ends only at end-of-file, which
    # never comes while this process holds a write end of the result pipe too, as the
    # executor's queue does without ever writing to it: closed here, the thread sees the
    # pool broken instead of waiting for ever (and holding up the interpreter's exit).
    writer = getattr(getattr(pool, "_result_queue", None), "_writer", None)
    if writer is not None:
        writer.close()
    for process in _workers(pool):
        process.kill()
    pool.shutdown(wait=False)


def _name(function: Callable[..., Any]) -> str:
    return getattr(function, "__name__", repr(function))


def _worker_started(parent_pid: int) -> None:
    """In each new worker: die with the web, below its priority, in bounded memory."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the web died before the signal was asked for
            os._exit(1)
    # The web decides when its workers stop (close(), or the parent-death signal): a
    # Ctrl-C at the terminal reaches the whole process group, and a worker's
    # KeyboardInterrupt would come back as a step's exception and escape the event loop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Relative, so a web started under `nice` keeps its workers below itself.
    os.nice(BULK_NICE)
    # Never above a ceiling the web was started under; a refusal leaves the worker
    # uncapped rather than broken (an initializer that raises breaks every step).
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    ceiling = MEDIA_WORKER_MAX_ADDRESS_BYTES
    cap = ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (OSError, ValueError) as exc:
        log.warning("a media worker runs without its memory ceiling: %s", exc)
