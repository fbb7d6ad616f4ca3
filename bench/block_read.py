"""What one cached block read costs a datanode, by where the bytes land in memory.

Usage: python bench/block_read.py [--blocks 256] [--rounds 3]

Theory of operation
-------------------
Every range a datanode serves starts with `ReadHandles.read_if_cached`: preadv of one
CRC block (256 KiB) from the page cache into a buffer, then a copy out. The kernel's copy
is sensitive to alignment on some CPUs: on the AMD EPYC these benchmarks run on, a
destination that starts a few bytes into a page while the source starts on one (a page
cache block always does) takes ~5x longer. A bytearray made at a datanode's start (large,
so malloc maps it) has its bytes 16 bytes into a page, after malloc's header; the
datanode now reads into a page-aligned anonymous mapping.

This script writes --blocks blocks to a temporary file (fsynced, so they are cached
clean pages as a stored blob's are) and times read_if_cached over all of them, --rounds
times, with the datanode's buffer and with one starting 16 bytes into a page put in its
place: what the datanode does, and what it did before. A plain copy between two buffers
in this process is timed too, for destinations 0, 16 and 64 bytes into a page, to show
whether the machine has the effect at all.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchlib import print_table, run_context
from myyoutube.datanode.read_handles import ReadHandles
from myyoutube.protocol import CHUNK_BYTES

PAGE_BYTES = 4096


def microseconds_per_block(handles: ReadHandles, fd: int, blocks: int, rounds: int) -> float:
    """The median over `rounds` of the mean time of one read_if_cached, in us."""
    means = []
    for _ in range(rounds):
        started = time.perf_counter()
        for number in range(blocks):
            if handles.read_if_cached(fd, number * CHUNK_BYTES, CHUNK_BYTES) is None:
                raise SystemExit("a block was not in the page cache; is RWF_NOWAIT supported here?")
        means.append((time.perf_counter() - started) / blocks * 1e6)
    return statistics.median(means)


def page_offset_view(size: int, offset: int) -> memoryview:
    """`size` writable bytes starting `offset` bytes into a page."""
    buffer = bytearray(size + 2 * PAGE_BYTES)
    address = ctypes.addressof((ctypes.c_char * 1).from_buffer(buffer))
    start = -address % PAGE_BYTES + offset
    return memoryview(buffer)[start : start + size]


def copy_microseconds(destination_offset: int, repeats: int = 2000) -> float:
    """One 256 KiB copy between page-aligned source and a destination that starts
    `destination_offset` bytes into a page, in us."""
    read, written = page_offset_view(CHUNK_BYTES, 0), page_offset_view(CHUNK_BYTES, destination_offset)
    started = time.perf_counter()
    for _ in range(repeats):
        written[:] = read
    return (time.perf_counter() - started) / repeats * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=256, help="256 KiB blocks in the file")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the file (median)")
    args = parser.parse_args()
    print(run_context())
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "blob"
        with path.open("wb") as blob:
            for _ in range(args.blocks):
                blob.write(os.urandom(CHUNK_BYTES))
            blob.flush()
            os.fsync(blob.fileno())
        fd = os.open(path, os.O_RDONLY)
        try:
            datanode = ReadHandles(CHUNK_BYTES)
            before = ReadHandles(CHUNK_BYTES)
            # Where the old bytearray's bytes lay in a datanode: 16 bytes into a page.
            before._block = page_offset_view(CHUNK_BYTES, 16)  # type: ignore[assignment]
            rows = [
                [
                    "read_if_cached, page-aligned buffer (the datanode's)",
                    f"{microseconds_per_block(datanode, fd, args.blocks, args.rounds):.1f} us",
                ],
                [
                    "read_if_cached, buffer 16 bytes into a page (before)",
                    f"{microseconds_per_block(before, fd, args.blocks, args.rounds):.1f} us",
                ],
            ]
        finally:
            os.close(fd)
    rows += [
        [f"memory copy, destination {offset} bytes into a page", f"{copy_microseconds(offset):.1f} us"]
        for offset in (0, 16, 64)
    ]
    print_table("One 256 KiB block", ["what", "time"], rows)


if __name__ == "__main__":
    main()
