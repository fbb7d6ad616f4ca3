"""What relaying bytes between two loopback sockets costs this machine's kernel, at best.

Usage: python bench/relay_floor.py [--size-mib 512] [--repeats 2]

Theory of operation
-------------------
A full stream reaches the viewer through the web front end, which takes each byte from a
datanode's socket and gives it to the viewer's: one relay. Issue 9 asks whether zero-copy
(`splice`) would make that relay cheaper. This benchmark answers it without the cluster:
a source thread sends --size-mib over loopback to a relay, the relay passes it on to a
sink thread over a second loopback connection, and only the relay's CPU time is counted.
The relay runs in C all the way (recv_into/sendall release the GIL; os.splice moves
pages through a pipe without copying them to user space), so its CPU time is the
kernel's share of a relay with no Python per chunk: a floor under what the web can spend.

Both sockets get the cluster's buffer size (links.bound_buffers), as the web's
links to datanodes have. Printed for each way and repeat: MB/s and the relay's CPU
seconds per GiB. Compare the CPU with the web's in `full_stream.py` (its CPU column over
the bytes read): what the web spends above this floor is Python and asyncio per chunk.
Linux only (os.splice).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import socket
import sys
import threading
import time
from collections.abc import Callable

from benchlib import MIB, print_table, run_context
from myyoutube.links import bound_buffers
from myyoutube.protocol import CHUNK_BYTES


def loopback_pair() -> tuple[socket.socket, socket.socket]:
    """A connected pair of TCP sockets on 127.0.0.1 with the cluster's buffer sizes."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        near = bound_buffers(socket.socket())
        bound_buffers(listener)  # after listen, as measured in bench/README.md
        near.connect(listener.getsockname())
        far, _ = listener.accept()
    return near, far


def send_all(sock: socket.socket, total: int) -> None:
    chunk = os.urandom(CHUNK_BYTES)
    for _ in range(total // CHUNK_BYTES):
        sock.sendall(chunk)
    sock.shutdown(socket.SHUT_WR)


def drain(sock: socket.socket, received: list[int]) -> None:
    buffer = bytearray(CHUNK_BYTES)
    count = 0
    while got := sock.recv_into(buffer):
        count += got
    received.append(count)


def relay_by_copy(source: socket.socket, sink: socket.socket) -> None:
    """What the web does: each chunk into user space and out again."""
    buffer = bytearray(CHUNK_BYTES)
    view = memoryview(buffer)
    while got := source.recv_into(buffer):
        sink.sendall(view[:got])
    sink.shutdown(socket.SHUT_WR)


def relay_by_splice(source: socket.socket, sink: socket.socket) -> None:
    """Zero-copy: socket -> pipe -> socket, the bytes never reach user space."""
    pipe_out, pipe_in = os.pipe()
    try:
        fcntl.fcntl(pipe_in, fcntl.F_SETPIPE_SZ, CHUNK_BYTES)  # a chunk per splice, as the web relays
        while moved := os.splice(source.fileno(), pipe_in, CHUNK_BYTES):
            while moved:
                moved -= os.splice(pipe_out, sink.fileno(), moved)
        sink.shutdown(socket.SHUT_WR)
    finally:
        os.close(pipe_out)
        os.close(pipe_in)


def measure(relay: Callable[[socket.socket, socket.socket], None], total: int) -> tuple[float, float]:
    """(MB/s, relay CPU seconds) for `total` bytes through `relay`."""
    source_out, relay_in = loopback_pair()
    relay_out, sink_in = loopback_pair()
    received: list[int] = []
    helpers = [
        threading.Thread(target=send_all, args=(source_out, total)),
        threading.Thread(target=drain, args=(sink_in, received)),
    ]
    for helper in helpers:
        helper.start()
    started, cpu_before = time.perf_counter(), time.thread_time()
    relay(relay_in, relay_out)
    cpu, elapsed = time.thread_time() - cpu_before, time.perf_counter() - started
    for helper in helpers:
        helper.join()
    for sock in (source_out, relay_in, relay_out, sink_in):
        sock.close()
    if received != [total]:
        sys.exit(f"relay lost bytes: {received} of {total}")
    return total / elapsed / 1e6, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512, help="bytes relayed per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each way, interleaved")
    args = parser.parse_args()
    total = args.size_mib * MIB // CHUNK_BYTES * CHUNK_BYTES
    print(run_context())
    rows = []
    for repeat in range(args.repeats):
        for way, relay in (("recv_into + sendall", relay_by_copy), ("splice", relay_by_splice)):
            rate, cpu = measure(relay, total)
            rows.append([way, repeat + 1, f"{rate:,.0f} MB/s", f"{cpu / (total / 1024**3):.2f} s"])
    print_table(
        f"Relaying {args.size_mib} MiB between two loopback sockets (relay thread's CPU only)",
        ["way", "run", "rate", "relay CPU per GiB"],
        rows,
    )


if __name__ == "__main__":
    main()
