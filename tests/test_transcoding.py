"""Transcoding through a real cluster: uploads become web renditions played by HLS.

Each test uploads a tiny source (2-3 s at 320x240, made with PyAV) so a job runs in
seconds, and watches what a viewer would: the public record's state, the /hls playlists,
the rendition bytes, /original and /stream.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import re
import signal
import tempfile
from pathlib import Path

import aiohttp
import pytest
from multidict import CIMultiDict

from harness import holders_of, mp4_bytes, upload, wait_until
from myyoutube.bulk_threads import BULK_NICE
from myyoutube.master.jobs import MAX_ATTEMPTS
from myyoutube.media import boxes
from videos import ISSUE_SOURCES, make_clip, make_mp4


def source_bytes(seconds: float = 2.0, maker=make_mp4, **options) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        return maker(Path(folder) / "source", seconds=seconds, **options).read_bytes()


async def record(http, cluster, name: str) -> dict:
    async with http.get(f"{cluster.url}/listar", headers=cluster.admin_headers()) as response:
        videos = (await response.json())["videos"]
    return next(video for video in videos if video["name"] == name)


async def wait_for_state(http, cluster, name: str, state: str, timeout_s: float = 60.0) -> dict:
    async def reached() -> bool:
        return (await record(http, cluster, name))["state"] == state

    await wait_until(reached, f"{name} is {state}", timeout_s)
    return await record(http, cluster, name)


async def get(http, cluster, path: str, **headers) -> tuple[int, CIMultiDict, bytes]:
    async with http.get(f"{cluster.url}{path}", headers={**cluster.admin_headers(), **headers}) as response:
        return response.status, response.headers.copy(), await response.read()


def moof_offsets(data: bytes) -> set[int]:
    return {box.offset for box in boxes.boxes_in(data, 0, len(data)) if box.kind == b"moof"}


async def test_an_upload_becomes_ready_and_plays_by_hls(cluster, http):
    """An upload is processing, then ready with its renditions listed; the master and media
    playlists parse, every byte range lands on a moof of the rendition's blob, and the
    original downloads byte for byte under its own name."""
    data = source_bytes(2.0)
    status, answer = await upload(http, cluster, "ladder.mp4", data)
    assert status == 201
    assert (answer["size"], answer["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    first = await record(http, cluster, "ladder.mp4")
    assert first["state"] in ("processing", "ready") and first["playable_original"] is True
    assert 0 <= first["progress"] <= 100 and first["failure"] is None

    ready = await wait_for_state(http, cluster, "ladder.mp4", "ready")
    assert [r["height"] for r in ready["renditions"]] == [240]
    assert ready["renditions"][0]["width"] == 320 and ready["renditions"][0]["bandwidth"] > 0

    status, headers, master = await get(http, cluster, "/hls/ladder.mp4/master.m3u8")
    assert status == 200 and headers["Content-Type"].startswith("application/vnd.apple.mpegurl")
    assert "RESOLUTION=320x240" in master.decode() and "\n240.m3u8\n" in master.decode()
    status, headers, playlist = await get(http, cluster, "/hls/ladder.mp4/240.m3u8")
    assert status == 200 and headers["Cache-Control"] == "public, no-cache"

    async def counted() -> bool:  # the master playlist started a viewing, as /stream does
        return (await record(http, cluster, "ladder.mp4"))["views"] == 1

    await wait_until(counted, "the HLS viewing is counted")
    status, headers, blob = await get(http, cluster, "/hls/ladder.mp4/240.mp4")
    assert status == 200 and headers["Content-Type"] == "video/mp4"
    ranges = [tuple(map(int, m)) for m in re.findall(r"BYTERANGE:(\d+)@(\d+)", playlist.decode())]
    assert ranges and {offset for _, offset in ranges} <= moof_offsets(blob)
    init = re.search(r'EXT-X-MAP:URI="240.mp4",BYTERANGE="(\d+)@0"', playlist.decode())
    assert init is not None and blob[4:8] == b"ftyp"
    assert ranges[0][1] == int(init[1])  # the segments follow the init segment, back to back
    assert all(a[1] + a[0] == b[1] for a, b in itertools.pairwise(ranges))
    offset = ranges[-1][1]
    status, _, piece = await get(
        http, cluster, "/hls/ladder.mp4/240.mp4", Range=f"bytes={offset}-{offset + 7}"
    )
    assert status == 206 and piece[4:8] == b"moof"
    for missing in ("9999.mp4", "9999.m3u8"):  # a rung the ladder has not: named in words
        status, _, body = await get(http, cluster, f"/hls/ladder.mp4/{missing}")
        assert status == 404 and json.loads(body)["error"] == "This video has no 9999p rendition."

    status, headers, original = await get(http, cluster, "/original/ladder.mp4")
    assert status == 200 and original == data and headers["Content-Type"] == "video/mp4"
    assert headers["Content-Disposition"].startswith('attachment; filename="ladder.mp4"')
    status, headers, streamed = await get(http, cluster, "/stream/ladder.mp4")
    assert status == 200 and streamed == blob  # the best rendition, once there is one


# Which of test_media_transcode's sources browsers play as they are.
PLAYABLE_AS_IS = {"vp9.webm", "h264.mov", "portrait.mp4"}


@pytest.mark.parametrize("name, container, codec, options", ISSUE_SOURCES, ids=[s[0] for s in ISSUE_SOURCES])
async def test_every_kind_of_upload_becomes_ready_with_a_web_rendition(
    cluster, http, name, container, codec, options
):
    """HEVC (MKV, MP4), MPEG-4 Part 2 AVI, H.264 TS, MPEG-2 PS, VP9 WebM, MOV, 10-bit and
    portrait uploads: playable_original says which browsers play as they are; each becomes
    ready with an H.264 rendition (portrait kept portrait) that HLS lists and /stream
    serves as MP4, while /original still gives the file back byte for byte."""
    with tempfile.TemporaryDirectory() as folder:
        data = make_clip(Path(folder) / name, container, codec, seconds=1.0, **options).read_bytes()
    status, _ = await upload(http, cluster, f"kind-{name}", data)
    assert status == 201
    assert (await record(http, cluster, f"kind-{name}"))["playable_original"] is (name in PLAYABLE_AS_IS)
    ready = await wait_for_state(http, cluster, f"kind-{name}", "ready")
    (rendition,) = ready["renditions"]
    assert (rendition["width"] < rendition["height"]) is (name == "portrait.mp4")
    status, _, playlist = await get(http, cluster, f"/hls/kind-{name}/master.m3u8")
    assert status == 200 and f"\n{rendition['height']}.m3u8\n" in playlist.decode()
    status, headers, _ = await get(http, cluster, f"/stream/kind-{name}", Range="bytes=0-1")
    assert status == 206 and headers["Content-Type"] == "video/mp4"
    assert (await get(http, cluster, f"/original/kind-{name}"))[2] == data


async def test_the_original_is_served_by_range_with_its_validators(cluster, http):
    """/original answers ranges with the original's strong ETag (its sha256): a resumed
    download with If-Range gets 206 and the exact bytes; a stale If-Range gets it whole.
    /api/status counts the jobs by state."""
    data = source_bytes(1.0)
    status, answer = await upload(http, cluster, "resume me.mp4", data)
    assert status == 201
    etag = f'"{answer["sha256"]}"'
    status, headers, _ = await get(http, cluster, "/original/resume%20me.mp4", Range="bytes=0-0")
    assert status == 206 and headers["ETag"] == etag and headers["Content-Range"] == f"bytes 0-0/{len(data)}"
    assert "filename*=UTF-8''resume%20me.mp4" in headers["Content-Disposition"]
    status, _, rest = await get(
        http, cluster, "/original/resume%20me.mp4", Range="bytes=100-", **{"If-Range": etag}
    )
    assert status == 206 and rest == data[100:]
    status, _, whole = await get(
        http, cluster, "/original/resume%20me.mp4", Range="bytes=100-", **{"If-Range": '"stale"'}
    )
    assert status == 200 and whole == data
    status, _, body = await get(http, cluster, "/api/status")
    assert set(json.loads(body)["transcoding"]["jobs"]) == {"queued", "running", "failed"}


async def test_playlists_of_a_video_one_may_not_see_are_404(cluster, http):
    """HLS follows /stream's visibility: an anonymous visitor gets 404 for a private video's
    playlists and rendition, and an admin's copies may be kept only in the admin's own
    cache (a shared cache must never hold them), as a public video's may in any."""
    with tempfile.TemporaryDirectory() as folder:
        data = make_mp4(Path(folder) / "p.mp4", seconds=1.0).read_bytes()
    client = cluster.client()
    started = await client.start_upload("hidden.mp4", "video/mp4", visibility="private")
    await started.write(data)
    await started.finish({"width": 320, "height": 240, "duration_s": 1.0})
    client.close()
    await wait_for_state(http, cluster, "hidden.mp4", "ready")
    for path in ("master.m3u8", "240.m3u8", "240.mp4"):
        async with http.get(f"{cluster.url}/hls/hidden.mp4/{path}") as response:
            assert response.status == 404, path
        status, headers, _ = await get(http, cluster, f"/hls/hidden.mp4/{path}")
        assert status == 200 and headers["Cache-Control"] == "private, no-cache", path
    async with http.get(f"{cluster.url}/original/hidden.mp4") as response:
        assert response.status == 404


