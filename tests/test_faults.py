"""Failures of real processes: SIGKILL, SIGSTOP, rotten and missing replica files.

Each test checks the bytes (sha256) a user gets and that the replica count on disk
converges back to 3. Recovery times are printed (run with -s to see them).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import time

import pytest

from harness import (
    Cluster,
    holders_of,
    mp4_bytes,
    read_chars,
    receiving,
    small_disk,
    store,
    upload,
    wait_until,
)
from myyoutube.client import RequestFailed

STREAM_VIDEO_BYTES = 24 * 1024 * 1024
FIRST_PART_BYTES = 3 * 1024 * 1024


def live_copies(cluster: Cluster, data: bytes) -> int:
    return sum(node.alive() for node in holders_of(cluster, data))


async def stream_with_fault(cluster: Cluster, http, name: str, data: bytes, fault) -> str:
    """Stream `name` over HTTP; after the first part, apply `fault` to the serving node."""
    digest = hashlib.sha256()
    before = {node.port: read_chars(node) for node in cluster.datanodes}
    async with http.get(f"{cluster.url}/stream/{name}") as response:
        assert response.status == 200
        digest.update(await response.content.readexactly(FIRST_PART_BYTES))
        serving = max(cluster.datanodes, key=lambda n: read_chars(n) - before[n.port])
        fault(serving)
        started = time.monotonic()
        async for piece in response.content.iter_chunked(1024 * 1024):
            digest.update(piece)
        print(f"stream finished {time.monotonic() - started:.2f}s after the fault")
    return digest.hexdigest()


@pytest.fixture
async def streamed_video(fresh_cluster):
    # Read over the network: these tests fault the datanode a stream is read from, which a
    # web reading its machine's files (test_local_reads.py) would not be asking.
    cluster = fresh_cluster(web_args=("--no-local-reads",))
    data = mp4_bytes(os.urandom(STREAM_VIDEO_BYTES))
    await store(cluster, "movie.mp4", data)
    return cluster, data


async def test_stream_survives_killing_the_serving_datanode(streamed_video, http):
    """SIGKILL of the datanode serving a stream: the viewer still gets every byte, in order."""
    cluster, data = streamed_video
    got = await stream_with_fault(cluster, http, "movie.mp4", data, lambda node: node.kill())
    assert got == hashlib.sha256(data).hexdigest()


async def test_stream_survives_a_hung_datanode(streamed_video, http):
    """SIGSTOP of the serving datanode: after the stall timeout the stream resumes elsewhere."""
    cluster, data = streamed_video
    got = await stream_with_fault(cluster, http, "movie.mp4", data, lambda node: node.pause())
    assert got == hashlib.sha256(data).hexdigest()


async def test_rotten_replicas_are_never_served_and_get_repaired(streamed_video, http):
    """Bytes flipped on disk in 2 of 3 replicas: reads give the good bytes, and the reads
    that find the rot have it repaired, back to 3 good copies (the scrubber leaves copies
    this new alone for a day). Reads over the network start at any replica; a web reading
    its machine's files keeps to one (test_local_reads.py)."""
    cluster, data = streamed_video
    rotten = holders_of(cluster, data)[:2]
    for node in rotten:
        path = next(cluster.folder(node).glob("*.blob"))
        # Flipping one byte of a local file: too small to matter to the event loop.
        with open(path, "r+b") as file:  # noqa: ASYNC230
            file.seek(len(data) // 2)
            file.write(bytes([file.read(1)[0] ^ 0xFF]))
    started = time.monotonic()
    for _ in range(40):  # each read starts at a random replica: soon each rotten one is read
        async with http.get(f"{cluster.url}/stream/movie.mp4") as response:
            assert hashlib.sha256(await response.read()).digest() == hashlib.sha256(data).digest()
        if live_copies(cluster, data) == 3:
            break
    await wait_until(lambda: live_copies(cluster, data) == 3, "3 good replicas", 30)
    took = time.monotonic() - started
    print(f"rotten replicas repaired in {took:.2f}s")


async def test_deleted_replica_file_is_recreated(streamed_video):
    """A replica file deleted by hand is noticed in the block report and copied back."""
    cluster, data = streamed_video
    victim = holders_of(cluster, data)[0]
    for path in cluster.data_files(victim):
        path.unlink()
    took = await wait_until(lambda: live_copies(cluster, data) == 3, "replica recreated", 30)
    print(f"deleted replica recreated in {took:.2f}s")


async def test_dead_datanode_is_re_replicated(fresh_cluster):
    """A datanode killed for good: its replicas are re-made on the spare node, back to 3."""
    cluster = fresh_cluster(datanodes=4)
    data = mp4_bytes(os.urandom(2_000_000))
    await store(cluster, "spare.mp4", data)
    holders_of(cluster, data)[0].kill()
    took = await wait_until(lambda: live_copies(cluster, data) == 3, "3 live replicas", 30)
    print(f"dead datanode's replica re-made in {took:.2f}s (dead-after {cluster.dead_after_s}s)")


@pytest.mark.parametrize("position", [0, 1, 2])
async def test_upload_survives_losing_any_replica_midway(fresh_cluster, position):
    """SIGKILL of the 1st, 2nd or 3rd replica mid-upload: it commits, then heals to 3 copies."""
    cluster = fresh_cluster(datanodes=4)
    data = mp4_bytes(os.urandom(6 * 1024 * 1024))
    upload = await cluster.client().start_upload("survivor.mp4", "video/mp4")
    await upload.write(data[: 2 * 1024 * 1024])
    writing = sorted((n for n in cluster.datanodes if receiving(cluster.folder(n))), key=lambda n: n.port)
    assert len(writing) == 3
    writing[position].kill()
    await upload.write(data[2 * 1024 * 1024 :])
    video = await upload.finish()
    assert video["sha256"] == hashlib.sha256(data).hexdigest()
    took = await wait_until(lambda: live_copies(cluster, data) == 3, "healed to 3 copies", 30)
    print(f"replica lost mid-upload re-made {took:.2f}s after commit")


async def test_a_chain_that_loses_a_node_while_forming_is_formed_again_without_it(fresh_cluster):
    """Four datanodes, one frozen (SIGSTOP, a silent partition) before it is declared dead:
    every upload is stored three times when it commits, none on the frozen node. A chain
    forms once over the nodes that accepted its opening, so an upload placed on the
    frozen node used to commit with two copies, the node placed in its stead left out."""
    cluster = fresh_cluster(datanodes=4, master_args=("--stall-timeout", "1", "--dead-after", "120"))
    frozen = cluster.datanodes[0]
    frozen.pause()
    try:
        # Each upload places the frozen node with probability 3/4: one of four misses it
        # with probability 1/256.
        for number in range(4):
            data = mp4_bytes(os.urandom(64 * 1024))
            await store(cluster, f"rechained-{number}.mp4", data)
            holders = holders_of(cluster, data)  # at once: before any repair could add one
            assert len(holders) == 3 and frozen not in holders
    finally:
        frozen.resume()


async def test_upload_fails_cleanly_when_too_few_replicas_remain(fresh_cluster):
    """Losing 2 of 3 replicas mid-upload fails it with a reason and leaves no file or listing."""
    cluster = fresh_cluster()
    upload = await cluster.client().start_upload("doomed.mp4", "video/mp4")
    await upload.write(os.urandom(1024 * 1024))
    writing = [n for n in cluster.datanodes if receiving(cluster.folder(n))]
    for node in writing[:2]:
        node.kill()
    with pytest.raises(RequestFailed) as failed:
        await upload.write(os.urandom(4 * 1024 * 1024))
        await upload.finish()
    assert failed.value.code == "unavailable" and "needed" in failed.value.message
    assert await cluster.client().list() == []
    await wait_until(lambda: not cluster.data_files(writing[2]), "survivor cleaned", 10)


async def test_master_killed_mid_upload_leaves_nothing_committed(fresh_cluster):
    """kill -9 of the master mid-upload: after restart the video is absent and no bytes linger."""
    cluster = fresh_cluster()
    upload = await cluster.client().start_upload("interrupted.mp4", "video/mp4")
    await upload.write(os.urandom(2 * 1024 * 1024))
    cluster.master.kill()
    with pytest.raises((ConnectionError, OSError, RequestFailed)):
        await upload.write(os.urandom(4 * 1024 * 1024))
        await upload.finish()
    cluster.restart_master()
    assert await cluster.client().list() == []
    await wait_until(
        lambda: all(not cluster.data_files(n) for n in cluster.datanodes), "datanodes emptied", 15
    )


async def test_master_killed_at_rest_loses_nothing(fresh_cluster):
    """kill -9 of the master right after commits: every video is listed and readable after."""
    cluster = fresh_cluster()
    videos = {f"safe-{i}.mp4": os.urandom(100_000 + i) for i in range(5)}
    for name, data in videos.items():
        await store(cluster, name, data)
    cluster.master.kill()
    cluster.restart_master()
    client = cluster.client()
    assert sorted(v["name"] for v in await client.list()) == sorted(videos)
    for name, data in videos.items():
        got = await wait_until_readable(client, name, len(data))
        assert got == data


async def wait_until_readable(client, name: str, size: int) -> bytes:
    deadline = time.monotonic() + 15
    while True:
        try:
            return b"".join([piece async for piece in client.read(name, 0, size)])
        except RequestFailed:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_restarted_datanode_drops_stale_copies(fresh_cluster):
    """A datanode down while its video was deleted removes the stale copy when it returns."""
    cluster = fresh_cluster()
    data = mp4_bytes(os.urandom(300_000))
    await store(cluster, "stale.mp4", data)
    absent = cluster.datanodes[0]
    absent.kill()
    await cluster.client().delete("stale.mp4")
    await wait_until(lambda: len(holders_of(cluster, data)) == 1, "live copies deleted", 10)
    cluster.start_datanode(port=absent.port)
    await wait_until(lambda: holders_of(cluster, data) == [], "stale copy deleted", 10)


async def test_scrubber_finds_bitrot_nobody_reads(fresh_cluster):
    """A corrupted replica that is never read is found by the scrubber and repaired."""
    cluster = fresh_cluster(datanode_args=("--scrub-interval", "0.5"))
    data = mp4_bytes(os.urandom(1_000_000))
    await store(cluster, "unwatched.mp4", data)
    path = next(cluster.folder(holders_of(cluster, data)[0]).glob("*.blob"))
    # Overwriting two bytes of a local file: too small to matter to the event loop.
    with open(path, "r+b") as file:  # noqa: ASYNC230
        file.seek(100)
        file.write(b"\xde\xad")
    took = await wait_until(lambda: live_copies(cluster, data) == 3, "rot repaired", 30)
    print(f"bitrot found by the scrubber and repaired in {took:.2f}s")


async def test_full_datanode_gets_no_replicas_and_all_full_is_507(fresh_cluster, http):
    """A node with no room is skipped at placement; when none has room, upload says 507."""
    cluster = fresh_cluster(datanodes=3)
    cluster.start_datanode(extra=("--capacity-bytes", "1000000"))
    full = cluster.datanodes[-1]
    data = mp4_bytes(os.urandom(500_000))
    await store(cluster, "fits.mp4", data)
    assert full not in holders_of(cluster, data) and len(holders_of(cluster, data)) == 3

    tight = fresh_cluster(datanodes=3, datanode_args=("--capacity-bytes", "1000000"))
    status, answer = await upload(http, tight, "nowhere.mp4", data)
    assert status == 507 and "out of space" in answer["error"]


async def test_datanode_losing_its_folder_has_its_replicas_remade(fresh_cluster):
    """A node whose upload folder vanishes reports nothing held; its replicas are re-made."""
    cluster = fresh_cluster(datanodes=4)
    data = mp4_bytes(os.urandom(400_000))
    await store(cluster, "orphaned.mp4", data)
    victim = holders_of(cluster, data)[0]
    shutil.rmtree(cluster.folder(victim))
    took = await wait_until(lambda: len(holders_of(cluster, data)) == 3, "3 copies again", 30)
    print(f"replicas of a lost folder re-made in {took:.2f}s")
    report = await cluster.client().status()
    node = next(n for n in report["datanodes"] if n["address"] == victim.address)
    assert node["state"] == "alive" and node["free_bytes"] == 0  # still up, takes nothing new


async def test_web_answers_503_while_the_master_is_down(fresh_cluster, http):
    """With the master gone the site says so (503, Retry-After), as JSON to scripts and
    as a page to people; it recovers by itself."""
    cluster = fresh_cluster()
    cluster.master.kill()
    async with http.get(f"{cluster.url}/listar") as response:
        assert response.status == 503 and response.headers["Retry-After"]
        assert "not answering" in (await response.json())["error"]
    # A person opening a page reads the same sentence in a page with a way home, not
    # the JSON a script gets (the watch page showed {"error": ...} as plain text).
    async with http.get(f"{cluster.url}/watch/any.mp4", headers={"Accept": "text/html"}) as response:
        assert response.status == 503 and response.headers["Retry-After"]
        assert response.headers["Content-Type"].startswith("text/html")
        page = await response.text()
        assert "Try again shortly" in page and "The storage cluster is not answering" in page
        assert 'href="/"' in page
    cluster.restart_master()
    async with http.get(f"{cluster.url}/listar") as response:
        assert response.status == 200


async def test_master_on_an_emptied_data_dir_deletes_nothing(fresh_cluster):
    """SIGKILL the master, delete its data directory, start it again: every replica stays
    on disk (counted as orphans on /api/status) until an operator purges them, and the log
    says how to recover, also to an operator of myyoutube-cluster (it named only the
    master's own --recover, which such an operator cannot run alone)."""
    cluster = fresh_cluster()
    videos = [mp4_bytes(os.urandom(200_000 + i)) for i in range(3)]
    for i, data in enumerate(videos):
        await store(cluster, f"precious-{i}.mp4", data)
    cluster.master.kill()
    shutil.rmtree(cluster.root / "master")
    cluster.restart_master()
    client = cluster.client()

    async def every_node_reported_its_orphans() -> bool:
        report = await client.status()
        return [node["orphans"] for node in report["datanodes"]] == [len(videos)] * 3

    # Each node has re-registered and been answered (with no deletions) at least once.
    await wait_until(every_node_reported_its_orphans, "orphans counted on every node", 15)
    await asyncio.sleep(cluster.heartbeat_s * 5)  # and several heartbeats more
    assert all(len(holders_of(cluster, data)) == 3 for data in videos)
    assert (await client.status())["orphaned_blobs"] == len(videos)
    assert await client.list() == []
    # One line says what happened and how to recover, by hand or with myyoutube-cluster.
    log = (cluster.root / "logs" / "master.log").read_text()
    assert log.count("start it with --recover") == 1
    assert "(`myyoutube-cluster --recover` for a cluster that command runs)" in log

    assert await client.purge_orphans() == len(videos)
    await wait_until(
        lambda: all(not holders_of(cluster, data) for data in videos), "purged orphans deleted", 10
    )


async def test_datanode_back_on_another_address_keeps_its_replicas(fresh_cluster):
    """A datanode stopped and started from the same data directory on a new port is the
    same node (its id): its copies count at the new address at once, none is re-copied,
    and the old address is gone from the registry and from the transcode slots (where
    `myyoutube status` kept counting it: "4 slots on 4 datanodes" with three)."""
    cluster = fresh_cluster(dead_after_s=30.0)  # long: a copy made meanwhile would show
    data = mp4_bytes(os.urandom(500_000))
    await store(cluster, "moving.mp4", data)
    mover = holders_of(cluster, data)[0]
    folder, old_address = cluster.folder(mover), mover.address
    mover.stop()
    cluster.datanodes.remove(mover)
    moved = cluster.start_datanode(folder=folder)
    assert moved.address != old_address
    client = cluster.client()

    async def registry_moved() -> bool:
        nodes = {node["address"]: node for node in (await client.status())["datanodes"]}
        return old_address not in nodes and nodes.get(moved.address, {}).get("replicas") == 1

    await wait_until(registry_moved, "the node's replicas listed at its new address", 15)
    status = await client.status()
    assert status["under_replicated"] == [] and status["counters"]["repairs"] == 0
    assert old_address not in status["transcoding"]["slots"]
    assert len(holders_of(cluster, data)) == 3


async def test_a_full_spool_disk_is_named_as_the_webs_own_not_the_cluster(fresh_cluster, http, tmp_path):
    """When the web's own disk for uploads (--spool-dir) fills up, an upload is refused
    with 503 and a sentence naming this server's disk and the reason; it used to say
    "The storage cluster is not answering", and the log "master unreachable". Nothing of
    the upload is stored, and the next one that fits is."""
    spool = tmp_path / "spool"
    spool.mkdir()
    with small_disk(spool, "300k"):
        cluster = fresh_cluster(datanodes=2, web_args=("--spool-dir", str(spool)))
        status, answer = await upload(http, cluster, "too-big.mp4", mp4_bytes(os.urandom(1_000_000)))
        assert status == 503, answer
        assert "cannot keep uploads on its own disk just now (No space left on device)" in answer["error"]
        status, answer = await upload(http, cluster, "fits.mp4", mp4_bytes(b"x" * 10_000))
        assert status == 201, answer
        assert [video["name"] for video in await cluster.client().list()] == ["fits.mp4"]
        cluster.stop()
    log = (cluster.root / "logs" / "web.log").read_text()
    assert "own disk failed: No space left on device" in log and "master unreachable" not in log
