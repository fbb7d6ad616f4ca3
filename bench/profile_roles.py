"""Where each role's CPU goes under one load: py-spy samples of master, web and datanodes.

Usage: python bench/profile_roles.py [--load seek|stream|upload] [--seconds 15]
                                     [--size-mib 128] [--top 15] [--out DIR]

Theory of operation
-------------------
The other benchmarks say how fast; this one says where the time goes, so that a change to
the data path starts from the functions that cost the most (issue 9 asks for the profile's
top entries before and after).

1. A cluster is started as the other benchmarks start it (BenchCluster) and a --size-mib
   payload is uploaded, except for --load upload, which profiles the uploads themselves.
2. While the load runs for --seconds, `py-spy record --format raw` samples every role
   process by pid (--nonblocking, so the sampled process is never paused; py-spy needs
   ptrace rights: root, or kernel.yama.ptrace_scope 0). Loads:
   * seek: seek.py's 50 clients asking random 64 KiB ranges;
   * stream: one client reading the whole video again and again;
   * upload: one client uploading the payload again and again under new names.
3. For each role the collapsed stacks are folded into two lists: **self** (the function
   on top of the stack when sampled, i.e. where the CPU actually is) and **inclusive**
   (every function on the stack, i.e. which call paths are expensive). Idle samples (the
   event loop waiting in select/epoll) are counted apart, so the percentages are of the
   busy samples. The raw files stay in --out for flame graphs.

Figures vary with load on the machine: quote `uptime` with them.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

import seek
from benchlib import (
    MIB,
    BenchCluster,
    make_video_file,
    mapped,
    run_context,
    upload,
    upload_verified,
    video_name,
)

# py-spy's default is 100 Hz; with --nonblocking the cost to the sampled process is a
# few reads of its memory per sample, far below the load's own.
SAMPLE_RATE_HZ = 100
# Frames that mean "waiting, not working": the event loop's poll and the thread pools'
# idle waits. Their samples are reported as idle, not as a hot spot.
IDLE_FRAMES = (
    "select (selectors.py",
    "_worker (concurrent/futures/thread.py",
    "wait (threading.py",
    "run_once (uvloop",
    "run_forever (uvloop",
)
UPLOAD_TIMEOUT_S = 1800.0
# A stream read of a few hundred MiB takes about a second: bounded, so a hung read fails.
STREAM_TIMEOUT_S = 300.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", choices=("seek", "stream", "upload"), default="seek")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--size-mib", type=int, default=128)
    parser.add_argument("--datanodes", type=int, default=3)
    parser.add_argument("--clients", type=int, default=seek.DEFAULT_CLIENTS, help="seek clients")
    parser.add_argument("--top", type=int, default=15, help="entries per list")
    parser.add_argument("--out", type=Path, default=None, help="keep the raw py-spy files here")
    parser.add_argument("--tls", action="store_true", help="mutual TLS between the roles")
    return parser.parse_args()


def start_profilers(pids: dict[str, int], seconds: float, out: Path) -> dict[str, subprocess.Popen]:
    out.mkdir(parents=True, exist_ok=True)
    profilers = {}
    for role, pid in pids.items():
        command = ["py-spy", "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate"]
        command += [
            str(SAMPLE_RATE_HZ),
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(out / f"{role}.txt"),
        ]
        profilers[role] = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return profilers


def fold(raw: Path) -> tuple[Counter, Counter, int, int]:
    """(self samples by frame, inclusive samples by frame, busy samples, idle samples)."""
    own, inclusive, busy, idle = Counter(), Counter(), 0, 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count, frames = int(count_text), stack.split(";")
        # The thread name comes first in py-spy's raw format; the frames follow.
        frames = [frame for frame in frames[1:] if frame]
        if not frames or any(frames[-1].startswith(mark) for mark in IDLE_FRAMES):
            idle += count
            continue
        busy += count
        own[_short(frames[-1])] += count
        for frame in set(map(_short, frames)):
            inclusive[frame] += count
    return own, inclusive, busy, idle


def _short(frame: str) -> str:
    """`func (path/to/module.py:123)` -> `func (module.py)`: lines differ between samples."""
    name, _, where = frame.partition(" (")
    module = where.rsplit("/", 1)[-1].split(":", 1)[0].rstrip(")")
    return f"{name} ({module})"


def report(out: Path, roles: list[str], top: int) -> None:
    for role in roles:
        raw = out / f"{role}.txt"
        if not raw.exists():
            print(f"\n{role}: no profile (py-spy failed; see above)")
            continue
        own, inclusive, busy, idle = fold(raw)
        total = max(busy, 1)
        print(f"\n== {role}: {busy} busy samples, {idle} idle ({busy / max(busy + idle, 1):.0%} busy)")
        print("  self:")
        for frame, count in own.most_common(top):
            print(f"    {count / total:6.1%}  {frame}")
        print("  inclusive:")
        for frame, count in inclusive.most_common(top):
            print(f"    {count / total:6.1%}  {frame}")


async def run_load(args: argparse.Namespace, cluster: BenchCluster, path: Path, name: str, payload) -> int:
    """Drive the chosen load for --seconds; how many requests/reads/uploads completed."""
    deadline = time.monotonic() + args.seconds
    if args.load == "seek":
        args.max_requests = seek.DEFAULT_MAX_REQUESTS
        load = await seek.seek_load(f"{cluster.url}/stream/{name}", payload, args, args.seconds, 1)
        return len(load.latencies)
    done = 0
    timeout = aiohttp.ClientTimeout(total=UPLOAD_TIMEOUT_S if args.load == "upload" else STREAM_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while time.monotonic() < deadline:
            if args.load == "upload":
                await upload(session, cluster.url, path, f"profile-{done}-{name}")
            else:
                async with session.get(f"{cluster.url}/stream/{name}") as response:
                    async for _ in response.content.iter_chunked(1 << 20):
                        pass
            done += 1
    return done


async def main() -> int:
    args = parse_args()
    print(f"run: {run_context()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="myyoutube-profile-") as tmp:
        root = Path(tmp)
        out = args.out or root / "profiles"
        path, size = root / "payload.mp4", args.size_mib * MIB
        sha256 = make_video_file(path, size)
        cluster = BenchCluster(root / "cluster", args.datanodes, tls=args.tls).start()
        try:
            name = video_name(size)
            if args.load != "upload":
                timeout = aiohttp.ClientTimeout(total=UPLOAD_TIMEOUT_S)
                async with aiohttp.ClientSession(timeout=timeout) as session:
                    await upload_verified(session, cluster.url, path, name, size, sha256)
            profilers = start_profilers(cluster.roles(), args.seconds, out)
            with mapped(path) as payload:
                done = await run_load(args, cluster, path, name, payload)
            for role, profiler in profilers.items():
                _, errors = profiler.communicate()
                if profiler.returncode != 0:
                    print(f"py-spy on {role} failed: {errors.decode(errors='replace').strip()}")
        finally:
            cluster.stop()
        print(f"\n{args.load}: {done} completed in {args.seconds:g} s; raw profiles in {out}")
        report(out, list(cluster.roles()), args.top)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
