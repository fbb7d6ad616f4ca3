"""Upload to first playable rendition, through a real cluster (issue 10).

Usage: python bench/first_rendition.py [--seconds 60] [--datanodes 3] [--slots 1]

Theory of operation
-------------------
bench/transcode.py times the ladder inside one process; this times what a user waits
for. The same synthetic 1080p30 H.264 + AAC source (bench/transcode.make_source,
`--seconds` long) is POSTed to /upload of a cluster started for the run (master,
`--datanodes` datanodes with `--transcode-slots`, web; OS processes on 127.0.0.1), then
/listar is polled every POLL_S until the video lists its first rendition, and until
every rung is done (`state` "ready"). Printed: the upload (until 201: replicated, probed,
committed with its jobs), the first rendition (what a phone can play through HLS), the
whole ladder, each as seconds from the start of the upload and as times realtime, and
the CPU each role process used. Each rung is one job; with several datanodes the rungs
run in parallel, one per slot.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from benchlib import BenchCluster, auth_headers, cpu_seconds, http_session, print_table, run_context, upload
from transcode import make_source

# How often the record is looked at: a fine grain against transcodes of seconds.
POLL_S = 0.1


async def listed(session, url: str, name: str) -> dict:
    async with session.get(f"{url}/listar", headers=auth_headers(url)) as response:
        videos = (await response.json())["videos"]
    return next(video for video in videos if video["name"] == name)


async def measure(cluster: BenchCluster, source: Path, seconds: float) -> list[list[object]]:
    name = "first-rendition.mp4"
    sha256 = hashlib.sha256(source.read_bytes()).hexdigest()
    async with http_session() as session:
        started = time.perf_counter()
        answer = await upload(session, cluster.url, source, name)
        uploaded = time.perf_counter() - started
        if answer["sha256"] != sha256:
            raise RuntimeError("the stored original is not the file sent")
        first = None
        while True:
            video = await listed(session, cluster.url, name)
            if video["renditions"] and first is None:
                first = time.perf_counter() - started, video["renditions"][0]["height"]
            if video["state"] != "processing":
                break
            await asyncio.sleep(POLL_S)
        whole = time.perf_counter() - started
    if video["state"] != "ready" or first is None:
        raise RuntimeError(f"the video ended {video['state']}: {video['failure']}")
    rungs = ", ".join(f"{r['height']}p" for r in video["renditions"])
    return [
        ["upload (201)", f"{uploaded:.1f}", f"{seconds / uploaded:.1f}x", ""],
        [f"first rendition ({first[1]}p)", f"{first[0]:.1f}", f"{seconds / first[0]:.1f}x", ""],
        ["every rung ready", f"{whole:.1f}", f"{seconds / whole:.2f}x", rungs],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="source length (default 60)")
    parser.add_argument("--datanodes", type=int, default=3)
    parser.add_argument("--slots", type=int, default=1, help="--transcode-slots of each datanode")
    args = parser.parse_args()
    print(run_context())
    with tempfile.TemporaryDirectory(prefix="first-rendition-") as folder:
        source = Path(folder) / "source.mp4"
        make_source(source, args.seconds)
        print(f"source: {args.seconds:g} s of 1080p30, {source.stat().st_size / 2**20:.1f} MiB")
        cluster = BenchCluster(Path(folder) / "cluster", args.datanodes, transcode_slots=args.slots).start()
        try:
            before = {role: cpu_seconds(pid) for role, pid in cluster.roles().items()}
            rows = asyncio.run(measure(cluster, source, args.seconds))
            cpu = {role: cpu_seconds(pid) - before[role] for role, pid in cluster.roles().items()}
        finally:
            cluster.stop()
    print_table("upload to playable, from the start of the upload", ["step", "s", "realtime", "rungs"], rows)
    print("role CPU seconds (workers not included): " + ", ".join(f"{r} {s:.1f}" for r, s in cpu.items()))


if __name__ == "__main__":
    main()
