"""Upload throughput against the disk's bound: a durable 3-replica upload vs 3 x dd with fsync.

Usage: python bench/upload.py [--size-mib 512] [--repeats 3] [--datanodes 3]
                              [--writes fanout,pipeline] [--tls]

Theory of operation
-------------------
Every uploaded byte is written to disk and fsynced once per replica, and on this machine
all replicas share one disk. So however clever the data path is, an upload cannot beat the
time to write the file three times with fsync: that is the reference (what GFS calls "the
limit divided by 3"), measured in the same run because a virtual disk's speed drifts.

1. A --size-mib payload (a real tiny MP4 plus random bytes) is written and `sync`ed, so
   its writeback does not land in a measured phase.
2. Reference: `dd if=payload of=tmpfile bs=1M conv=fsync` DD_RUNS (3) times back to back,
   each copy deleted after it is timed: one replica's write + fsync, three times over. The
   single-copy rate is 3 x size over the three runs' total time; the bound is a third of it
   (size over the total time), i.e. what writing the three replicas one after another costs.
3. A cluster (master, --datanodes datanodes, web; separate OS processes on 127.0.0.1) is
   started, and the payload is POSTed to /upload as multipart, streamed from disk, --repeats
   times under fresh names (`sync` before each). Each is timed until the `201`, i.e. until
   every replica was fsynced, the web probed the file and the master committed; the stored
   size and sha256 are checked.
4. Printed: each dd run, the single-copy rate and the bound, each upload and their median,
   the CPU each process used during the uploads, and the ratio upload / bound. The upload
   also writes the web's spool copy and hashes every byte in several processes, so 1.0 is
   out of reach on one disk; the ratio says how much of the disk's budget the path wastes.
5. The master's egress per uploaded byte: what the master process passed to write() and
   send() during the uploads (/proc/PID/io wchar: its sockets to the datanodes, plus its
   small index and log writes) over the bytes uploaded. Fan-out sends each byte to every
   replica (about 3.0); a write pipeline (`--writes pipeline`, the master's default)
   sends it once, to the first datanode of the chain (about 1.0). With
   `--writes fanout,pipeline` both run, one after the other on fresh clusters, against
   the same dd reference.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from benchlib import (
    MB,
    MIB,
    BenchCluster,
    CpuMeter,
    bytes_written,
    make_video_file,
    mib,
    print_table,
    require_loopback,
    run_context,
    upload_verified,
    video_name,
)

DEFAULT_SIZE_MIB = 512
# Uploads per run; the median is reported (a virtual disk's speed swings between runs).
DEFAULT_REPEATS = 3
DEFAULT_DATANODES = 3
# One dd per replica of the default replication factor.
DD_RUNS = 3
# dd's block size: what `bs=1M` in issue 9's definition of the bound says.
DD_BLOCK = "1M"
# A dd of 512 MiB at even 20 MB/s takes ~30 s; this only stops a hung disk.
DD_TIMEOUT_S = 600.0
# How the master writes replicas -> its flags.
WRITE_MODES = {"fanout": ["--writes", "fanout"], "pipeline": ["--writes", "pipeline"]}
# Generous for uploading a few hundred MiB through five processes on a small machine.
UPLOAD_TIMEOUT_S = 1800.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=DEFAULT_SIZE_MIB, help="video size in MiB")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="uploads to time")
    parser.add_argument("--datanodes", type=int, default=DEFAULT_DATANODES)
    parser.add_argument(
        "--writes",
        default="pipeline",
        help="how the master writes replicas, one or more of fanout,pipeline (default pipeline, "
        "the master's own default)",
    )
    parser.add_argument("--tls", action="store_true", help="mutual TLS between the roles")
    args = parser.parse_args()
    args.writes = args.writes.split(",")
    if not set(args.writes) <= set(WRITE_MODES):
        parser.error(f"--writes takes {','.join(WRITE_MODES)}")
    return args


def dd_runs(payload: Path, scratch: Path) -> list[float]:
    """Seconds of each of DD_RUNS `dd ... conv=fsync` copies of `payload` into `scratch`."""
    seconds = []
    for _ in range(DD_RUNS):
        os.sync()
        started = time.perf_counter()
        subprocess.run(
            ["dd", f"if={payload}", f"of={scratch}", f"bs={DD_BLOCK}", "conv=fsync", "status=none"],
            check=True,
            timeout=DD_TIMEOUT_S,
        )
        seconds.append(time.perf_counter() - started)
        scratch.unlink()
    return seconds


@dataclass
class Uploads:
    """One write mode's uploads: seconds each, CPU, and what the master sent."""

    mode: str
    seconds: list[float]
    meter: CpuMeter
    master_bytes: int
    uploaded_bytes: int


