"""Viewers seeking while the datanodes transcode: what a transcode costs the players.

Usage: python bench/seek_while_transcoding.py [--size-mib 64] [--seconds 15] [--warmup-s 10]
                                              [--clients 50] [--source-seconds 60]
                                              [--datanodes 3] [--slots 1]

Theory of operation
-------------------
Transcoding runs on the datanodes (issue 10), the machines that also serve every range a
player asks: on a small machine a transcode is the heaviest work there is, and it
competes with viewers for the same cores. This measures that competition, the same load
without and with it, on one cluster:

1. A cluster (master, --datanodes datanodes with --slots transcode slots each, web) is
   started. A --size-mib seek payload (bench/seek.py's: a tiny MP4 plus random bytes) is
   uploaded and its own transcode jobs (tiny) are let finish; the players read it from
   /original (/stream plays its rendition by then).
2. --warmup-s of seek.py's load (--clients players asking random 64 KiB ranges, every
   body checked) untimed, then --seconds of it measured: the viewers **alone**.
3. A --source-seconds 1080p30 H.264 source (bench/transcode.make_source) is uploaded; its
   rungs are transcode jobs, one per slot at a time. Once a datanode runs a worker, the
   same load is measured again for --seconds: the viewers **while transcoding**.
4. Printed: ranges/s, p50 and p99 of both loads; whether the transcode was still running
   when the second load ended (if not, the second figure is partly without it: lengthen
   --source-seconds); the time from the source's upload to its first rendition and to its
   whole ladder; the CPU each role used during each load (workers are the datanodes'
   children and are not counted in them).

Compare commits by running this script with each one's src/ on PYTHONPATH, back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import seek
from benchlib import (
    BenchCluster,
    CpuMeter,
    http_session,
    make_video_file,
    mapped,
    percentile_ms,
    print_table,
    run_context,
    upload,
    upload_verified,
    video_name,
)
from first_rendition import POLL_S, listed
from transcode import make_source

# How long the tiny payload's own jobs, or the source's first worker, may take to show.
SETTLE_TIMEOUT_S = 120.0
# How long the whole ladder may take; 60 s of 1080p takes minutes of a 2-core machine.
LADDER_TIMEOUT_S = 1800.0
# The source's record is looked at this often while it transcodes: coarse enough not to
# be a load of its own next to the players' (a /listar answer costs the web and master).
LADDER_POLL_S = 1.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=64, help="seek payload size in MiB")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each measured load")
    parser.add_argument("--warmup-s", type=float, default=10.0, help="untimed load before the first")
    parser.add_argument("--clients", type=int, default=seek.DEFAULT_CLIENTS, help="concurrent players")
    parser.add_argument("--max-requests", type=int, default=seek.DEFAULT_MAX_REQUESTS)
    parser.add_argument("--source-seconds", type=float, default=60.0, help="length of the 1080p source")
    parser.add_argument("--datanodes", type=int, default=3)
    parser.add_argument("--slots", type=int, default=1, help="--transcode-slots of each datanode")
    parser.add_argument("--seed", type=int, default=1, help="seed for the range offsets")
    return parser.parse_args()


async def state_of(url: str, name: str) -> dict:
    async with http_session() as session:
        return await listed(session, url, name)


async def settled(url: str, name: str) -> None:
    """Wait until the video's transcode jobs are done (at most SETTLE_TIMEOUT_S)."""
    deadline = time.perf_counter() + SETTLE_TIMEOUT_S
    while (await state_of(url, name))["state"] == "processing":
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{name}: still processing after {SETTLE_TIMEOUT_S:g} s")
        await asyncio.sleep(POLL_S)


async def ladder_times(url: str, name: str, started: float) -> tuple[float, float]:
    """Poll the video until its ladder is done: seconds from `started` to its first
    rendition and to the end. Every LADDER_POLL_S, so that the poll is no load of its own."""
    first = None
    while True:
        video = await state_of(url, name)
        now = time.perf_counter()
        if video["renditions"] and first is None:
            first = now - started
        if video["state"] != "processing":
            if video["state"] != "ready" or first is None:
                raise RuntimeError(f"{name} ended {video['state']}: {video['failure']}")
            return first, now - started
        if now - started > LADDER_TIMEOUT_S:
            raise RuntimeError(f"{name}: still processing after {LADDER_TIMEOUT_S:g} s")
        await asyncio.sleep(LADDER_POLL_S)


