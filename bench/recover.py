"""Recovery of a lost master index (issue 15): how long `--recover` takes at 10,000 videos.

Usage: python bench/recover.py [--videos 10000] [--datanodes 3] [--seed 1]

Theory of operation
-------------------
Recovery's cost grows with the number of blobs and sidecars, not with their bytes, so no
video is uploaded: the cluster's disks are written directly, as a running cluster would
have left them, then a real master is started with `--recover` on an empty data
directory and real datanodes on those disks, each an OS process.

1. Fill: an index of --videos videos is made through the Index API (commit_video per
   video, fsync off: the fill is not measured) with a few accounts, and copied with the
   snapshot code (snapshots.copy_index). Every video is one tiny blob (BLOB_BYTES, real
   CRC32C file) on every datanode, with the sidecar the master would have delivered
   (sidecars.video_sidecar). EDITED_SHARE of them were retitled after the snapshot
   (version 2 in their sidecars) and LATE_SHARE more were uploaded after it (sidecars
   only): recovery must apply both. The snapshot is a blob with its sidecar on every node.
2. The master starts with `--recover --expect-datanodes N` on a free port, then the
   datanodes (each announces once registered with it). Timed from the master's log:
   until every datanode's full report is in, until the sidecars are read, until the
   summary line (the index written), and until the master announces that it listens.
3. The recovered index is opened read-only and checked: every video there, the late
   ones and the late titles included.

The master's peak RSS (VmHWM) and CPU seconds come from /proc.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import random
import selectors
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import google_crc32c

from benchlib import cpu_seconds, peak_rss_bytes, print_table, run_context
from myyoutube.launch import start_role
from myyoutube.master import sidecars, snapshots
from myyoutube.master.index import Index, StoredBlob

BLOB_BYTES = 64  # tiny blobs: recovery reads sidecars and reports, never video bytes
EDITED_SHARE = 0.10  # retitled after the snapshot: their sidecars carry version 2
LATE_SHARE = 0.05  # uploaded after the snapshot: only their sidecars know them
ACCOUNTS = ("admin", "ann", "bob")
ANNOUNCE_TIMEOUT_S = 600.0
_LOG_TIME = "%Y-%m-%d %H:%M:%S,%f"


def record(number: int, blob_id: str, sha256: str, late: bool) -> dict:
    return {
        "name": f"video-{number:06d}.mp4",
        "blob_id": blob_id,
        "size": BLOB_BYTES,
        "sha256": sha256,
        "content_type": "video/mp4",
        "uploaded_at": 1_700_000_000.0 + 60 * number + (10**7 if late else 0),
        "poster_blob_id": None,
        "duration_s": 12.5,
        "width": 1280,
        "height": 720,
        "codec": "h264",
        "title": f"Video number {number}",
        "description": "A description of some length, as people write them. " * 2,
        "views": 0,
        "owner": ACCOUNTS[number % len(ACCOUNTS)],
        "visibility": "public",
    }


def write_blob(folders: list[Path], blob_id: str, data: bytes, sidecar: dict) -> None:
    crc = struct.pack("!I", google_crc32c.value(data)) if len(data) <= 256 * 1024 else None
    if crc is None:
        crc = b"".join(
            struct.pack("!I", google_crc32c.value(data[at : at + 256 * 1024]))
            for at in range(0, len(data), 256 * 1024)
        )
    meta = json.dumps(sidecar).encode()
    for folder in folders:
        (folder / f"{blob_id}.blob").write_bytes(data)
        (folder / f"{blob_id}.crc").write_bytes(crc)
        (folder / f"{blob_id}.meta").write_bytes(meta)


def fill(root: Path, count: int, folders: list[Path], rng: random.Random) -> tuple[float, int, int]:
    """Write the disks and the snapshot; (seconds, videos edited late, videos uploaded late)."""
    started = time.perf_counter()
    index = Index(root / "source.sqlite3", time.time())
    index._db.execute("PRAGMA synchronous=OFF")  # the fill is not measured
    for name in ACCOUNTS:
        index.users.add(
            name, "$argon2id$not-a-real-hash", "admin" if name == "admin" else "uploader", None, 0.0
        )
    late_from = int(count * (1 - LATE_SHARE))
    edited = late = 0
    for number in range(count):
        data = rng.randbytes(BLOB_BYTES)
        blob_id, sha256 = f"{number:032x}", hashlib.sha256(data).hexdigest()
        video = record(number, blob_id, sha256, number >= late_from)
        version = 1
        if number < late_from:
            index.ownership.begin_blob(blob_id, time.time())
            index.commit_video(video, [StoredBlob(blob_id, BLOB_BYTES, sha256, [])], time.time())
            if rng.random() < EDITED_SHARE:
                video, version, edited = dict(video, title=f"Retitled {number}"), 2, edited + 1
        else:
            late += 1
        write_blob(
            folders,
            blob_id,
            data,
            sidecars.video_sidecar(video, blob_id, sidecars.ORIGINAL_KIND, version, BLOB_BYTES, sha256),
        )
    index.close()
    copy = root / "snapshot.sqlite3"
    snapshots.copy_index(root / "source.sqlite3", copy)
    size, sha256 = snapshots.file_digest(copy)
    snapshot_id = "f" * 32
    write_blob(
        folders,
        snapshot_id,
        copy.read_bytes(),
        sidecars.snapshot_sidecar(snapshot_id, time.time(), size, sha256),
    )
    return time.perf_counter() - started, edited, late


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_announcement(process: subprocess.Popen) -> float:
    """Block until the master prints its listening line; when it did (monotonic)."""
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + ANNOUNCE_TIMEOUT_S
    seen = b""
    while b"listening on" not in seen:
        if process.poll() is not None or not selector.select(max(0.0, deadline - time.monotonic())):
            raise SystemExit(f"the master did not come up; see its log (exit {process.poll()})")
        seen += os.read(process.stdout.fileno(), 4096)
    return time.monotonic()


def log_time(log: str, marker: str) -> float:
    line = next(line for line in log.splitlines() if marker in line)
    stamp = " ".join(line.split()[:2])
    return datetime.datetime.strptime(stamp, _LOG_TIME).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--datanodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(run_context())
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        nodes = [root / "datanodes" / f"node-{n}" for n in range(args.datanodes)]
        for node in nodes:
            node.mkdir(parents=True)
        fill_s, edited, late = fill(root, args.videos, nodes, random.Random(args.seed))
        print(f"fill: {args.videos} videos on {args.datanodes} datanodes in {fill_s:.1f}s")
        run(root, nodes, args, edited, late)


def run(root: Path, nodes: list[Path], args: argparse.Namespace, edited: int, late: int) -> None:
    port, log_path = free_port(), root / "master.log"
    command = [
        sys.executable,
        "-m",
        "myyoutube.master",
        "--port",
        str(port),
        "--data-dir",
        str(root / "master"),
    ]
    command += ["--recover", "--expect-datanodes", str(args.datanodes), "--heartbeat", "1"]
    with open(log_path, "ab") as log_file:
        master = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log_file)
    started_wall, started = time.time(), time.monotonic()
    datanodes = []
    try:
        for number, node in enumerate(nodes):
            address = f"127.0.0.1:{port}"
            datanodes.append(
                start_role(
                    "myyoutube.datanode",
                    ["--master", address, "--port", "0", "--data-dir", str(node), "--heartbeat", "1"],
                    root / f"datanode-{number}.log",
                )
            )
        listening_s = wait_for_announcement(master) - started
        rss, cpu = peak_rss_bytes(master.pid), cpu_seconds(master.pid)
        log = log_path.read_text()
        check(root / "master" / "index.sqlite3", args.videos, edited)
    finally:
        for role in datanodes:
            role.stop()
        master.terminate()
        master.wait(30)
    reported = log_time(log, "distinct blobs") - started_wall
    read = log_time(log, "sidecars read") - started_wall
    summary = log_time(log, "recovery from") - started_wall
    print_table(
        f"Recovery of {args.videos} videos ({edited} edited and {late} uploaded after the snapshot), "
        f"{args.datanodes} datanodes",
        ["phase", "s since the master started"],
        [
            ["every datanode started and reported", f"{reported:.2f}"],
            ["sidecars read from every datanode", f"{read:.2f}"],
            ["snapshot loaded, merged, index written", f"{summary:.2f}"],
            ["master listening", f"{listening_s:.2f}"],
        ],
    )
    print(f"recovery proper (reports in -> index written): {summary - reported:.2f}s")
    print(f"master peak RSS {rss / 2**20:.0f} MiB, CPU {cpu:.1f}s")
    print(next(line for line in log.splitlines() if "recovery from" in line).split("recovery: ")[-1])


def check(index_path: Path, count: int, edited: int) -> None:
    with sqlite3.connect(f"file:{index_path}?mode=ro", uri=True) as db:
        videos = db.execute("SELECT count(*) FROM videos").fetchone()[0]
        retitled = db.execute("SELECT count(*) FROM videos WHERE title LIKE 'Retitled %'").fetchone()[0]
    db.close()
    if (videos, retitled) != (count, edited):
        raise SystemExit(f"recovered {videos} videos ({retitled} retitled), expected {count} ({edited})")


if __name__ == "__main__":
    main()
