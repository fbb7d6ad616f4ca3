"""One viewer downloading a whole video as fast as it can, ours vs nginx: MB/s and first byte.

Usage: python bench/full_stream.py [--size-mib 512] [--repeats 3] [--datanodes 3] [--cold]

Theory of operation
-------------------
A full read is the data path with nothing else in the way: datanode disk read and CRC
check, the relay through the master and the web, one HTTP response. nginx sending the same
file with sendfile is the ceiling for one loopback stream to this client.

1. A --size-mib payload (a real tiny MP4 plus random bytes) is written to disk and mapped
   read-only.
2. A cluster (master, --datanodes datanodes, web; separate OS processes on 127.0.0.1) is
   started and the payload is uploaded (sha256 checked). nginx's file is in the page
   cache (the benchmark just wrote it), while a datanode drops what it writes from the
   cache (datanode/writeback.py); so that both serve from memory, every datanode's blob
   files are then read once, untimed. --cold skips that and measures what a viewer right
   after an upload gets: each read from a replica not read before comes from the disk.
3. GET /stream/NAME is read to the end --repeats times over one keep-alive connection.
   Each chunk is compared with the same slice of the mapped file as it arrives (a memcmp,
   far cheaper than hashing, so the check does not become the client's bottleneck). Timed
   per read: time to first byte (request sent -> first body bytes in hand) and the whole
   read; MB/s is decimal (10^6 bytes/s) over the whole read.
4. The cluster is stopped and nginx (bench/nginx.py) serves the same file; the same reads
   run against it.
5. Printed: the median over the repeats of MB/s and time to first byte, the CPU each process
   used, then the ratio ours/nginx. One Python client reads both: when it sits near 100 % of
   a core the nginx figure is the client's limit, not nginx's, and the ratio flatters us.

Exit status 1 if any read returned wrong bytes, a wrong length or a status other than 200.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
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
    make_video_file,
    mapped,
    mib,
    print_table,
    require_loopback,
    run_context,
    upload_verified,
    video_name,
)
from nginx import Nginx

DEFAULT_SIZE_MIB = 512
# One read of a few hundred MiB takes well under a second from nginx: take a median of a few.
DEFAULT_REPEATS = 3
DEFAULT_DATANODES = 3
# A read of 512 MiB at even 50 MB/s takes ~10 s; this only stops a stalled run.
READ_TIMEOUT_S = 600.0
# Generous for uploading a few hundred MiB through five processes on a small machine.
UPLOAD_TIMEOUT_S = 1800.0
# Reads that put the replicas into the page cache: large, so that the warming is quick.
WARM_READ_BYTES = 8 * MIB


@dataclass
class Read:
    ttfb_s: float  # request sent -> first body bytes received
    total_s: float  # request sent -> last byte received
    size: int

    @property
    def mb_per_s(self) -> float:
        return self.size / MB / self.total_s


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=DEFAULT_SIZE_MIB, help="video size in MiB")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="full reads per target")
    parser.add_argument("--datanodes", type=int, default=DEFAULT_DATANODES)
    parser.add_argument(
        "--tls", action="store_true", help="mutual TLS between the roles, as myyoutube-cluster runs them"
    )
    parser.add_argument(
        "--cold", action="store_true", help="do not read the replicas into the page cache before the reads"
    )
    return parser.parse_args()


def warm_replicas(cluster: BenchCluster) -> int:
    """Read every datanode's blob files once, so the page cache holds them as it holds
    nginx's file; the bytes read."""
    read = 0
    for number in range(cluster.datanode_count):
        for blob in sorted(cluster.datanode_folder(number).rglob("*.blob")):
            with blob.open("rb", buffering=0) as file:
                while data := file.read(WARM_READ_BYTES):
                    read += len(data)
    return read


async def full_read(session: aiohttp.ClientSession, url: str, payload) -> Read:
    """GET `url` to the end, checking every chunk against `payload` as it arrives."""
    received, ttfb = 0, None
    started = time.perf_counter()
    async with session.get(url) as response:
        if response.status != 200:
            raise RuntimeError(f"GET {url} answered {response.status}")
        async for data in response.content.iter_any():
            if ttfb is None:
                ttfb = time.perf_counter() - started
            if payload[received : received + len(data)] != data:
                raise RuntimeError(f"GET {url}: wrong bytes at offset {received}")
            received += len(data)
    total = time.perf_counter() - started
    if received != len(payload):
        raise RuntimeError(f"GET {url}: {received} bytes, expected {len(payload)}")
    return Read(ttfb or total, total, received)