def datanodes(cluster: BenchCluster) -> list[int]:
    return [int(pid) for role, pid in cluster.roles().items() if role.startswith("datanode")]


def transcoding(cluster: BenchCluster) -> bool:
    """Whether any datanode has a child process (a transcode worker) right now."""
    for pid in datanodes(cluster):
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                if (task / "children").read_text().split():
                    return True
            except OSError:
                continue  # the thread ended between the listing and the read
    return False


def workers_cpu_s(cluster: BenchCluster) -> float:
    """CPU seconds of the datanodes' finished children (cutime + cstime)."""
    ticks = 0
    for pid in datanodes(cluster):
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        ticks += int(fields[13]) + int(fields[14])  # fields 16 and 17 of stat
    return ticks / os.sysconf("SC_CLK_TCK")


async def measured(label: str, cluster: BenchCluster, stream_url: str, payload, args, results: dict) -> None:
    meter = CpuMeter({**cluster.roles(), "client": "self"}).start()
    load = await seek.seek_load(stream_url, payload, args, args.seconds, args.seed)
    results[label] = (load, meter.stop())


async def measure(cluster: BenchCluster, payload_path: Path, sha256: str, source: Path, payload, args):
    """Both loads on one cluster: (each load with its CPU, notes on the transcode)."""
    url, results = cluster.url, {}
    name = video_name(len(payload))
    async with http_session() as session:
        await upload_verified(session, url, payload_path, name, len(payload), sha256)
    await settled(url, name)
    # /original: once transcoded, /stream serves the payload's rendition, not its bytes.
    stream_url = f"{url}/original/{name}"
    print(f"viewers alone: {args.warmup_s:g} s untimed, then {args.seconds:g} s ...", flush=True)
    await seek.seek_load(stream_url, payload, args, args.warmup_s, args.seed + 1)
    await measured("alone", cluster, stream_url, payload, args, results)

    print(f"the {args.source_seconds:g} s source uploaded, the same load while it transcodes ...", flush=True)
    started = time.perf_counter()
    async with http_session() as session:
        await upload(session, url, source, "source.mp4")
    ladder = asyncio.create_task(ladder_times(url, "source.mp4", started))
    while not transcoding(cluster):
        if time.perf_counter() - started > SETTLE_TIMEOUT_S:
            raise RuntimeError("no datanode started a transcode worker")
        await asyncio.sleep(POLL_S)
    await measured("while transcoding", cluster, stream_url, payload, args, results)
    still = transcoding(cluster)
    first, whole = await ladder
    notes = {
        "still transcoding when the second load ended": "yes" if still else "NO: lengthen --source-seconds",
        "source's first rendition, from its upload": f"{first:.1f} s",
        "source's whole ladder, from its upload": f"{whole:.1f} s",
        "transcode workers' CPU (the ladder, and the payload's tiny jobs)": f"{workers_cpu_s(cluster):.1f} s",
    }
    return results, notes


def main() -> int:
    args = parse_args()
    print(run_context())
    with tempfile.TemporaryDirectory(prefix="seek-transcoding-") as folder:
        root = Path(folder)
        source = root / "source.mp4"
        make_source(source, args.source_seconds)
        payload_path = root / "payload.mp4"
        sha256 = make_video_file(payload_path, args.size_mib * 2**20)
        cluster = BenchCluster(root / "cluster", args.datanodes, transcode_slots=args.slots).start()
        try:
            with mapped(payload_path) as payload:
                results, notes = asyncio.run(measure(cluster, payload_path, sha256, source, payload, args))
        finally:
            cluster.stop()
    for label, (load, _) in results.items():
        if not load.latencies:
            print(f"{label}: no correct answer; failures {dict(load.failures)}")
            return 1
    rows = [
        [
            label,
            f"{load.rate:.0f}",
            f"{percentile_ms(load.latencies, 0.5):.1f}",
            f"{percentile_ms(load.latencies, 0.99):.1f}",
            sum(load.failures.values()),
        ]
        for label, (load, _) in results.items()
    ]
    print_table(
        f"{args.clients} players, random 64 KiB ranges, {args.seconds:g} s each",
        ["load", "ranges/s", "p50 ms", "p99 ms", "failures"],
        rows,
    )
    for what, value in notes.items():
        print(f"{what}: {value}")
    for label, (load, meter) in results.items():
        print(f"CPU {label}: {meter.summary()}")
        if load.failures:
            print(f"FAILURES {label}: {dict(load.failures)}")
    return 1 if any(load.failures for load, _ in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
