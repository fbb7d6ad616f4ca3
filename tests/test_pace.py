"""Minimum transfer rates on the web (myyoutube.web.pace), against a real cluster: an
upload that trickles its body and a viewer that reads a stream a few KB at a time are cut
off and their slots freed, while clients at ordinary speed are served in full; and a
watch leaves no garbage behind."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import time

from aiohttp.test_utils import make_mocked_request

from harness import mp4_bytes, store, upload, wait_until
from myyoutube.rates import MinimumRate
from myyoutube.web.pace import enforce_rate

WINDOW_S = 1.0
# Far below loopback speed, far above a trickle.
MIN_UPLOAD_BYTES_PER_S = 2000
MIN_STREAM_BYTES_PER_S = 64 * 1024
RATE_ARGS = (
    "--rate-window",
    str(WINDOW_S),
    "--min-upload-rate",
    str(MIN_UPLOAD_BYTES_PER_S),
    "--min-stream-rate",
    str(MIN_STREAM_BYTES_PER_S),
    "--max-uploads",
    "1",
    "--max-streams",
    "1",
)


async def _closed_within(reader: asyncio.StreamReader, seconds: float, step) -> float:
    """Run `step()` (one trickle) until the server closes the connection; the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            data = await step()
        except ConnectionError:
            return time.monotonic() - started
        if data == b"" or reader.at_eof():
            return time.monotonic() - started
    raise AssertionError(f"the connection was still open after {seconds} s")


async def test_trickled_upload_is_cut_off_and_its_slot_freed(fresh_cluster, http):
    """An upload sending 24 bytes every 0.2 s (120 bytes/s, under the 2000 bytes/s
    minimum) is cut within a few windows; the only upload slot is then free for a real
    upload, which is stored."""
    cluster = fresh_cluster(datanodes=2, web_args=RATE_ARGS)
    reader, writer = await asyncio.open_connection(cluster.web.host, cluster.web.port)
    head = b'--B\r\nContent-Disposition: form-data; name="file"; filename="slow.mp4"\r\n\r\n' + mp4_bytes(b"")
    writer.write(
        f"POST /upload HTTP/1.1\r\nHost: {cluster.web.address}\r\n"
        f"Authorization: Bearer {cluster.admin_token}\r\n"
        "Content-Type: multipart/form-data; boundary=B\r\nContent-Length: 999999\r\n\r\n".encode()
        + head
    )

    async def trickle() -> bytes | None:
        writer.write(b"x" * 24)
        await writer.drain()
        await asyncio.sleep(0.2)
        return None

    took = await _closed_within(reader, 10 * WINDOW_S, trickle)
    assert took < 5 * WINDOW_S
    writer.transport.abort()
    status, answer = await upload(http, cluster, "after-slow.mp4", mp4_bytes(os.urandom(200_000)))
    assert status == 201, answer
    log = (cluster.root / "logs" / "web.log").read_text()
    assert "cut off a slow upload from 127.0.0.1" in log


async def test_slow_reader_is_cut_off_and_a_prompt_one_served(fresh_cluster, http):
    """A viewer reading 4 KB every 0.2 s (20 KB/s, under the 64 KiB/s minimum) is cut
    off once the socket buffers are full; the only stream slot is then free, and a viewer
    reading at loopback speed gets all 8 MiB at the same settings."""
    cluster = fresh_cluster(datanodes=2, web_args=RATE_ARGS)
    video = mp4_bytes(os.urandom(8 * 1024 * 1024))
    await store(cluster, "long.mp4", video)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel holds little for us
    sock.connect((cluster.web.host, cluster.web.port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    writer.write(f"GET /stream/long.mp4 HTTP/1.1\r\nHost: {cluster.web.address}\r\n\r\n".encode())

    async def read_slowly() -> bytes:
        data = await reader.read(4096)
        await asyncio.sleep(0.2)
        return data

    took = await _closed_within(reader, 20 * WINDOW_S, read_slowly)
    assert took < 10 * WINDOW_S
    writer.transport.abort()

    async def whole_stream() -> bool:
        async with http.get(f"{cluster.url}/stream/long.mp4") as response:
            return response.status == 200 and await response.read() == video

    await wait_until(whole_stream, "a prompt viewer gets the whole video once the slot is free", 10)
    log = (cluster.root / "logs" / "web.log").read_text()
    assert "cut off a slow viewer from 127.0.0.1" in log


async def test_a_watched_transfer_leaves_nothing_for_the_cycle_collector():
    """A watch ends without a reference cycle: its timer, the watch and the request they
    hold are freed by reference counting when the block ends. A watch that re-armed itself
    through a closure left ~15 objects per request in a cycle (the request among them);
    collecting them was the web's longest pause under load (bench/README.md)."""
    request = make_mocked_request("GET", "/stream/a.mp4")
    gc.collect()
    gc.disable()
    try:
        for _ in range(100):
            with enforce_rate(request, MinimumRate(1024.0, 30.0), lambda: 0, "stream"):
                await asyncio.sleep(0)
        left_in_cycles = gc.collect()
    finally:
        gc.enable()
    assert left_in_cycles < 100  # one per watch would be 100; it was ~1,500