def worker_pids(node) -> list[int]:
    """The transcode workers a datanode process has running: its child processes that
    already run the worker. A child caught between fork and exec is still a copy of the
    datanode, whose event loop waits for that exec (libuv's spawn): stopping it there
    froze the datanode itself, not a worker (seen once under load)."""
    children = []
    for task in Path(f"/proc/{node.process.pid}/task").iterdir():
        try:
            children += [int(pid) for pid in (task / "children").read_text().split()]
        except FileNotFoundError:
            pass
    return [pid for pid in children if _runs_the_worker(pid)]


def _runs_the_worker(pid: int) -> bool:
    try:
        return b"myyoutube.datanode.transcode_worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False  # gone already


async def a_node_transcoding(cluster) -> tuple:
    """Wait for a datanode to run a worker; (that node, the worker's pid)."""
    found: list = []

    def look() -> bool:
        found[:] = [
            (node, pids[0]) for node in cluster.datanodes if node.alive() and (pids := worker_pids(node))
        ]
        return bool(found)

    await wait_until(look, "a datanode runs a transcode worker", 60.0)
    return found[0]


def kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


async def upload_longer(http, cluster, name: str) -> bytes:
    """A source whose jobs last a few seconds each (three rungs: 240p, 360p, 480p)."""
    data = source_bytes(8.0, width=640, height=480)
    status, _ = await upload(http, cluster, name, data)
    assert status == 201
    return data


