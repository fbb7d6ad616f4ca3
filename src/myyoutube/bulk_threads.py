"""Worker threads for bulk work, below their event loop's CPU priority.

Theory of operation
-------------------
A role's event loop serves people who wait on it: a viewer's range request, a page. Some
of a role's work is bulk that nobody watches byte by byte: an upload's copies into the
page cache and their hashing (batched_writes.py). That work runs in pools made by `pool`,
whose threads lower their own priority by BULK_NICE as they start, so on a busy machine
the kernel gives the cores to the event loops first and the bulk work what they leave;
on a quiet machine it runs as fast as before. Child processes do the same for themselves:
transcode workers (datanode/transcode_worker.py) and the web's probe and poster workers
(web/media_processes.py), which run Python long enough to hold the interpreter's lock
away from an event loop, where these threads mostly wait in C (hashing, copying).

On Linux a nice value belongs to a thread (its id is a "process" id to setpriority), so
the event loop keeps its own. Elsewhere the call would lower the whole process, event loop
included, so there the threads keep their priority.
"""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

# How far below the event loop's priority (in nice steps) bulk threads run: the kernel
# weighs nice 10 at 110 against 1024 for nice 0. On a busy two-core machine (50 seeking
# viewers, 5 uploaders) moving the uploads' copies into the page cache and their hashing
# this far down served ~8 % more ranges with a lower p99 (136-164 ms instead of 163-176 ms
# over three runs each), at the same upload rate.
BULK_NICE = 10

# The address space ceiling of a child process doing media work (a transcode job, a new
# video's probe and poster). Transcoding the largest accepted picture (8192x8192,
# media.MAX_PIXELS) peaks near 370 MiB resident (bench/README.md); virtual memory runs a
# few times higher with FFmpeg's and x264's threads. A decoder driven mad by a crafted
# file hits this ceiling and fails its work, instead of making the machine swap.
MEDIA_WORKER_MAX_ADDRESS_BYTES = 4 * 1024 * 1024 * 1024


def lower_this_threads_priority() -> None:
    """Run the calling thread BULK_NICE steps lower (Linux; a no-op elsewhere)."""
    # Relative to the thread's inherited value: an unprivileged process started under
    # `nice -n 15` may not set 10 (that is raising a priority), and a failed initializer
    # would break every task of the pool. 19 is the lowest priority there is. For the same
    # reason a refusal (a sandbox that forbids setpriority) leaves the thread as it is:
    # bulk work at the event loop's priority is slower for viewers, not wrong.
    if sys.platform == "linux":
        thread = threading.get_native_id()
        try:
            lower = min(os.getpriority(os.PRIO_PROCESS, thread) + BULK_NICE, 19)
            os.setpriority(os.PRIO_PROCESS, thread, lower)
        except OSError:
            pass


def pool(name: str, threads: int) -> ThreadPoolExecutor:
    """A pool of `threads` threads named after `name`, each below the event loop's priority."""
    assert threads > 0
    return ThreadPoolExecutor(threads, name, initializer=lower_this_threads_priority)
