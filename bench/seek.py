"""Random seeks: many players asking small byte ranges of one video at once, ours vs nginx.

Usage: python bench/seek.py [--size-mib 256] [--seconds 20] [--warmup-s 20] [--clients 50]
                           [--datanodes 3]

Theory of operation
-------------------
A player that seeks, or fetches the next few hundred KiB after a seek, sends a short
`Range: bytes=a-b` request; many viewers doing that at once is the "random read" load of a
video site. The figure that matters is requests per second at a tolerable tail latency.

1. A --size-mib payload (a real tiny MP4 plus random bytes) is written to disk and mapped
   read-only, so every response body can be compared with a slice of the file.
2. A cluster (master, --datanodes datanodes, web; separate OS processes on 127.0.0.1) is
   started and the payload is uploaded (sha256 checked).
3. --clients workers share one aiohttp session whose connector holds --clients keep-alive
   connections. Each worker loops: pick a random offset (one seeded generator, so both
   targets get the same offsets), GET /stream/NAME with a RANGE_BYTES range, check `206`,
   `Content-Range` and the body against the file, record the latency. New requests stop
   after --seconds or after --max-requests, whichever comes first. The same load runs
   --warmup-s first, untimed (its answers are checked all the same): nginx's file is in
   the page cache, having just been written, while datanodes drop a blob from it once
   written (datanode/writeback.py), so without it the first seconds would compare a
   cold disk with a warm cache. With --warmup-s 0, the cold start is measured too.
4. The cluster is stopped (so it does not share the cores with the reference), and nginx
   (bench/nginx.py: sendfile, keep-alive, 2 workers) serves the same payload file; the same
   load runs against it.
5. Printed: requests/s, p50/p99 latency and the CPU each process used, for both; then the
   ratio ours/nginx. One Python client drives both targets on the same 2 cores, so the
   nginx figure is "nginx as this client can drive it" (the client near 100 % of a core
   says the client, not nginx, is the limit there): the ratio flatters us, never the reverse.

Exit status 1 if any response was not a `206` with exactly the right bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from benchlib import (
    MIB,
    BenchCluster,
    CpuMeter,
    make_video_file,
    mapped,
    mib,
    percentile_ms,
    print_table,
    require_loopback,
    run_context,
    upload_verified,
    video_name,
)
from nginx import Nginx

DEFAULT_SIZE_MIB = 256
DEFAULT_SECONDS = 20.0
# Enough untimed load for 50 clients to have read nearly every block of a 256 MiB video
# on each of its replicas (a block is 256 KiB, and the reads land at random: ~5 reads per
# block for 99 %). With 10 s here, ours still served ~7 % fewer ranges than with 30 s.
DEFAULT_WARMUP_S = 20.0
# Concurrent players; also the connector's connection limit (one keep-alive each).
DEFAULT_CLIENTS = 50
DEFAULT_DATANODES = 3
# What a player asks after a seek is typically tens to hundreds of KiB; 64 KiB is the unit
# issue 9 measures (HDFS's packet size too).
RANGE_BYTES = 64 * 1024
# Upper bound on requests per target: at the ~45k req/s nginx can answer here, 20 s is
# ~900k; this only stops a runaway loop (e.g. instant errors), the clock stops a normal run.
DEFAULT_MAX_REQUESTS = 2_000_000
# One request must not hang the run: a 64 KiB answer takes milliseconds, seconds under load.
REQUEST_TIMEOUT_S = 30.0
# Generous for uploading a few hundred MiB through five processes on a small machine.
UPLOAD_TIMEOUT_S = 1800.0


@dataclass
class Load:
    """What one target answered: latencies of correct answers, failures by kind."""

    latencies: list[float] = field(default_factory=list)
    failures: Counter = field(default_factory=Counter)
    issued: int = 0
    elapsed_s: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed_s


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=DEFAULT_SIZE_MIB, help="video size in MiB")
    parser.add_argument(
        "--seconds", type=float, default=DEFAULT_SECONDS, help="how long each target is loaded"
    )
    parser.add_argument(
        "--warmup-s", type=float, default=DEFAULT_WARMUP_S, help="untimed load before each target's"
    )
    parser.add_argument("--clients", type=int, default=DEFAULT_CLIENTS, help="concurrent clients")
    parser.add_argument("--datanodes", type=int, default=DEFAULT_DATANODES)
    parser.add_argument(
        "--tls", action="store_true", help="mutual TLS between the roles, as myyoutube-cluster runs them"
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=DEFAULT_MAX_REQUESTS,
        help="stop a target after this many requests even before --seconds",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed for the range offsets")
    return parser.parse_args()


async def one_range(session: aiohttp.ClientSession, url: str, payload, offset: int, load: Load) -> None:
    """GET one RANGE_BYTES range at `offset`; record its latency, or why it was wrong."""
    last = offset + RANGE_BYTES - 1
    started = time.perf_counter()
    try:
        async with session.get(url, headers={"Range": f"bytes={offset}-{last}"}) as response:
            body = await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        load.failures[type(exc).__name__] += 1
        return
    elapsed = time.perf_counter() - started
    if response.status != 206:
        load.failures[f"status {response.status}"] += 1
    elif response.headers.get("Content-Range") != f"bytes {offset}-{last}/{len(payload)}":
        load.failures["wrong Content-Range"] += 1
    elif body != payload[offset : last + 1]:
        load.failures["wrong bytes"] += 1
    else:
        load.latencies.append(elapsed)


async def warm_then_load(url: str, payload, args: argparse.Namespace, meter: CpuMeter) -> Load:
    """--warmup-s of the load untimed (its failures counted with the rest), then the
    measured load, with `meter` started for it."""
    failures: Counter[str] = Counter()
    if args.warmup_s > 0:
        # Other offsets than the measured ones: the warm-up must not pick what is read.
        failures = (await seek_load(url, payload, args, args.warmup_s, args.seed + 1)).failures
    meter.start()
    load = await seek_load(url, payload, args, args.seconds, args.seed)
    load.failures.update(failures)
    return load


async def seek_load(url: str, payload, args: argparse.Namespace, seconds: float, seed: int) -> Load:
    """--clients workers on --clients keep-alive connections, random ranges of `url`
    (offsets from `seed`), for `seconds`."""
    require_loopback(url)
    rng, load = random.Random(seed), Load()
    connector = aiohttp.TCPConnector(limit=args.clients)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        deadline = started + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline and load.issued < args.max_requests:
                load.issued += 1
                await one_range(session, url, payload, rng.randrange(len(payload) - RANGE_BYTES), load)

        await asyncio.gather(*(worker() for _ in range(args.clients)))
        load.elapsed_s = time.perf_counter() - started
    return load


async def measure_ours(root: Path, path: Path, sha256: str, payload, args) -> tuple[Load, CpuMeter]:
    """Start a cluster, upload the payload, load it; the cluster is stopped on return."""
    cluster = BenchCluster(root / "cluster", args.datanodes, tls=args.tls)
    try:
        cluster.start()
        name = video_name(len(payload))
        timeout = aiohttp.ClientTimeout(total=UPLOAD_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            print(f"cluster up at {cluster.url}; uploading {mib(len(payload))} ...", flush=True)
            await upload_verified(session, cluster.url, path, name, len(payload), sha256)
        print(
            f"ours: {args.clients} clients, random {RANGE_BYTES // 1024} KiB ranges, {args.seconds:g} s ..."
        )
        meter = CpuMeter({**cluster.roles(), "client": "self"})
        load = await warm_then_load(f"{cluster.url}/stream/{name}", payload, args, meter)
        return load, meter.stop()
    finally:
        cluster.stop()


async def measure_nginx(path: Path, payload, args: argparse.Namespace) -> tuple[Load, CpuMeter]:
    with Nginx([path]) as nginx:
        print(f"nginx: the same load on {nginx.url(path.name)} ...", flush=True)
        meter = CpuMeter({**nginx.pids(), "client": "self"})
        load = await warm_then_load(nginx.url(path.name), payload, args, meter)
        return load, meter.stop()


def report(results: dict[str, tuple[Load, CpuMeter]], size: int, args: argparse.Namespace) -> None:
    rows = []
    for target, (load, meter) in results.items():
        lat = load.latencies or [float("nan")]
        rows.append(
            [
                target,
                f"{len(load.latencies)}",
                f"{load.rate:.0f} req/s",
                f"{percentile_ms(lat, 0.5):.1f} ms",
                f"{percentile_ms(lat, 0.99):.1f} ms",
                f"{sum(load.failures.values())}",
                meter.summary(),
            ]
        )
    print_table(
        f"Random {RANGE_BYTES // 1024} KiB ranges of a {mib(size)} video, {args.clients} keep-alive "
        f"connections, {args.seconds:g} s per target",
        ["target", "answers", "rate", "p50", "p99", "failures", "CPU (100% = one core)"],
        rows,
    )
    ours, ref = results["ours (web /stream)"][0], results["nginx (same file)"][0]
    print(f"\nratio ours/nginx: {ours.rate / ref.rate:.3f} (req/s)")
    for target, (load, meter) in results.items():
        busy = meter.saturated()
        if busy:
            print(f"{target}: near a full core: {', '.join(busy)}")
        if load.failures:
            print(f"{target} failures: {dict(load.failures)}")


async def main() -> int:
    args = parse_args()
    print(f"run: {run_context()}", flush=True)
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(prefix="myyoutube-seek-") as tmp:
        root = Path(tmp)
        path = root / "payload.mp4"
        print(f"writing a {mib(size)} payload ...", flush=True)
        sha256 = make_video_file(path, size)
        with mapped(path) as payload:
            results = {
                "ours (web /stream)": await measure_ours(root, path, sha256, payload, args),
                "nginx (same file)": await measure_nginx(path, payload, args),
            }
    report(results, size, args)
    return 1 if any(load.failures for load, _ in results.values()) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