def nice_value(stat_file: Path) -> int:
    """The nice value in a /proc stat file (its field 19)."""
    return int(stat_file.read_text().rpartition(")")[2].split()[16])


def nice_values(pid: int) -> set[int]:
    """The nice value of each thread of process `pid`."""
    values = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            values.add(nice_value(task / "stat"))
        except OSError:
            continue  # the thread ended meanwhile
    return values


async def test_a_transcode_worker_runs_below_its_datanode(cluster, http):
    """A transcode worker, and every thread FFmpeg starts in it, runs BULK_NICE steps below
    its datanode: on cores shared with viewers, a transcode takes what they leave."""
    await upload_longer(http, cluster, f"niced-{os.urandom(4).hex()}.mp4")
    node, worker = await a_node_transcoding(cluster)
    node_nice = nice_value(Path(f"/proc/{node.process.pid}/stat"))  # its event loop's thread
    seen: list[set[int]] = []

    def look() -> bool:
        try:
            seen.append(nice_values(worker))
        except FileNotFoundError:
            return True  # it finished: what it was last seen at decides
        # Caught before its first line, the worker may not have lowered itself yet.
        return seen[-1] == {min(node_nice + BULK_NICE, 19)}

    await wait_until(look, "the worker lowers itself, or ends", 10.0)
    await asyncio.sleep(0.5)  # FFmpeg's threads are started by then
    look()
    assert seen and seen[-1] == {min(node_nice + BULK_NICE, 19)}, (
        f"node at {node_nice}, the worker's threads at {seen}"
    )