async def reads(url: str, payload, repeats: int) -> list[Read]:
    """--repeats full reads over one keep-alive connection."""
    require_loopback(url)
    timeout = aiohttp.ClientTimeout(total=READ_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1), timeout=timeout) as session:
        return [await full_read(session, url, payload) for _ in range(repeats)]


async def measure_ours(root: Path, path: Path, sha256: str, payload, args) -> tuple[list[Read], CpuMeter]:
    """Start a cluster, upload the payload, read it back; the cluster is stopped on return."""
    cluster = BenchCluster(root / "cluster", args.datanodes, tls=args.tls)
    try:
        cluster.start()
        name = video_name(len(payload))
        timeout = aiohttp.ClientTimeout(total=UPLOAD_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            print(f"cluster up at {cluster.url}; uploading {mib(len(payload))} ...", flush=True)
            await upload_verified(session, cluster.url, path, name, len(payload), sha256)
        if not args.cold:
            print(f"reading the replicas into the page cache: {mib(warm_replicas(cluster))} ...", flush=True)
        print(f"ours: {args.repeats} full reads of /stream/{name} ...", flush=True)
        meter = CpuMeter({**cluster.roles(), "client": "self"}).start()
        done = await reads(f"{cluster.url}/stream/{name}", payload, args.repeats)
        return done, meter.stop()
    finally:
        cluster.stop()


async def measure_nginx(path: Path, payload, repeats: int) -> tuple[list[Read], CpuMeter]:
    with Nginx([path]) as nginx:
        print(f"nginx: {repeats} full reads of {nginx.url(path.name)} ...", flush=True)
        meter = CpuMeter({**nginx.pids(), "client": "self"}).start()
        done = await reads(nginx.url(path.name), payload, repeats)
        return done, meter.stop()


def report(results: dict[str, tuple[list[Read], CpuMeter]], size: int, repeats: int) -> None:
    rows = []
    for target, (done, meter) in results.items():
        rows.append(
            [
                target,
                f"{statistics.median(r.mb_per_s for r in done):.0f} MB/s",
                " ".join(f"{r.mb_per_s:.0f}" for r in done),
                f"{1000 * statistics.median(r.ttfb_s for r in done):.1f} ms",
                f"{statistics.median(r.total_s for r in done):.2f} s",
                meter.summary(),
            ]
        )
    print_table(
        f"Full read of a {mib(size)} video, one connection, median of {repeats}",
        ["target", "rate", "each read (MB/s)", "first byte", "whole read", "CPU (100% = one core)"],
        rows,
    )
    (ours, _), (ref, _) = results.values()
    ratio = statistics.median(r.mb_per_s for r in ours) / statistics.median(r.mb_per_s for r in ref)
    ttfb_ratio = statistics.median(r.ttfb_s for r in ours) / statistics.median(r.ttfb_s for r in ref)
    print(f"\nratio ours/nginx: {ratio:.3f} (MB/s); time to first byte ours/nginx: {ttfb_ratio:.1f}x")
    for target, (_, meter) in results.items():
        busy = meter.saturated()
        if busy:
            print(f"{target}: near a full core: {', '.join(busy)}")


async def main() -> None:
    args = parse_args()
    print(f"run: {run_context()}", flush=True)
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(prefix="myyoutube-fullstream-") as tmp:
        root = Path(tmp)
        path = root / "payload.mp4"
        print(f"writing a {mib(size)} payload ...", flush=True)
        sha256 = make_video_file(path, size)
        with mapped(path) as payload:
            results = {
                "ours (web /stream)": await measure_ours(root, path, sha256, payload, args),
                "nginx (same file)": await measure_nginx(path, payload, args.repeats),
            }
    report(results, size, args.repeats)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except RuntimeError as exc:  # wrong bytes, length or status: the figures mean nothing
        sys.exit(f"full_stream: {exc}")