async def uploads(
    root: Path, path: Path, size: int, sha256: str, args: argparse.Namespace, mode: str
) -> Uploads:
    """--repeats uploads to a fresh cluster writing replicas the `mode` way."""
    cluster = BenchCluster(
        root / f"cluster-{mode}", args.datanodes, tls=args.tls, master_args=WRITE_MODES[mode]
    )
    try:
        cluster.start()
        require_loopback(cluster.url)
        print(f"cluster up at {cluster.url} ({mode}); {args.repeats} uploads of {mib(size)} ...", flush=True)
        seconds = []
        timeout = aiohttp.ClientTimeout(total=UPLOAD_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            meter = CpuMeter({**cluster.roles(), "client": "self"}).start()
            master_before = bytes_written(cluster.master.process.pid)
            for _ in range(args.repeats):
                os.sync()
                name = video_name(size)
                seconds.append(await upload_verified(session, cluster.url, path, name, size, sha256))
            master_bytes = bytes_written(cluster.master.process.pid) - master_before
            return Uploads(mode, seconds, meter.stop(), master_bytes, size * args.repeats)
    finally:
        cluster.stop()


def report(size: int, dd_seconds: list[float], runs: list[Uploads]) -> None:
    single = DD_RUNS * size / MB / sum(dd_seconds)
    bound = single / DD_RUNS
    rows = [
        [f"dd run {n + 1} (write + fsync, 1 copy)", f"{size / MB / s:.0f} MB/s", f"{s:.2f} s"]
        for n, s in enumerate(dd_seconds)
    ]
    rows += [
        ["single dd (3 copies / their total time)", f"{single:.0f} MB/s", ""],
        ["bound = dd / 3", f"{bound:.0f} MB/s", f"{sum(dd_seconds):.2f} s for 3 copies"],
    ]
    for run in runs:
        rates = [size / MB / seconds for seconds in run.seconds]
        each = [f"{rate:.0f} MB/s in {s:.2f} s" for rate, s in zip(rates, run.seconds, strict=True)]
        rows += [
            [
                f"{run.mode} upload, median of {len(run.seconds)} (POST /upload until 201)",
                f"{statistics.median(rates):.0f} MB/s",
                f"ratio to bound {statistics.median(rates) / bound:.2f}; each: " + ", ".join(each),
            ],
            [
                f"{run.mode}: master egress per uploaded byte",
                f"{run.master_bytes / run.uploaded_bytes:.3f}",
                f"{mib(run.master_bytes)} written by the master for {mib(run.uploaded_bytes)} uploaded",
            ],
        ]
    print_table(f"Upload of a {mib(size)} video vs the disk bound", ["what", "rate", "detail"], rows)
    for run in runs:
        print(f"\nCPU during the {run.mode} uploads (100% = one core): {run.meter.summary()}")


async def main() -> None:
    args = parse_args()
    print(f"run: {run_context()}", flush=True)
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(prefix="myyoutube-upload-") as tmp:
        root = Path(tmp)
        path = root / "payload.mp4"
        print(f"writing a {mib(size)} payload ...", flush=True)
        sha256 = make_video_file(path, size)
        print(f"reference: {DD_RUNS} x dd bs={DD_BLOCK} conv=fsync ...", flush=True)
        dd_seconds = dd_runs(path, root / "dd-copy")
        runs = [await uploads(root, path, size, sha256, args, mode) for mode in args.writes]
    report(size, dd_seconds, runs)


if __name__ == "__main__":
    asyncio.run(main())