async def test_a_job_whose_datanode_is_killed_finishes_elsewhere(fresh_cluster, http):
    """SIGKILL the datanode running a job: its lease expires, the job goes to another node,
    and the video ends ready with every rung."""
    cluster = fresh_cluster(datanodes=4)
    await upload_longer(http, cluster, "survivor.mp4")
    node, worker = await a_node_transcoding(cluster)
    node.kill()
    kill_pid(worker)  # the orphaned worker is ours too; it would only waste a core
    ready = await wait_for_state(http, cluster, "survivor.mp4", "ready", timeout_s=120.0)
    assert [r["height"] for r in ready["renditions"]] == [240, 360, 480]
    status, _, _ = await get(http, cluster, "/hls/survivor.mp4/480.m3u8")
    assert status == 200
    # The master's log shows the killed node's job leased a second time, to another node.
    leases = re.findall(
        r"transcode job (\w+) .* leased to (\S+)", (cluster.root / "logs" / "master.log").read_text()
    )
    again = [job for job in {job for job, _ in leases} if sum(j == job for j, _ in leases) > 1]
    assert again and all(node.address in {to for j, to in leases if j == job} for job in again), (
        "the job ran on the killed node"
    )
    assert any({to for j, to in leases if j == job} - {node.address} for job in again)


async def test_a_stalled_worker_is_stopped_and_its_job_retried(fresh_cluster, http):
    """A transcode worker that stops making progress (SIGSTOP: what a decoder looping on a
    crafted file looks like) is killed once the datanode's --transcode-stall-timeout
    passes, its job is retried, and the video still ends ready with every rung; before,
    the heartbeats renewed the job's lease for ever and the video stayed processing."""
    # 10 s: twice a quiet worker's longest silence (WORKER_ALIVE_EVERY_S); a working one
    # on this short source prints a line every 1 % of it, and a needless stop would only
    # retry the job, which this test lets end ready too.
    cluster = fresh_cluster(datanode_args=("--transcode-stall-timeout", "10"))
    await upload_longer(http, cluster, "stalled.mp4")
    _, worker = await a_node_transcoding(cluster)
    os.kill(worker, signal.SIGSTOP)
    try:
        await wait_until(lambda: not Path(f"/proc/{worker}").exists(), "the stalled worker is killed", 60.0)
    finally:
        kill_pid(worker)  # if the datanode did not, a stopped worker would outlive the test
    ready = await wait_for_state(http, cluster, "stalled.mp4", "ready", timeout_s=120.0)
    assert [r["height"] for r in ready["renditions"]] == [240, 360, 480]
    assert "made no progress for 10 s" in (cluster.root / "logs" / "master.log").read_text()


async def test_a_transcoding_node_restarted_more_than_max_attempts_times_still_finishes(fresh_cluster, http):
    """The only transcoding datanode is killed (with its worker) and started again in
    the middle of a video's only job as many times as a job may fail: the video still ends ready with
    every rung, because a lost node costs the job no attempt (before, the third restart
    left the video failed for good with "The datanode transcoding it stopped answering")."""
    cluster = fresh_cluster(datanode_args=("--transcode-slots", "0"))
    status, _ = await upload(http, cluster, "restarted.mp4", source_bytes(8.0))  # one rung: one job
    assert status == 201
    transcoder = cluster.start_datanode(extra=("--transcode-slots", "1"))
    for _ in range(MAX_ATTEMPTS):
        await wait_until(
            lambda node=transcoder: bool(worker_pids(node)), "the transcoding node runs a worker", 60.0
        )
        workers = worker_pids(transcoder)
        transcoder.kill()
        for worker in workers:
            kill_pid(worker)
        transcoder = cluster.start_datanode(port=transcoder.port, extra=("--transcode-slots", "1"))
    ready = await wait_for_state(http, cluster, "restarted.mp4", "ready", timeout_s=120.0)
    assert [r["height"] for r in ready["renditions"]] == [240]


