"""Transcoding through a real cluster: uploads become web renditions played by HLS.

Each test uploads a tiny source (2-3 s at 320x240, made with PyAV) so a job runs in
seconds, and watches what a viewer would: the public record's state, the /hls playlists,
the rendition bytes, /original and /stream.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
import signal
import tempfile
from pathlib import Path

from harness import holders_of, upload, wait_until
from myyoutube.media import boxes
from videos import make_clip, make_mp4


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


async def get(http, cluster, path: str, **headers) -> tuple[int, dict, bytes]:
    async with http.get(f"{cluster.url}{path}", headers={**cluster.admin_headers(), **headers}) as response:
        return response.status, dict(response.headers), await response.read()


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
    status, _, playlist = await get(http, cluster, "/hls/ladder.mp4/240.m3u8")
    assert status == 200
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

    status, headers, original = await get(http, cluster, "/original/ladder.mp4")
    assert status == 200 and original == data and headers["Content-Type"] == "video/mp4"
    assert headers["Content-Disposition"].startswith('attachment; filename="ladder.mp4"')
    status, headers, streamed = await get(http, cluster, "/stream/ladder.mp4")
    assert status == 200 and streamed == blob  # the best rendition, once there is one


async def test_a_source_browsers_cannot_play_is_not_playable_until_transcoded(cluster, http):
    """An MPEG-4 Part 2 AVI is accepted, its original is marked not playable as it is, and
    it becomes ready with a rendition that /stream then serves as MP4."""
    with tempfile.TemporaryDirectory() as folder:
        data = make_clip(Path(folder) / "clip.avi", "avi", "mpeg4", seconds=2.0).read_bytes()
    status, _ = await upload(http, cluster, "old.avi", data)
    assert status == 201
    assert (await record(http, cluster, "old.avi"))["playable_original"] is False
    ready = await wait_for_state(http, cluster, "old.avi", "ready")
    assert ready["renditions"]
    status, headers, _ = await get(http, cluster, "/stream/old.avi", Range="bytes=0-1")
    assert status == 206 and headers["Content-Type"] == "video/mp4"
    status, headers, original = await get(http, cluster, "/original/old.avi")
    assert original == data and headers["Content-Type"] == "video/x-msvideo"


async def test_playlists_of_a_video_one_may_not_see_are_404(cluster, http):
    """HLS follows /stream's visibility: an anonymous visitor gets 404 for a private video's
    playlists and rendition."""
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
    async with http.get(f"{cluster.url}/original/hidden.mp4") as response:
        assert response.status == 404


__all__ = ["asyncio", "holders_of", "signal"]
