"""One transcode job's child process: `python -m myyoutube.datanode.transcode_worker`.

Theory of operation
-------------------
The datanode runs every job in a process of its own, so FFmpeg's memory and CPU, and any
crash in a decoder fed a hostile file, stay out of the node's event loop. The process
gets the source path, the rung (media.Rung.to_dict() as JSON) and the target path on its
command line, caps its own address space (bulk_threads.MEDIA_WORKER_MAX_ADDRESS_BYTES),
lowers its own CPU priority (bulk_threads.BULK_NICE: viewers first), and speaks one line
at a time on stdout:

    progress 0.42          as the source's packets pass (at most every 1 %), and
                           again at least every WORKER_ALIVE_EVERY_S while packets pass
    done {fragment index}  the rendition is complete at the target
    failed {sentence}      the source could not be made into the rung (exit status 1)

The parent kills it (SIGKILL, by pid) to cancel a job, or when it has said nothing for
its stall timeout (a decoder looping on a crafted file, a stopped process); the partial
target is the parent's to remove.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

from myyoutube.bulk_threads import BULK_NICE, MEDIA_WORKER_MAX_ADDRESS_BYTES

# A worker repeats its progress at least this often while it works, so that a long video
# whose 1 % steps take minutes still shows the parent it is alive; the parent's stall
# timeout (transcoder.WORKER_STALL_TIMEOUT_S) is many times longer.
WORKER_ALIVE_EVERY_S = 5.0


def main(argv: list[str]) -> int:
    source, rung_json, target = argv
    resource.setrlimit(resource.RLIMIT_AS, (MEDIA_WORKER_MAX_ADDRESS_BYTES, MEDIA_WORKER_MAX_ADDRESS_BYTES))
    # A transcode is the heaviest work in the cluster and nobody waits on it second by
    # second, while the same cores serve viewers whose players wait for every range: bulk
    # work (bulk_threads.py). At nice 10 a worker gets about a tenth of a core a viewer's
    # request also wants, and all of an idle one. Set before FFmpeg starts its threads,
    # which inherit it; relative, so a node started under `nice` keeps its workers below
    # itself (os.nice stops at 19, the lowest).
    os.nice(BULK_NICE)
    from myyoutube import media  # after the cap: PyAV's libraries count against it too

    last = {"fraction": 0.0, "said_at": time.monotonic()}

    def progress(fraction: float) -> None:
        last["fraction"], last["said_at"] = fraction, time.monotonic()
        print(f"progress {fraction:.4f}", flush=True)

    def cancelled() -> bool:
        # Checked before every packet: never cancels (the parent kills instead), but says
        # the worker is still going when it has been quiet for a while.
        if time.monotonic() - last["said_at"] >= WORKER_ALIVE_EVERY_S:
            progress(last["fraction"])
        return False

    progress(0.0)  # started: the parent's stall timer counts from here
    try:
        rung = media.Rung.from_dict(json.loads(rung_json))
        rendition = media.transcode(Path(source), rung, Path(target), progress, cancelled)
    except media.NotAVideo as exc:
        print(f"failed {exc}", flush=True)
        return 1
    except MemoryError:
        print("failed Transcoding this video needs more memory than a job may use.", flush=True)
        return 1
    print(f"done {rendition.index.to_json()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