async def test_a_rotten_local_source_replica_is_not_transcoded(fresh_cluster, http):
    """The transcoding node's own replica of the source rots on disk (its `moov`, in the
    last block, zeroed behind the checksums' back, before the slow scrubber gets there):
    the node checks the replica's CRC32Cs before the worker reads the file in place,
    reports it corrupt and transcodes the good copy fetched through the master, so the
    video ends ready (before, the worker read the rotten file directly, every attempt
    failed as "not a video", and a good upload ended failed)."""
    # A scrubber this slow verifies the first block and then waits minutes for the next.
    cluster = fresh_cluster(datanode_args=("--transcode-slots", "0", "--scrub-bytes-per-s", "1024"))
    data = source_bytes(8.0, width=640, height=480, faststart=False)  # 2 blocks, moov last
    status, _ = await upload(http, cluster, "rotten.mp4", data)
    assert status == 201
    node = holders_of(cluster, data)[0]
    replica = next(p for p in cluster.folder(node).glob("*.blob") if p.read_bytes() == data)
    node.kill()
    with replica.open("r+b") as file:
        file.seek(len(data) - 4096)
        file.write(bytes(4096))  # the .crc file still describes the original
    cluster.start_datanode(port=node.port, extra=("--transcode-slots", "1"))
    ready = await wait_for_state(http, cluster, "rotten.mp4", "ready", timeout_s=90.0)
    assert [r["height"] for r in ready["renditions"]] == [240, 360, 480] and ready["failure"] is None
    log = "".join(path.read_text() for path in (cluster.root / "logs").glob("datanode-*.log"))
    assert "transcoding from another replica" in log and "fails its CRC32C check" in log


async def test_a_master_restart_mid_job_loses_no_job(fresh_cluster, http):
    """The master is killed while a job runs and started again: every job still ends, and
    the video is ready with every rung."""
    cluster = fresh_cluster()
    await upload_longer(http, cluster, "restart.mp4")
    await a_node_transcoding(cluster)
    cluster.master.kill()
    cluster.restart_master()
    ready = await wait_for_state(http, cluster, "restart.mp4", "ready", timeout_s=120.0)
    assert [r["height"] for r in ready["renditions"]] == [240, 360, 480]


async def test_deleting_a_video_mid_transcode_leaves_no_blob_anywhere(fresh_cluster, http):
    """Delete while a job runs: the job is cancelled, and the original, poster and every
    rendition already made are removed from every datanode; no work file is left."""
    cluster = fresh_cluster()
    await upload_longer(http, cluster, "gone.mp4")
    await a_node_transcoding(cluster)
    async with http.delete(f"{cluster.url}/videos/gone.mp4", headers=cluster.admin_headers()) as response:
        assert response.status == 200

    def nothing_left() -> bool:
        no_workers = not any(worker_pids(node) for node in cluster.datanodes)
        return (
            no_workers
            and not any(cluster.blob_files().values())
            and not cluster.stray_files() + cluster.work_files()
        )

    await wait_until(nothing_left, "no blob, work file or worker left", 60.0)
    await asyncio.sleep(10 * cluster.heartbeat_s)  # nothing comes back later
    assert nothing_left()


