"""A busy minute: viewers seeking, uploaders uploading and a lister listing, all at once.

Usage: python bench/mixed_load.py [--seconds 60] [--viewers 50] [--uploaders 5]
                                  [--video-mib 64] [--upload-mib 8] [--idle-s 10]

Theory of operation
-------------------
Issue 9's mixed load: --viewers clients send random 64 KiB range requests of one video,
--uploaders clients upload --upload-mib videos one after another, and one lister asks
for /listar twice a second, for --seconds, against a real cluster on 127.0.0.1. What a
user feels is the time to the first byte of a range under that load (p50, p99). What an
operator worries about is what the load leaves behind: each role's resident memory before,
right after the load and after --idle-s of quiet (memory that stays up after the load is a
leak or an unbounded cache), the sockets left in TIME_WAIT (each internal connection
opened and closed per request leaves one), and how many connections the master accepted.

Printed: the latency table, each process's CPU during the load, the per-role memory
table, TIME_WAIT count and the master's connection counters. Exit status 1 if any range
answer had wrong bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from benchlib import (
    MIB,
    BenchCluster,
    CpuMeter,
    auth_headers,
    make_video_file,
    mapped,
    mib,
    percentile_ms,
    print_table,
    run_context,
    upload,
    upload_verified,
    video_name,
)

RANGE_BYTES = 64 * 1024
# The lister's pace: a home page open in a few browsers, refreshed now and then.
LIST_EVERY_S = 0.5


def rss_bytes(pid: int) -> int:
    """VmRSS: resident memory now."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS")


def time_wait_sockets(ports: dict[int, str]) -> dict[str, int]:
    """Sockets in TIME_WAIT on this machine, by the role listening at one of their ends
    (`ports`: listening port -> role), "other" for the rest (the benchmark is alone on
    loopback, but the machine may have its own)."""
    out = subprocess.run(["ss", "-Htan", "state", "time-wait"], capture_output=True, text=True, check=True)
    counts = dict.fromkeys([*sorted(set(ports.values())), "other"], 0)
    for line in out.stdout.splitlines():
        ends = [int(field.rsplit(":", 1)[1]) for field in line.split()[-2:]]
        counts[next((ports[port] for port in ends if port in ports), "other")] += 1
    return counts


async def viewer(session, url: str, data, size: int, rng: random.Random, until: float, ttfb: list, bad: list):
    while time.monotonic() < until:
        start = rng.randrange(0, size - RANGE_BYTES)
        headers = {"Range": f"bytes={start}-{start + RANGE_BYTES - 1}"}
        sent = time.perf_counter()
        async with session.get(url, headers=headers) as response:
            first = await response.content.readany()
            ttfb.append(time.perf_counter() - sent)
            body = first + await response.read()
        if response.status != 206 or body != data[start : start + RANGE_BYTES]:
            bad.append(response.status)


async def uploader(session, base: str, path: Path, until: float, done: list) -> None:
    while time.monotonic() < until:
        await upload(session, base, path, video_name(path.stat().st_size))
        done.append(1)


async def lister(session, base: str, until: float, latencies: list) -> None:
    while time.monotonic() < until:
        sent = time.perf_counter()
        async with session.get(f"{base}/listar") as response:
            await response.read()
        latencies.append(time.perf_counter() - sent)
        await asyncio.sleep(LIST_EVERY_S)


async def run_load(args, cluster: BenchCluster, video: Path, name: str, small: Path) -> dict:
    size = video.stat().st_size
    until = time.monotonic() + args.seconds
    ttfb: list[float] = []
    bad: list[int] = []
    uploads: list[int] = []
    lists: list[float] = []
    connector = aiohttp.TCPConnector(limit=args.viewers + args.uploaders + 1)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=600)
    ) as session:
        with mapped(video) as data:
            rng = random.Random(1)
            url = f"{cluster.url}/stream/{name}"
            await asyncio.gather(
                *(
                    viewer(session, url, data, size, random.Random(rng.random()), until, ttfb, bad)
                    for _ in range(args.viewers)
                ),
                *(uploader(session, cluster.url, small, until, uploads) for _ in range(args.uploaders)),
                lister(session, cluster.url, until, lists),
            )
        async with session.get(f"{cluster.url}/api/status", headers=auth_headers(cluster.url)) as response:
            counters = (await response.json())["counters"]
    return {"ttfb": ttfb, "bad": bad, "uploads": len(uploads), "lists": lists, "counters": counters}


async def main_async(args) -> int:
    print(run_context())
    with tempfile.TemporaryDirectory(prefix="mixed-load-") as folder:
        root = Path(folder)
        video, small = root / "video.mp4", root / "small.mp4"
        sha256 = make_video_file(video, args.video_mib * MIB)
        make_video_file(small, args.upload_mib * MIB)
        cluster = BenchCluster(root / "cluster", datanodes=3).start()
        try:
            name = video_name(video.stat().st_size)
            async with aiohttp.ClientSession() as session:
                await upload_verified(session, cluster.url, video, name, video.stat().st_size, sha256)
            pids = cluster.roles()
            before = {role: rss_bytes(pid) for role, pid in pids.items()}
            ports = cluster.listening_ports()
            waits_before = time_wait_sockets(ports)
            print(f"load: {args.viewers} viewers, {args.uploaders} uploaders, 1 lister, {args.seconds} s ...")
            meter = CpuMeter({**pids, "client": "self"}).start()
            result = await run_load(args, cluster, video, name, small)
            result["cpu"] = meter.stop().summary()
            after = {role: rss_bytes(pid) for role, pid in pids.items()}
            waits_after = time_wait_sockets(ports)
            await asyncio.sleep(args.idle_s)
            idle = {role: rss_bytes(pid) for role, pid in pids.items()}
        finally:
            cluster.stop()
    report(args, result, before, after, idle, waits_before, waits_after)
    return 1 if result["bad"] else 0


def report(args, result, before, after, idle, waits_before, waits_after) -> None:
    ttfb, lists = result["ttfb"], result["lists"]
    print_table(
        f"Mixed load for {args.seconds} s",
        ["what", "count", "p50", "p99"],
        [
            [
                "range TTFB",
                len(ttfb),
                f"{percentile_ms(ttfb, 0.5):.1f} ms",
                f"{percentile_ms(ttfb, 0.99):.1f} ms",
            ],
            [
                "/listar",
                len(lists),
                f"{percentile_ms(lists, 0.5):.1f} ms",
                f"{percentile_ms(lists, 0.99):.1f} ms",
            ],
            [f"uploads of {args.upload_mib} MiB", result["uploads"], "-", "-"],
            ["wrong range answers", len(result["bad"]), "-", "-"],
        ],
    )
    print(f"CPU during the load (100% = one core of {os.cpu_count()}): {result['cpu']}")
    print_table(
        "Resident memory per role",
        ["role", "before", "after load", f"after {args.idle_s:g} s idle"],
        [[role, mib(before[role]), mib(after[role]), mib(idle[role])] for role in before],
    )
    counters = result["counters"]
    print(
        "TIME_WAIT sockets, before -> after the load, by the listening port at one end: "
        + ", ".join(f"{end} {waits_before[end]} -> {waits_after[end]}" for end in waits_after)
    )
    print(
        f"master: {counters.get('connections_accepted')} connections accepted, "
        f"{counters.get('datanode_connections_opened')} opened to datanodes"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--uploaders", type=int, default=5)
    parser.add_argument("--video-mib", type=int, default=64)
    parser.add_argument("--upload-mib", type=int, default=8)
    parser.add_argument("--idle-s", type=float, default=10.0)
    sys.exit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
