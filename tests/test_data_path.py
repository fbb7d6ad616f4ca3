"""The data path under faults (issue 9's regressions), with real processes and HTTP.

Each test drives a real cluster the way a viewer or an uploader would and checks what
they get: the right bytes or a clean error, never foreign bytes inside a body; uploads
that commit on the healthy replicas when one freezes; few connections however many
requests. Times are printed (run with -s), not asserted: speed is measured in bench/.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import aiohttp

from harness import holders_of, mp4_bytes, read_chars, receiving, store, wait_until
from myyoutube.datanode.scrubber import SCRUB_TIMES_FILE
from myyoutube.datanode.state import SCRUB_TIMES_HEADER

VIDEO_BYTES = 6 * 1024 * 1024
READ_PIECE_BYTES = 64 * 1024


async def read_body(response: aiohttp.ClientResponse, pause_s: float = 0.0) -> bytes:
    """Whatever body arrives before the response ends or is cut."""
    body = bytearray()
    try:
        async for piece in response.content.iter_chunked(READ_PIECE_BYTES):
            body += piece
            if pause_s:
                await asyncio.sleep(pause_s)
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
        pass  # cut short: allowed, as long as what came is right
    return bytes(body)


def assert_prefix_of(body: bytes, data: bytes, offset: int = 0) -> None:
    assert data[offset : offset + len(body)] == body, "the body holds bytes that are not the video's"
    assert b"HTTP/1.1" not in body


async def test_delete_during_20_streams_never_sends_foreign_bytes(fresh_cluster, http):
    """20 viewers stream a video while it is deleted: each body is the video's bytes (whole
    or cut short), and once deleted, new requests get a clean JSON 404."""
    cluster = fresh_cluster()
    data = mp4_bytes(os.urandom(VIDEO_BYTES))
    await store(cluster, "doomed.mp4", data)

    started = asyncio.Semaphore(0)  # one release per viewer holding its 206 headers

    async def view(index: int) -> bytes:
        headers = {"Range": f"bytes={index * 4096}-"}
        async with http.get(f"{cluster.url}/stream/doomed.mp4", headers=headers) as response:
            assert response.status == 206
            started.release()
            body = await read_body(response, pause_s=0.01)
        assert_prefix_of(body, data, index * 4096)
        return body

    viewers = [asyncio.create_task(view(i)) for i in range(20)]
    for _ in viewers:  # delete only once every viewer is streaming (not a fixed sleep:
        await asyncio.wait_for(started.acquire(), 30)  # a loaded machine starts them late)
    async with http.delete(f"{cluster.url}/videos/doomed.mp4", headers=cluster.admin_headers()) as response:
        assert response.status == 200
    await asyncio.gather(*viewers)
    async with http.get(f"{cluster.url}/stream/doomed.mp4") as response:
        assert response.status == 404
        assert "error" in await response.json()


async def test_every_replica_frozen_mid_stream_cuts_the_body_cleanly(fresh_cluster, http):
    """All three replicas freeze mid-stream: the viewer gets a correct prefix and a cut
    connection, never a second HTTP response written into the body."""
    cluster = fresh_cluster(master_args=("--stall-timeout", "1"))
    data = mp4_bytes(os.urandom(VIDEO_BYTES * 3))
    await store(cluster, "frozen.mp4", data)
    async with http.get(f"{cluster.url}/stream/frozen.mp4") as response:
        assert response.status == 200
        first = await response.content.readexactly(1024 * 1024)
        for node in cluster.datanodes:
            node.pause()
        started = time.monotonic()
        rest = await read_body(response)
        print(f"body cut {time.monotonic() - started:.2f}s after every replica froze")
    for node in cluster.datanodes:
        node.resume()
    body = first + rest
    assert len(body) < len(data)
    assert_prefix_of(body, data)


async def test_first_request_after_master_restart_is_served_or_refused_at_once(fresh_cluster, http):
    """SIGKILL the master, restart it, GET at once: the stream is served (or 503 with
    Retry-After) within seconds, not after a long hang."""
    cluster = fresh_cluster()
    videos = {f"clip-{i}.mp4": mp4_bytes(os.urandom(300_000 + i)) for i in range(3)}
    for name, data in videos.items():
        await store(cluster, name, data)
    cluster.master.kill()
    cluster.restart_master()
    started = time.monotonic()
    async with http.get(f"{cluster.url}/stream/clip-0.mp4") as response:
        if response.status == 503:
            assert response.headers["Retry-After"]
        else:
            assert response.status == 200
            assert await response.read() == videos["clip-0.mp4"]
        took = time.monotonic() - started
    print(f"first stream after the restart answered {response.status} in {took:.2f}s")
    # Within the web's own read deadline, with room to spare: the old behaviour was 60 s.
    assert took < 30


async def test_an_upload_right_after_a_master_restart_waits_for_the_datanodes(fresh_cluster):
    """SIGKILL the master, restart it, upload at once: the upload waits the moment the
    running datanodes take to re-register and is stored (3 copies soon after), instead
    of being refused "Only 0 datanodes are running" while every datanode is up."""
    cluster = fresh_cluster()
    cluster.master.kill()
    cluster.restart_master()
    data = mp4_bytes(os.urandom(300_000))
    await store(cluster, "right-after.mp4", data)
    await wait_until(lambda: len(holders_of(cluster, data)) == 3, "3 copies", 10)


async def test_upload_commits_on_two_when_one_receiver_freezes(fresh_cluster):
    """One of three receivers is frozen (SIGSTOP, a silent partition) mid-upload: the
    master drops it and the upload commits on the two healthy ones."""
    cluster = fresh_cluster(master_args=("--stall-timeout", "1"))
    data = mp4_bytes(os.urandom(16 * 1024 * 1024))
    client = cluster.client()
    upload = await client.start_upload("partitioned.mp4", "video/mp4")
    await upload.write(data[: 4 * 1024 * 1024])
    receivers = [n for n in cluster.datanodes if receiving(cluster.folder(n))]
    assert len(receivers) == 3
    receivers[0].pause()
    try:
        started = time.monotonic()
        await upload.write(data[4 * 1024 * 1024 :])
        video = await upload.finish()
        print(f"upload finished {time.monotonic() - started:.2f}s after a receiver froze")
    finally:
        receivers[0].resume()
    assert video["sha256"] == hashlib.sha256(data).hexdigest()
    assert len(holders_of(cluster, data)) >= 2
    client.close()


async def test_frozen_serving_replica_is_left_for_the_next_replica(fresh_cluster, http):
    """The replica serving a stream freezes: the stream resumes elsewhere after the stall
    timeout, and the next streams do not start on the frozen node."""
    cluster = fresh_cluster(master_args=("--stall-timeout", "1"))
    data = mp4_bytes(os.urandom(VIDEO_BYTES * 2))
    await store(cluster, "hung.mp4", data)
    async with http.get(f"{cluster.url}/stream/hung.mp4") as response:
        first = await response.content.readexactly(2 * 1024 * 1024)
        serving = max(cluster.datanodes, key=lambda node: read_chars(node))
        serving.pause()
        started = time.monotonic()
        rest = await response.read()
        print(f"stream resumed and finished {time.monotonic() - started:.2f}s after the freeze")
    try:
        assert first + rest == data
        for _ in range(5):
            started = time.monotonic()
            async with http.get(
                f"{cluster.url}/stream/hung.mp4", headers={"Range": "bytes=0-65535"}
            ) as again:
                assert await again.read() == data[:65536]
            print(f"a new stream started in {time.monotonic() - started:.2f}s")
    finally:
        serving.resume()


async def test_range_requests_reuse_a_bounded_number_of_connections(fresh_cluster, http):
    """200 range requests from 10 viewers open a handful of internal connections (the
    pools' bound), not three per request as before."""
    cluster = fresh_cluster()
    data = mp4_bytes(os.urandom(VIDEO_BYTES))
    await store(cluster, "seek.mp4", data)
    before = (await cluster.client().status())["counters"]

    async def seek(viewer: int) -> None:
        for n in range(20):
            start = ((viewer * 20 + n) * 7919 * 64) % (len(data) - 65536)
            headers = {"Range": f"bytes={start}-{start + 65535}"}
            async with http.get(f"{cluster.url}/stream/seek.mp4", headers=headers) as response:
                assert response.status == 206
                assert await response.read() == data[start : start + 65536]

    await asyncio.gather(*(seek(v) for v in range(10)))
    after = (await cluster.client().status())["counters"]
    accepted = after["connections_accepted"] - before["connections_accepted"]
    to_datanodes = after["datanode_connections_opened"] - before["datanode_connections_opened"]
    print(f"200 range requests: {accepted} connections into the master, {to_datanodes} to datanodes")
    assert accepted <= 20  # at most the concurrency, plus the status calls
    assert to_datanodes <= 30


async def test_viewer_leaving_is_not_a_warning(fresh_cluster, http):
    """Viewers closing a stream early leave no warning or traceback in the web's log."""
    cluster = fresh_cluster()
    data = mp4_bytes(os.urandom(VIDEO_BYTES))
    await store(cluster, "left.mp4", data)
    for _ in range(5):
        async with http.get(f"{cluster.url}/stream/left.mp4") as response:
            await response.content.readexactly(256 * 1024)
            response.close()
    await asyncio.sleep(0.5)
    lines = (cluster.root / "logs" / "web.log").read_text().splitlines()
    # The one warning a development cluster (no certificates) says at start is expected.
    warnings = [line for line in lines if " WARNING " in line and "no --cert-dir" not in line]
    assert warnings == [] and not any("Traceback" in line for line in lines), lines[-20:]


async def test_master_stops_quietly(fresh_cluster):
    """SIGTERM to a master with open connections ends it with status 0 and no traceback."""
    cluster = fresh_cluster()
    await store(cluster, "quiet.mp4", mp4_bytes(os.urandom(100_000)))
    assert cluster.master.stop() == 0
    log = (cluster.root / "logs" / "master.log").read_text()
    assert "Traceback" not in log and "CancelledError" not in log, log[-2000:]


async def test_a_stopped_datanode_leaves_its_scrub_schedule_for_its_next_start(fresh_cluster):
    """SIGTERM to a datanode saves when it last verified each of its blobs, so that its next
    start goes on with the walk instead of starting it afresh."""
    cluster = fresh_cluster()
    await store(cluster, "scrubbed.mp4", mp4_bytes(os.urandom(100_000)))
    node = cluster.datanodes[0]
    held = {path.stem for path in cluster.folder(node).glob("*.blob")}
    assert held and node.stop() == 0
    lines = (cluster.folder(node) / SCRUB_TIMES_FILE).read_text().splitlines()
    assert lines[0] == SCRUB_TIMES_HEADER
    assert {line.split()[0] for line in lines[1:]} == held


async def test_python_asyncio_loop_still_serves(fresh_cluster, http):
    """Every role started with `--event-loop asyncio` (uvloop is the default) stores and
    streams a video byte for byte, ranges included."""
    loop = ("--event-loop", "asyncio")
    cluster = fresh_cluster(master_args=loop, web_args=loop, datanode_args=loop)
    data = mp4_bytes(os.urandom(VIDEO_BYTES))
    await store(cluster, "plain.mp4", data)
    async with http.get(f"{cluster.url}/stream/plain.mp4") as response:
        assert response.status == 200 and await response.read() == data
    async with http.get(f"{cluster.url}/stream/plain.mp4", headers={"Range": "bytes=1000-"}) as response:
        assert response.status == 206 and await response.read() == data[1000:]
