"""The web front end's connections (myyoutube.web.connections), against a real cluster:
a client trickling its headers is cut off, its connection freed; one that sends them
promptly, or keeps a connection alive between requests, is served; connections are capped
per address; a paused viewer has little queued for it."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
import uuid

from harness import mp4_bytes, upload
from myyoutube.links import SOCKET_BUFFER_BYTES

HEADER_TIMEOUT_S = 1.0


async def test_slow_headers_are_cut_off_and_prompt_clients_served(fresh_cluster):
    """A connection that trickles a request head for longer than --header-timeout is
    closed; so is one that opens and says nothing; a prompt request on a kept-alive
    connection, sent after a pause, is answered."""
    cluster = fresh_cluster(datanodes=1, web_args=("--header-timeout", str(HEADER_TIMEOUT_S)))
    host = cluster.web.address

    reader, writer = await asyncio.open_connection(cluster.web.host, cluster.web.port)
    started = time.monotonic()
    writer.write(f"GET /listar HTTP/1.1\r\nHost: {host}\r\n".encode())
    closed = False
    for _ in range(20):  # one header byte every 0.25 s, never the blank line
        await asyncio.sleep(0.25)
        try:
            writer.write(b"X")
            await writer.drain()
        except ConnectionError:
            closed = True
            break
        if reader.at_eof():
            closed = True
            break
    closed = closed or await reader.read() == b""
    assert closed and time.monotonic() - started < 4 * HEADER_TIMEOUT_S
    writer.close()

    silent_reader, silent = await asyncio.open_connection(cluster.web.host, cluster.web.port)
    assert await asyncio.wait_for(silent_reader.read(), 5 * HEADER_TIMEOUT_S) == b""
    silent.close()

    reader, writer = await asyncio.open_connection(cluster.web.host, cluster.web.port)
    for _ in range(2):
        writer.write(f"GET /api/me HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        status = await reader.readline()
        assert status.startswith(b"HTTP/1.1 200")
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        await asyncio.sleep(1.5 * HEADER_TIMEOUT_S)  # idle between requests: keep-alive, not a header
    writer.close()


async def test_connections_per_address_are_capped(fresh_cluster):
    """With --max-connections-per-client 4, a fifth connection from the same address is
    closed at once (long before the header deadline) and the refusal is logged; once one
    of the four leaves, a new connection is served."""
    cluster = fresh_cluster(
        datanodes=0, web_args=("--max-connections-per-client", "4", "--header-timeout", "30")
    )
    held = [await asyncio.open_connection(cluster.web.host, cluster.web.port) for _ in range(4)]
    await asyncio.sleep(0.3)  # the web has accepted them all
    reader, writer = await asyncio.open_connection(cluster.web.host, cluster.web.port)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    log = (cluster.root / "logs" / "web.log").read_text()
    assert "refused a connection from 127.0.0.1: more than 4 connections from one address" in log

    held.pop()[1].close()
    await asyncio.sleep(0.3)
    reader, writer = await asyncio.open_connection(cluster.web.host, cluster.web.port)
    writer.write(f"GET /api/me HTTP/1.1\r\nHost: {cluster.web.address}\r\n\r\n".encode())
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 200")
    writer.close()
    for _, other in held:
        other.close()


# The most one send queues past the limit: a TCP segment of at most 64 KiB (GSO size).
ONE_SEGMENT_BYTES = 64 * 1024


async def test_a_paused_viewer_queues_little_in_the_kernel(cluster, http):
    """A player that stops reading mid-video (paused) finds at most the capped send
    buffer's worth of bytes queued for it in the web's kernel socket (SO_SNDBUF is set on
    every connection the web accepts), not the megabytes Linux would let it grow to: so
    the cluster behind it stops reading the video soon after the viewer does."""
    name = f"paused-{uuid.uuid4().hex[:8]}.mp4"
    status, _ = await upload(http, cluster, name, mp4_bytes(os.urandom(24 * 1024 * 1024)))
    assert status == 201
    viewer = socket.socket()
    viewer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # a viewer's window: small
    viewer.setblocking(False)
    await asyncio.get_running_loop().sock_connect(viewer, (cluster.web.host, cluster.web.port))
    reader, writer = await asyncio.open_connection(sock=viewer)
    writer.write(f"GET /stream/{name} HTTP/1.1\r\nHost: {cluster.web.address}\r\n\r\n".encode())
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    await reader.readexactly(256 * 1024)  # watched a little, then paused
    queued = 0
    for _ in range(20):  # the web's queue settles once the kernel buffer is full
        await asyncio.sleep(0.25)
        queued = max(queued, _send_queue(cluster.web.port, viewer.getsockname()[1]))
    writer.close()
    # Linux doubles SO_SNDBUF for its bookkeeping, and checks for room before each segment
    # it queues, so one segment may go past it (seen: 561,127 bytes under load); the
    # megabytes of an uncapped buffer stay far off.
    assert 0 < queued <= 2 * SOCKET_BUFFER_BYTES + ONE_SEGMENT_BYTES


def _send_queue(server_port: int, client_port: int) -> int:
    """Bytes the web's socket of this connection holds unsent (Send-Q in `ss`)."""
    shown = subprocess.run(
        ["ss", "-tnH", "state", "established", f"( sport = :{server_port} and dport = :{client_port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(shown[1]) if shown else 0


async def test_requests_aiohttp_refuses_get_a_json_sentence_not_their_bytes_back(fresh_cluster):
    """A request line past 8 KiB, a raw UTF-8 address, a malformed header and bytes that
    are not HTTP are each answered 400 with JSON {"error": sentence}: no text/plain page
    echoing the request (a body longer than its Content-Length had 200 KB of it sent
    back), and the front end keeps serving."""
    cluster = fresh_cluster(datanodes=0)
    host = cluster.web.address
    garbage = bytes(range(1, 256)) * 100
    requests = [
        f"GET /search?q={'x' * 9000} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(),
        f"GET /listar HTTP/1.1\r\nHost: {host}\r\nX-Long: {'y' * 9000}\r\n\r\n".encode(),
        f"GET /search?q=日本 HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(),
        f"GET / HTTP/1.1\r\nHost: {host}\r\nBad Header: y\r\n\r\n".encode(),
        b"\x16\x03\x01" + garbage,
        f"POST /api/login HTTP/1.1\r\nHost: {host}\r\nContent-Length: 2\r\n\r\n{{}}".encode() + garbage,
    ]
    for raw in requests:
        reader, writer = await asyncio.open_connection(cluster.web.host, cluster.web.port)
        writer.write(raw)
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        last_head, _, body = answer.rpartition(b"\r\n\r\n")
        status_line = last_head[last_head.rfind(b"HTTP/1.") :].split(b"\r\n")[0]
        assert status_line.startswith(b"HTTP/1.") and b" 400 " in status_line, answer[:300]
        assert b"application/json" in last_head, answer[:300]
        sentence = json.loads(body)["error"]
        assert sentence and "x" * 100 not in sentence and "\\x" not in sentence, sentence
        assert len(body) < 300
    reader, writer = await asyncio.open_connection(cluster.web.host, cluster.web.port)
    writer.write(f"GET /api/me HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 200")
    writer.close()
    assert "Traceback" not in (cluster.root / "logs" / "web.log").read_text()