async def test_deleting_a_video_mid_transcode_costs_other_videos_jobs_nothing(fresh_cluster, http):
    """Delete a video while its jobs run and another video's wait: the heartbeat answer
    that cancels a deleted job hands the freed slot to a waiting one, and the node takes
    it (before, the cancelled job's task still counted, the node refused the new job as
    "no free transcode slot" and that job lost an attempt and waited out a backoff)."""
    cluster = fresh_cluster()
    await upload_longer(http, cluster, "doomed.mp4")
    await upload_longer(http, cluster, "kept.mp4")
    await a_node_transcoding(cluster)
    async with http.delete(f"{cluster.url}/videos/doomed.mp4", headers=cluster.admin_headers()) as response:
        assert response.status == 200
    ready = await wait_for_state(http, cluster, "kept.mp4", "ready", timeout_s=120.0)
    assert [r["height"] for r in ready["renditions"]] == [240, 360, 480]
    log = (cluster.root / "logs" / "master.log").read_text()
    assert "no free transcode slot" not in log
    leases = re.findall(r"transcode job (\w+) \(\w+ of kept\.mp4\) leased to", log)
    assert len(leases) == len(set(leases)) == 3, leases  # each of its jobs leased once


async def test_a_job_that_always_fails_ends_failed_with_its_reason(fresh_cluster, http):
    """A source the transcoder cannot read (committed straight to the master with a picture
    size, so jobs are made) is retried, then shown failed with the transcoder's sentence,
    and its playlists answer 404 with it."""
    cluster = fresh_cluster()
    client = cluster.client()
    started = await client.start_upload("broken.mp4", "video/mp4")
    await started.write(b"this is not a video " * 500)
    await started.finish({"width": 320, "height": 240, "duration_s": 2.0})
    client.close()
    failed = await wait_for_state(http, cluster, "broken.mp4", "failed", timeout_s=120.0)
    assert "not a video" in failed["failure"] and failed["renditions"] == []
    status, _, body = await get(http, cluster, "/hls/broken.mp4/master.m3u8")
    assert status == 404 and b"not a video" in body


async def test_a_node_without_the_source_fetches_it_through_the_master_over_tls(fresh_cluster, http):
    """On a TLS cluster whose only transcoding datanode holds no replica of the source, the
    job still runs there: the node fetches the source through the master and stores the
    rendition back (both requests allowed to the datanode role, and only to it)."""
    cluster = fresh_cluster(datanode_args=("--transcode-slots", "0"), tls=True)
    data = source_bytes(2.0)
    status, _ = await upload(http, cluster, "fetched.mp4", data)
    assert status == 201
    transcoder = cluster.start_datanode(extra=("--transcode-slots", "1"))
    ready = await wait_for_state(http, cluster, "fetched.mp4", "ready")
    assert [r["height"] for r in ready["renditions"]] == [240]
    assert transcoder not in holders_of(cluster, data)
    log = (cluster.root / "logs" / "master.log").read_text()
    assert f"leased to {transcoder.address}" in log


async def test_a_multipart_answer_never_mixes_the_original_with_its_rendition(fresh_cluster, http):
    """A download asks two ranges of a video in one request (multipart/byteranges) and
    reads the first slowly; meanwhile the video's web rendition is made and takes the
    'video' part's place. The answer's headers (ETag, sizes) describe the original, so
    its second range must not come from the rendition: the connection is cut instead.
    It used to go on with the rendition's bytes under the original's ETag."""
    cluster = fresh_cluster(datanode_args=("--transcode-slots", "0"))
    data = mp4_bytes(os.urandom(24 * 1024 * 1024))  # its first range outgrows every buffer
    status, _ = await upload(http, cluster, "two-files.mp4", data)
    assert status == 201
    headers = {**cluster.admin_headers(), "Range": "bytes=1000-20971519,0-99"}
    async with http.get(f"{cluster.url}/stream/two-files.mp4", headers=headers) as response:
        assert response.status == 206
        await response.content.readexactly(4096)  # the web is now held inside the first range
        cluster.start_datanode(extra=("--transcode-slots", "1"))
        await wait_for_state(http, cluster, "two-files.mp4", "ready", timeout_s=120.0)
        try:
            body = await response.content.read()
        except aiohttp.ClientPayloadError:
            return  # cut: the client knows the answer is incomplete
    second_part = body[body.rindex(b"Content-Range: bytes 0-99/") :].split(b"\r\n\r\n", 1)[1][:100]
    assert second_part == data[:100], "the second range came from another file"
