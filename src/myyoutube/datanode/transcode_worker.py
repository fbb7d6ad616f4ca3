"""One transcode job's child process: `python -m myyoutube.datanode.transcode_worker`.

Theory of operation
-------------------
The datanode runs every job in a process of its own, so FFmpeg's memory and CPU, and any
crash in a decoder fed a hostile file, stay out of the node's event loop. The process
gets the source path, the rung (media.Rung.to_dict() as JSON) and the target path on its
command line, caps its own address space (WORKER_MAX_ADDRESS_BYTES), and speaks one line
at a time on stdout:

    progress 0.42          as the source's packets pass (at most every 1 %)
    done {fragment index}  the rendition is complete at the target
    failed {sentence}      the source could not be made into the rung (exit status 1)

The parent kills it (SIGKILL, by pid) to cancel a job; the partial target is the parent's
to remove.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

# The worker's address space ceiling. Transcoding the largest accepted picture (8192x8192,
# media.MAX_PIXELS) peaks near 370 MiB resident (bench/README.md); virtual memory runs a
# few times higher with FFmpeg's and x264's threads. A decoder driven mad by a crafted
# file hits this ceiling and fails the job, instead of making the node swap.
WORKER_MAX_ADDRESS_BYTES = 4 * 1024 * 1024 * 1024


def main(argv: list[str]) -> int:
    source, rung_json, target = argv
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MAX_ADDRESS_BYTES, WORKER_MAX_ADDRESS_BYTES))
    from myyoutube import media  # after the cap: PyAV's libraries count against it too

    def progress(fraction: float) -> None:
        print(f"progress {fraction:.4f}", flush=True)

    try:
        rung = media.Rung.from_dict(json.loads(rung_json))
        rendition = media.transcode(Path(source), rung, Path(target), progress)
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
