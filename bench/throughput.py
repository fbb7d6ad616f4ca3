"""End-to-end throughput of a real MyYoutube cluster: upload, full stream, range requests.

Usage: python bench/throughput.py [--size-mib 1024] [--datanodes 3] [--ranges 200]

Theory of operation
-------------------
1. Baselines, measured first on the same machine in the same run so the cluster's figures
   have something to be compared with: sha256 over in-memory blocks (every upload byte is
   hashed by the master and once per replica by the datanodes), one copy of the payload
   written to disk and fsynced (a replica's write), and raw loopback TCP through one
   asyncio stream between two Python processes (one hop of the relay chain).
2. A cluster (master, N datanodes, web: separate OS processes on port 0 in a temporary
   directory) is started, and a payload file of --size-mib is written to disk.
3. Upload: the file is POSTed to /upload as multipart, streamed from disk. The wall time
   covers the whole request, i.e. until every replica fsynced and the master committed.
4. Stream: GET /stream/NAME is read to the end, sha256 verified on the fly.
5. Ranges: --ranges random 64 KiB `Range` requests spread over RANGE_CONNECTIONS
   concurrent connections, each checked against the local file; requests/s and latency.
6. Every process's peak RSS (VmHWM) is read before the cluster is stopped, and the CPU
   seconds each process spent in each phase are shown, which says where the time goes:
   a process near 100 % of one core is the bottleneck on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from benchlib import (
    MB,
    MIB,
    BenchCluster,
    CpuMeter,
    http_session,
    make_video_file,
    mib,
    peak_rss_bytes,
    print_table,
    upload,
    video_name,
)

DEFAULT_SIZE_MIB = 1024
DEFAULT_DATANODES = 3
DEFAULT_RANGE_REQUESTS = 200
RANGE_BYTES = 64 * 1024
RANGE_CONNECTIONS = 4

# Baseline loopback transfer and disk copy move data in pieces of this size.
BASELINE_PIECE_BYTES = 1 * MIB
# sha256 baseline: this many bytes of random blocks hashed in memory.
HASH_BASELINE_BYTES = 256 * MIB

# A sink process for the loopback baseline: accepts one connection, counts bytes to EOF,
# answers the count. It prints its port first, as a role would.
_SINK_CODE = """
import asyncio
async def main():
    done = asyncio.Event()
    async def handle(reader, writer):
        total = 0
        while data := await reader.read(1 << 20):
            total += len(data)
        writer.write(str(total).encode()); await writer.drain(); writer.close(); done.set()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await done.wait()
asyncio.run(main())
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=DEFAULT_SIZE_MIB, help="video size in MiB")
    parser.add_argument("--datanodes", type=int, default=DEFAULT_DATANODES)
    parser.add_argument(
        "--ranges",
        type=int,
        default=DEFAULT_RANGE_REQUESTS,
        help=f"how many random {RANGE_BYTES // 1024} KiB range requests",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed for the range offsets")
    return parser.parse_args()


# --- baselines --------------------------------------------------------------------------


def hash_baseline() -> float:
    """MB/s of sha256 over in-memory data."""
    block = os.urandom(BASELINE_PIECE_BYTES)
    digest, started = hashlib.sha256(), time.perf_counter()
    for _ in range(HASH_BASELINE_BYTES // len(block)):
        digest.update(block)
    return HASH_BASELINE_BYTES / MB / (time.perf_counter() - started)


def disk_baseline(source: Path, target: Path) -> float:
    """MB/s of copying `source` to `target` and fsyncing it (one replica's worth)."""
    started = time.perf_counter()
    with open(source, "rb") as reader, open(target, "wb") as writer:
        while piece := reader.read(BASELINE_PIECE_BYTES):
            writer.write(piece)
        writer.flush()
        os.fsync(writer.fileno())
    elapsed = time.perf_counter() - started
    size = target.stat().st_size
    target.unlink()
    return size / MB / elapsed


async def loopback_baseline(size_bytes: int) -> float:
    """MB/s of one asyncio TCP stream on loopback, from this process to a sink process."""
    sink = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _SINK_CODE, stdout=asyncio.subprocess.PIPE
    )
    try:
        port = int(await sink.stdout.readline())
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        piece = os.urandom(BASELINE_PIECE_BYTES)
        started = time.perf_counter()
        for _ in range(size_bytes // len(piece)):
            writer.write(piece)
            await writer.drain()
        writer.write_eof()
        received = int(await reader.read())
        elapsed = time.perf_counter() - started
        writer.close()
    finally:
        await asyncio.wait_for(sink.wait(), timeout=10)
    return received / MB / elapsed


# --- cluster phases ---------------------------------------------------------------------


async def timed_upload(session: aiohttp.ClientSession, url: str, path: Path, name: str, sha256: str) -> float:
    started = time.perf_counter()
    answer = await upload(session, url, path, name)
    elapsed = time.perf_counter() - started
    if answer["sha256"] != sha256 or answer["size"] != path.stat().st_size:
        raise RuntimeError(f"upload stored {answer}, expected sha256 {sha256}")
    return elapsed


async def timed_stream(session: aiohttp.ClientSession, url: str, name: str, size: int, sha256: str) -> float:
    """Read the whole video back, hashing as it arrives; the wall time."""
    digest, received = hashlib.sha256(), 0
    started = time.perf_counter()
    async with session.get(f"{url}/stream/{name}") as response:
        response.raise_for_status()
        async for data in response.content.iter_any():
            digest.update(data)
            received += len(data)
    elapsed = time.perf_counter() - started
    if received != size or digest.hexdigest() != sha256:
        raise RuntimeError(f"stream returned {received} bytes, sha256 {digest.hexdigest()}")
    return elapsed


async def timed_ranges(
    session: aiohttp.ClientSession, url: str, name: str, path: Path, requests: int, seed: int
) -> tuple[float, list[float]]:
    """Random RANGE_BYTES range requests on RANGE_CONNECTIONS workers: (wall s, latencies)."""
    rng = random.Random(seed)
    size = path.stat().st_size
    offsets = [rng.randrange(0, size - RANGE_BYTES) for _ in range(requests)]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for offset in offsets:
        queue.put_nowait(offset)
    latencies: list[float] = []
    fd = os.open(path, os.O_RDONLY)

    async def worker() -> None:
        while not queue.empty():
            offset = queue.get_nowait()
            headers = {"Range": f"bytes={offset}-{offset + RANGE_BYTES - 1}"}
            started = time.perf_counter()
            async with session.get(f"{url}/stream/{name}", headers=headers) as response:
                body = await response.read()
            latencies.append(time.perf_counter() - started)
            if response.status != 206 or body != os.pread(fd, RANGE_BYTES, offset):
                raise RuntimeError(f"range at {offset}: status {response.status}, wrong bytes")

    try:
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(RANGE_CONNECTIONS)))
        return time.perf_counter() - started, latencies
    finally:
        os.close(fd)


