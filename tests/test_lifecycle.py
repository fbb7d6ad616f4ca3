"""A video's life: details read on upload, poster, faststart remux, delete everywhere; the
cluster's status and metrics."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from urllib.parse import quote

from PIL import Image

from harness import free_box_header, holders_of, mp4_bytes, upload, wait_until
from myyoutube import media
from myyoutube.cluster_addresses import free_port
from myyoutube.launch import start_role
from videos import make_huge_picture_claim, make_mp4


def unique(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}.mp4"


async def video_record(http, cluster, name: str) -> dict:
    async with http.get(f"{cluster.url}/search", params={"q": name}) as response:
        return next(v for v in (await response.json())["videos"] if v["name"] == name)


async def assert_nothing_stored(http, cluster, name: str) -> None:
    async with http.get(f"{cluster.url}/search", params={"q": name}) as response:
        assert (await response.json())["videos"] == []
    await wait_until(lambda: cluster.stray_files() == [], "no partial replicas", 10)


async def test_upload_records_duration_size_and_codec(cluster, http, tmp_path):
    """/listar carries duration_s, width, height and codec read from the file by PyAV."""
    name = unique("details")
    data = make_mp4(tmp_path / "v.mp4", seconds=3.0, width=320, height=240).read_bytes()
    assert (await upload(http, cluster, name, data))[0] == 201
    video = await video_record(http, cluster, name)
    assert abs(video["duration_s"] - 3.0) < 0.2
    assert (video["width"], video["height"], video["codec"]) == (320, 240, "h264")
    assert video["bitrate"] > 0


async def test_poster_is_a_320px_jpeg_with_caching_headers(cluster, http, tmp_path):
    """/thumbnail serves a ~320 px wide JPEG with a strong ETag, and 304 on revalidation."""
    name = unique("poster")
    data = make_mp4(tmp_path / "v.mp4", seconds=2.0, width=640, height=360).read_bytes()
    assert (await upload(http, cluster, name, data))[0] == 201
    assert (await video_record(http, cluster, name))["has_thumbnail"] is True
    url = f"{cluster.url}/thumbnail/{quote(name, safe='')}"
    async with http.get(url) as response:
        assert response.status == 200 and response.headers["Content-Type"] == "image/jpeg"
        assert response.headers["Cache-Control"] == "public, no-cache"
        etag = response.headers["ETag"]
        image = Image.open(io.BytesIO(await response.read()))
    assert image.format == "JPEG" and image.size == (320, 180)
    async with http.get(url, headers={"If-None-Match": etag}) as response:
        assert response.status == 304


async def test_moov_at_end_is_kept_as_uploaded_and_streamed_from_its_rendition(cluster, http, tmp_path):
    """An MP4 with moov after mdat is stored byte for byte (/upload's sha256 is the file's,
    /original gives it back); once its rendition is made, /stream serves that, moov first."""
    name = unique("camera")
    original = make_mp4(tmp_path / "late.mp4", seconds=2.0, faststart=False).read_bytes()
    assert media.needs_faststart(original[: media.SNIFF_BYTES])
    status, body = await upload(http, cluster, name, original)
    assert status == 201, body
    assert (body["size"], body["sha256"]) == (len(original), hashlib.sha256(original).hexdigest())
    async with http.get(f"{cluster.url}/original/{quote(name, safe='')}") as response:
        assert await response.read() == original

    async def ready() -> bool:
        return (await video_record(http, cluster, name))["state"] == "ready"

    await wait_until(ready, "the rendition is made")
    async with http.get(f"{cluster.url}/stream/{quote(name, safe='')}") as response:
        stored = await response.read()
    assert not media.needs_faststart(stored[: media.SNIFF_BYTES])
    video = await video_record(http, cluster, name)
    assert abs(video["duration_s"] - 2.0) < 0.2 and video["size"] == len(original)


async def test_file_ffmpeg_cannot_read_is_refused_and_not_stored(cluster, http):
    """A file with an MP4 signature but no readable video is 415 and leaves nothing behind."""
    name = unique("broken")
    fake = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + free_box_header(50_000) + os.urandom(50_000)
    status, body = await upload(http, cluster, name, fake)
    assert status == 415 and "not a video" in body["error"]
    await assert_nothing_stored(http, cluster, name)


async def test_upload_cut_short_is_refused_with_its_sentence(cluster, http, tmp_path):
    """An MP4 cut to its first third (it still declares 6 s) is 422 'cut short', and
    nothing of it is stored."""
    name = unique("cut")
    whole = make_mp4(tmp_path / "v.mp4", seconds=6.0).read_bytes()
    status, body = await upload(http, cluster, name, whole[: len(whole) // 3])
    assert status == 422 and "cut short" in body["error"] and "0:06" in body["error"]
    await assert_nothing_stored(http, cluster, name)


async def test_huge_picture_is_refused_with_its_sentence(cluster, http, tmp_path):
    """A 3 KB Matroska file declaring 16000x16000 pixels is 415 naming its size and the
    limit, and nothing of it is stored."""
    name = unique("bomb").replace(".mp4", ".mkv")
    data = make_huge_picture_claim(tmp_path / "bomb.mkv", "matroska", 16000, 16000).read_bytes()
    status, body = await upload(http, cluster, name, data)
    assert status == 415 and "16000x16000" in body["error"] and "8192x8192" in body["error"]
    await assert_nothing_stored(http, cluster, name)


async def test_delete_removes_everywhere_and_frees_the_name(fresh_cluster, http):
    """DELETE drops a video at once, its replicas and poster from every node (even one
    down at the time, when it returns), and the name can be used again."""
    cluster = fresh_cluster()
    name, data = unique("doomed"), mp4_bytes(os.urandom(200_000))
    assert (await upload(http, cluster, name, data))[0] == 201
    assert sum(len(files) for files in cluster.blob_files().values()) == 6  # video + poster, x3
    down = cluster.datanodes[0]
    down.kill()
    async with http.delete(
        f"{cluster.url}/videos/{quote(name, safe='')}", headers=cluster.admin_headers()
    ) as response:
        assert response.status == 200
    async with http.get(f"{cluster.url}/stream/{quote(name, safe='')}") as response:
        assert response.status == 404
    await wait_until(lambda: len(holders_of(cluster, data)) == 1, "live replicas deleted", 10)
    cluster.start_datanode(port=down.port)
    await wait_until(
        lambda: sum(len(f) for f in cluster.blob_files().values()) == 0, "returning node's copies deleted", 10
    )
    assert (await upload(http, cluster, name, mp4_bytes(b"again")))[0] == 201


async def test_delete_of_unknown_name_is_404(cluster, http):
    """Deleting a name that does not exist answers 404 with a sentence."""
    async with http.delete(
        f"{cluster.url}/videos/{unique('ghost')}", headers=cluster.admin_headers()
    ) as response:
        assert response.status == 404 and "no video" in (await response.json())["error"]


async def test_status_page_api_and_metrics_describe_the_cluster(cluster, http):
    """/api/status, /status and /metrics show 3 alive datanodes and the stored videos, and
    /metrics says what each of the master's counters counts."""
    name = unique("counted")
    assert (await upload(http, cluster, name, mp4_bytes(b"x" * 1000)))[0] == 201
    async with http.get(f"{cluster.url}/api/status", headers=cluster.admin_headers()) as response:
        report = await response.json()
    assert [n["state"] for n in report["datanodes"]] == ["alive"] * 3
    assert report["videos"] >= 1 and report["under_replicated"] == []
    assert all(n["replicas"] >= 1 and n["free_bytes"] > 0 for n in report["datanodes"])
    async with http.get(f"{cluster.url}/status", headers=cluster.admin_headers()) as response:
        page = await response.text()
    assert page.count('class="node-alive"') == 3 and "Cluster status" in page
    async with http.get(f"{cluster.url}/metrics", headers=cluster.admin_headers()) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    assert 'myyoutube_up{address="",role="master"} 1.0' in text
    assert text.count('myyoutube_up{address="127.0.0.1:') == 3
    assert "myyoutube_web_uploads_total" in text and "myyoutube_under_replicated_videos 0.0" in text
    # An operator reading bytes_out 0 after hours of viewing is told why (it said only
    # "Master counter bytes_out since it started").
    assert "# HELP myyoutube_master_bytes_out Bytes the master relayed to readers" in text


async def test_the_metrics_port_answers_only_loopback_host_names(cluster, http):
    """A web front end's --metrics-port serves /metrics without a sign-in on 127.0.0.1, to
    loopback Host names only: a page that makes its own name resolve to 127.0.0.1 (DNS
    rebinding), and so says `Host: evil.example`, is refused with 421 instead of reading the
    cluster's addresses and disk space."""
    port = free_port("127.0.0.1")
    args = ["--master", cluster.master.address, "--port", "0", "--metrics-port", str(port)]
    second_web = start_role("myyoutube.web", args, cluster.root / "logs" / "web-metrics.log")
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        async with http.get(url, headers={"Host": f"evil.example:{port}"}) as answer:
            assert answer.status == 421
        async with http.get(url, headers={"Host": f"localhost:{port}"}) as answer:
            assert (
                answer.status == 200 and 'myyoutube_up{address="",role="master"} 1.0' in await answer.text()
            )
    finally:
        second_web.stop()
