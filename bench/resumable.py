"""Resumable (tus) upload throughput against the plain multipart /upload, same file, same run.

Usage: python bench/resumable.py [--size-mib 128] [--repeats 2] [--patch-mib 5]

Theory of operation
-------------------
A resumable upload does more than a plain one for the same bytes: every PATCH is its own
append (replicas opened, bytes fsynced on every replica, the new offset written to the
master's index), and at the end the bytes are read back from the cluster into the web's
spool to be probed, and each replica hashes its copy when it is sealed. This measures
what that costs, as the ratio of the two throughputs (issue 12's target is >= 0.8).

1. A --size-mib payload (a real tiny MP4 plus random bytes) is written and `sync`ed.
2. A cluster (master, 3 datanodes, web; separate OS processes on 127.0.0.1) is started.
3. --repeats rounds, each: the payload POSTed to /upload (multipart, streamed from disk),
   then uploaded with the `myyoutube upload` code (resumable_upload.upload_resumable) in
   --patch-mib PATCHes; alternating so drift hits both alike. The datanodes do not
   transcode (BenchCluster's default), so no upload competes with the one before's
   transcoding. Each is timed until the video is committed (201, or the last PATCH's 204)
   and its sha256 checked.
4. Printed: each upload, the medians, the ratio resumable / plain, and the CPU each
   process used.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from benchlib import (
    MB,
    MIB,
    BenchCluster,
    CpuMeter,
    auth_headers,
    make_video_file,
    mib,
    print_table,
    require_loopback,
    run_context,
    upload_verified,
    video_name,
)
from myyoutube import resumable_upload, upload_state, webclient

# 512 MiB is the figure; on a shared 2-core machine one round of both uploads of
# that size takes minutes, so the default is smaller (pass --size-mib 512 to match it).
DEFAULT_SIZE_MIB = 128
DEFAULT_REPEATS = 2
DEFAULT_PATCH_MIB = 5
UPLOAD_TIMEOUT_S = 1800.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=DEFAULT_SIZE_MIB, help="video size in MiB")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="rounds of both uploads")
    parser.add_argument("--patch-mib", type=int, default=DEFAULT_PATCH_MIB, help="bytes per PATCH, MiB")
    return parser.parse_args()


async def resumable_once(url: str, payload: Path, folder: Path, size: int, sha256: str) -> float:
    """One tus upload of the payload under a fresh name (a hard link); its wall time."""
    path = folder / video_name(size)
    os.link(payload, path)
    token = auth_headers(url)["Authorization"].removeprefix("Bearer ")
    state = upload_state.UploadState(folder / "state.json")
    async with webclient.connect(url, token) as api:
        started = time.perf_counter()
        video = await resumable_upload.upload_resumable(api, path, False, state)
        elapsed = time.perf_counter() - started
    path.unlink()
    if video["sha256"] != sha256:
        raise RuntimeError(f"resumable upload stored {video}, expected sha256 {sha256}")
    return elapsed


async def rounds(root: Path, payload: Path, size: int, sha256: str, repeats: int) -> tuple[dict, CpuMeter]:
    cluster = BenchCluster(root / "cluster", 3)
    try:
        cluster.start()
        require_loopback(cluster.url)
        print(f"cluster up at {cluster.url}; {repeats} rounds of {mib(size)} ...", flush=True)
        seconds: dict[str, list[float]] = {"plain": [], "resumable": []}
        timeout = aiohttp.ClientTimeout(total=UPLOAD_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            meter = CpuMeter({**cluster.roles(), "client": "self"}).start()
            for _ in range(repeats):
                os.sync()
                name = video_name(size)
                seconds["plain"].append(
                    await upload_verified(session, cluster.url, payload, name, size, sha256)
                )
                os.sync()
                seconds["resumable"].append(await resumable_once(cluster.url, payload, root, size, sha256))
            return seconds, meter.stop()
    finally:
        cluster.stop()


def report(size: int, patch_bytes: int, seconds: dict[str, list[float]], meter: CpuMeter) -> None:
    rows, medians = [], {}
    for kind, label in (
        ("plain", "POST /upload until 201"),
        ("resumable", f"tus, {mib(patch_bytes)} PATCHes"),
    ):
        rates = [size / MB / s for s in seconds[kind]]
        medians[kind] = statistics.median(rates)
        each = ", ".join(
            f"{rate:.0f} MB/s in {s:.2f} s" for rate, s in zip(rates, seconds[kind], strict=True)
        )
        rows.append([f"{kind} ({label})", f"{medians[kind]:.0f} MB/s", each])
    print_table(f"Upload of a {mib(size)} video: resumable vs plain", ["what", "median", "each"], rows)
    print(f"\nCPU during the uploads (100% = one core): {meter.summary()}")
    print(f"ratio resumable/plain: {medians['resumable'] / medians['plain']:.2f}")


async def main() -> None:
    args = parse_args()
    print(f"run: {run_context()}", flush=True)
    size, patch_bytes = args.size_mib * MIB, args.patch_mib * MIB
    resumable_upload.PATCH_BYTES = patch_bytes
    with tempfile.TemporaryDirectory(prefix="myyoutube-resumable-") as tmp:
        root = Path(tmp)
        payload = root / "payload.mp4"
        print(f"writing a {mib(size)} payload ...", flush=True)
        sha256 = make_video_file(payload, size)
        seconds, meter = await rounds(root, payload, size, sha256, args.repeats)
    report(size, patch_bytes, seconds, meter)


if __name__ == "__main__":
    asyncio.run(main())