def percentile_ms(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- main -------------------------------------------------------------------------------


async def run_phases(cluster: BenchCluster, path: Path, sha256: str, args) -> dict:
    """Upload, stream and range phases; figures and per-phase CPU meters."""
    pids = {**cluster.roles(), "client": "self"}
    size, name, url = path.stat().st_size, video_name(path.stat().st_size), cluster.url
    results: dict = {"cpu": {}}
    async with http_session(RANGE_CONNECTIONS) as session:
        meter = CpuMeter(pids).start()
        results["upload_s"] = await timed_upload(session, url, path, name, sha256)
        results["cpu"]["upload"] = meter.stop()
        meter = CpuMeter(pids).start()
        results["stream_s"] = await timed_stream(session, url, name, size, sha256)
        results["cpu"]["stream"] = meter.stop()
        meter = CpuMeter(pids).start()
        results["ranges_s"], results["latencies"] = await timed_ranges(
            session, url, name, path, args.ranges, args.seed
        )
        results["cpu"]["ranges"] = meter.stop()
    results["rss"] = {role: peak_rss_bytes(pid) for role, pid in pids.items()}
    return results


def report(size: int, baselines: dict[str, float], results: dict, ranges: int) -> None:
    latencies = results["latencies"]
    rows = [[label, f"{value:.0f} MB/s", ""] for label, value in baselines.items()]
    rows += [
        [
            "upload (POST /upload: relayed, spooled, fsynced, probed)",
            f"{size / MB / results['upload_s']:.0f} MB/s",
            f"{results['upload_s']:.1f} s",
        ],
        [
            "stream (GET /stream, sha256 verified)",
            f"{size / MB / results['stream_s']:.0f} MB/s",
            f"{results['stream_s']:.1f} s",
        ],
        [
            f"ranges: {ranges} x {RANGE_BYTES // 1024} KiB, {RANGE_CONNECTIONS} connections",
            f"{ranges / results['ranges_s']:.0f} req/s",
            f"p50 {percentile_ms(latencies, 0.5):.0f} ms, p99 {percentile_ms(latencies, 0.99):.0f} ms,"
            f" mean {1000 * statistics.mean(latencies):.0f} ms",
        ],
    ]
    print_table(f"Throughput, {mib(size)} video", ["what", "rate", "detail"], rows)
    print_table(
        "Peak RSS (VmHWM) after the run",
        ["process", "peak RSS"],
        [[role, mib(rss)] for role, rss in results["rss"].items()],
    )
    print_table(
        "CPU seconds per phase (share of the phase's wall time; 100% = one core)",
        ["phase", "wall", "per process"],
        [[phase, f"{meter.wall_s:.1f} s", meter.summary()] for phase, meter in results["cpu"].items()],
    )


async def main() -> None:
    args = parse_args()
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(prefix="myyoutube-bench-") as tmp:
        root = Path(tmp)
        path = root / "payload.mp4"
        print(f"writing a {mib(size)} payload to {path} ...", flush=True)
        sha256 = make_video_file(path, size)
        print("measuring baselines ...", flush=True)
        baselines = {
            "baseline: sha256 in memory": hash_baseline(),
            "baseline: disk write + fsync, 1 copy": disk_baseline(path, root / "copy"),
            "baseline: loopback TCP, 1 asyncio stream": await loopback_baseline(size),
        }
        cluster = BenchCluster(root / "cluster", args.datanodes)
        try:
            cluster.start()
            print(f"cluster up at {cluster.url}; uploading, streaming, ranges ...", flush=True)
            results = await run_phases(cluster, path, sha256, args)
        finally:
            cluster.stop()
    report(size, baselines, results, args.ranges)


if __name__ == "__main__":
    asyncio.run(main())
