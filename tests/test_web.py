"""The HTTP contract of the web front end, through a real cluster."""

from __future__ import annotations

import asyncio
import hashlib
import os
import unicodedata
import uuid
from urllib.parse import quote

import aiohttp
import pytest

import harness
from harness import free_box_header, mp4_bytes, multipart, tiny_mp4, wait_until
from videos import make_webm

BIG_VIDEO_BYTES = 101 * 1024 * 1024 + 12345  # past 100 MB, and not a multiple of a chunk


def unique(stem: str = "clip", ext: str = ".mp4") -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}{ext}"


async def upload(http, cluster, name: str, data, content_type="video/mp4"):
    form = aiohttp.FormData()
    form.add_field("file", data, filename=name, content_type=content_type)
    async with http.post(f"{cluster.url}/upload", data=form, headers=cluster.admin_headers()) as response:
        return response.status, await response.json()


async def test_upload_then_stream_is_byte_identical(cluster, http):
    """A few-MB upload answers 201 with name, size and sha256, and streams back unchanged."""
    data = mp4_bytes(os.urandom(3 * 1024 * 1024 + 7))
    name = unique()
    status, body = await upload(http, cluster, name, data)
    assert status == 201, body
    assert body == {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    async with http.get(f"{cluster.url}/stream/{name}") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "video/mp4"
        assert response.headers["Content-Length"] == str(len(data))
        assert response.headers["Accept-Ranges"] == "bytes"
        assert await response.read() == data


def write_big_video(path) -> hashlib._Hash:
    """Write a BIG_VIDEO_BYTES video (a tiny MP4, then a free box) to `path`; its sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as file:
        head = tiny_mp4()
        head += free_box_header(BIG_VIDEO_BYTES - len(head) - 8)
        file.write(head)
        digest.update(head)
        block = os.urandom(1024 * 1024)
        remaining = BIG_VIDEO_BYTES - len(head)
        while remaining:
            piece = block[: min(remaining, len(block))]
            file.write(piece)
            digest.update(piece)
            remaining -= len(piece)
    return digest


async def test_one_videos_record_is_what_the_listing_says(cluster, http):
    """GET /videos/{name} answers the video's record as /listar lists it (the watch page
    polls it while the video is processed); an unknown name is a 404 with a sentence."""
    name = unique()
    status, body = await upload(http, cluster, name, tiny_mp4())
    assert status == 201, body
    async with http.get(f"{cluster.url}/videos/{name}") as response:
        assert response.status == 200
        record = await response.json()
    async with http.get(f"{cluster.url}/listar") as response:
        listed = {video["name"]: video for video in (await response.json())["videos"]}
    assert record == listed[name]
    async with http.get(f"{cluster.url}/videos/{unique()}") as response:
        assert response.status == 404
        assert (await response.json())["error"]


async def test_upload_larger_than_100_mb_round_trips(cluster, http, tmp_path):
    """A file over 100 MB is streamed in and out whole, sha256 equal, 3 replicas on disk."""
    path = tmp_path / "big.mp4"
    digest = await asyncio.to_thread(write_big_video, path)
    name = unique("big")
    # Opening is instant, and aiohttp reads a file body in its executor.
    with open(path, "rb") as file:  # noqa: ASYNC230
        status, body = await upload(http, cluster, name, file)
    assert status == 201, body
    assert body["size"] == BIG_VIDEO_BYTES and body["sha256"] == digest.hexdigest()
    streamed = hashlib.sha256()
    async with http.get(f"{cluster.url}/stream/{name}") as response:
        async for piece in response.content.iter_chunked(1024 * 1024):
            streamed.update(piece)
    assert streamed.hexdigest() == digest.hexdigest()
    sizes = [
        f.stat().st_size
        for files in cluster.blob_files().values()
        for f in files
        if f.stat().st_size == BIG_VIDEO_BYTES
    ]
    assert len(sizes) == 3


async def test_each_video_has_three_replicas_on_distinct_datanodes(cluster, http):
    """Every committed video's bytes sit in 3 different datanode folders, equal to the upload."""
    data = mp4_bytes(os.urandom(500_000))
    status, _ = await upload(http, cluster, unique(), data)
    assert status == 201
    holders = [
        port for port, files in cluster.blob_files().items() if any(f.read_bytes() == data for f in files)
    ]
    assert len(holders) == 3 and len(set(holders)) == 3


@pytest.mark.parametrize(
    "header, expected_range, status",
    [
        ("bytes=0-99", (0, 100), 206),
        ("bytes=1000-", (1000, None), 206),
        ("bytes=-500", (-500, None), 206),
        ("bytes=0-1", (0, 2), 206),
        ("bytes=999999999-", None, 416),
    ],
)
async def test_single_ranges(cluster, http, header, expected_range, status):
    """Each single-range form is answered 206 with the right bytes and Content-Range, or 416."""
    data = mp4_bytes(os.urandom(200_000))
    name = unique()
    assert (await upload(http, cluster, name, data))[0] == 201
    async with http.get(f"{cluster.url}/stream/{name}", headers={"Range": header}) as response:
        assert response.status == status
        body = await response.read()
        if status == 416:
            assert response.headers["Content-Range"] == f"bytes */{len(data)}"
            return
        start, stop = expected_range
        expected = data[start:stop]
        first = start % len(data)
        assert body == expected
        assert response.headers["Content-Range"] == f"bytes {first}-{first + len(expected) - 1}/{len(data)}"


async def test_list_is_newest_first_and_search_is_case_insensitive(cluster, http, tmp_path):
    """/listar shows every stored video newest first; /search matches name parts in any case."""
    tag = uuid.uuid4().hex[:8]
    first, second = f"Holiday-{tag}.mp4", f"holiday-beach-{tag}.webm"
    assert (await upload(http, cluster, first, mp4_bytes(b"1")))[0] == 201
    webm = make_webm(tmp_path / "clip.webm", seconds=1.0).read_bytes()
    assert (await upload(http, cluster, second, webm))[0] == 201
    async with http.get(f"{cluster.url}/listar") as response:
        videos = (await response.json())["videos"]
    names = [v["name"] for v in videos]
    assert names.index(second) < names.index(first)
    assert {"name", "size", "uploaded_at"} <= set(videos[0])
    async with http.get(f"{cluster.url}/search", params={"q": f"HOLIDAY-BEACH-{tag.upper()}"}) as response:
        assert [v["name"] for v in (await response.json())["videos"]] == [second]
    async with http.get(f"{cluster.url}/stream/{second}") as response:
        assert response.headers["Content-Type"] == "video/webm"


async def test_same_name_twice_is_409_and_keeps_the_first(cluster, http):
    """A second upload under a taken name gets 409 and the stored bytes stay the first ones."""
    name, data = unique(), mp4_bytes(b"first")
    assert (await upload(http, cluster, name, data))[0] == 201
    status, body = await upload(http, cluster, name, mp4_bytes(b"second"))
    assert status == 409 and "already exists" in body["error"]
    async with http.get(f"{cluster.url}/stream/{name}") as response:
        assert await response.read() == data


async def test_the_uploader_may_choose_the_name_in_the_form(cluster, http):
    """A form field `name` (before the file) names the video instead of the file's own
    name, so a taken name is fixed without renaming the file on disk; the chosen name
    follows the naming rules and may not be taken either."""
    taken, data = unique(), mp4_bytes(b"first")
    assert (await upload(http, cluster, taken, data))[0] == 201

    async def upload_named(chosen: str) -> tuple[int, dict]:
        form = aiohttp.FormData()
        form.add_field("name", chosen)
        form.add_field("file", mp4_bytes(b"second"), filename=taken, content_type="video/mp4")
        async with http.post(f"{cluster.url}/upload", data=form, headers=cluster.admin_headers()) as response:
            return response.status, await response.json()

    chosen = unique("talk", "")
    status, body = await upload_named(f" {chosen} ")
    assert status == 201 and body["name"] == chosen, body
    async with http.get(f"{cluster.url}/stream/{chosen}") as response:
        assert await response.read() == mp4_bytes(b"second")
    status, body = await upload_named(chosen)
    assert status == 409 and "already exists" in body["error"]
    status, body = await upload_named("Talks/2026")
    assert status == 400 and "cannot contain" in body["error"]


async def test_a_full_windows_path_as_the_file_name_names_the_video_by_its_last_part(cluster, http):
    """A form whose file name is a full Windows path, sent raw as the HTML standard has
    browsers send it (old ones sent the whole path), names the video after the file:
    "C:\\Users\\bob\\NAME" is the video NAME. It became "C:UsersbobNAME"; a name
    escaped the RFC way (\\" and \\\\, as some clients send) is still read as meant."""
    name = unique("win")
    body, content_type = multipart(f"C:\\Users\\bob\\{name}", mp4_bytes(b"windows"))
    headers = {"Content-Type": content_type, **cluster.admin_headers()}
    async with http.post(f"{cluster.url}/upload", data=body, headers=headers) as response:
        assert response.status == 201 and (await response.json())["name"] == name
    meant = unique('say "hi"')
    body, content_type = multipart("NAME", mp4_bytes(b"quoted"))
    body = body.replace(b'filename="NAME"', b'filename="' + meant.replace('"', '\\"').encode() + b'"')
    headers["Content-Type"] = content_type
    async with http.post(f"{cluster.url}/upload", data=body, headers=headers) as response:
        assert response.status == 201 and (await response.json())["name"] == meant


async def test_empty_file_is_refused_with_a_sentence(cluster, http):
    """A 0-byte upload is refused with 400 and an explanation, and nothing is listed."""
    name = unique()
    status, body = await upload(http, cluster, name, b"")
    assert status == 400 and "empty" in body["error"]
    async with http.get(f"{cluster.url}/search", params={"q": name}) as response:
        assert (await response.json())["videos"] == []


async def test_upload_past_the_limit_is_413(tmp_path, fresh_cluster, http):
    """A body past --max-upload-bytes is refused (413), by Content-Length and by counting."""
    cluster = fresh_cluster(web_args=("--max-upload-bytes", "100000"))
    status, body = await upload(http, cluster, unique(), mp4_bytes(os.urandom(200_000)))
    assert status == 413 and "limit" in body["error"]

    async def chunked():  # no Content-Length: only counting can catch it
        yield mp4_bytes(b"")
        for _ in range(30):
            yield os.urandom(10_000)

    status, body = await upload(http, cluster, unique(), chunked())
    assert status == 413
    async with http.get(f"{cluster.url}/listar") as response:
        assert (await response.json())["videos"] == []
    await wait_until(lambda: cluster.stray_files() == [], "partial replicas removed", 10)


async def test_unknown_names_routes_and_methods_answer_json_errors(cluster, http):
    """Unknown videos are 404, unknown routes 404, wrong methods 405, each with a sentence."""
    async with http.get(f"{cluster.url}/stream/{unique('nothing')}") as response:
        assert response.status == 404 and "no video" in (await response.json())["error"]
    async with http.get(f"{cluster.url}/no/such/page") as response:
        assert response.status == 404 and (await response.json())["error"]
    async with http.put(f"{cluster.url}/listar") as response:
        assert response.status == 405 and (await response.json())["error"]


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


async def test_a_browser_following_a_dead_link_gets_the_not_found_page(cluster, http):
    """A person who mistypes an address (the browser asks for HTML) reads the site's 404
    page with its header and a way back home, not a line of JSON; scripts still get JSON."""
    async with http.get(f"{cluster.url}/no/such/page", headers={"Accept": BROWSER_ACCEPT}) as response:
        assert response.status == 404
        assert response.headers["Content-Type"].startswith("text/html")
        page = await response.text()
    assert "There is nothing at this address." in page and 'href="/"' in page and 'id="sign-in"' in page


async def test_a_browser_refused_an_admin_page_gets_a_page_saying_why(cluster, http):
    """A signed-in viewer who types /status reads a 403 page in the site's frame with the
    reason, not a line of JSON."""
    name = f"viewer{uuid.uuid4().hex[:6]}"
    fields = {"username": name, "password": "viewer password 1", "role": "viewer"}
    async with http.post(f"{cluster.url}/api/users", json=fields, headers=cluster.admin_headers()) as answer:
        assert answer.status == 201
    token = cluster.sign_in(name, "viewer password 1")
    headers = {"Accept": BROWSER_ACCEPT, "Authorization": f"Bearer {token}"}
    async with http.get(f"{cluster.url}/status", headers=headers) as response:
        assert response.status == 403
        assert response.headers["Content-Type"].startswith("text/html")
        page = await response.text()
    assert "<h1>Not allowed</h1>" in page and "Only an admin may see the cluster status." in page


async def test_home_page_has_upload_form_list_and_search(cluster, http):
    """GET / is an HTML page with the upload form (for an account that may upload), the
    video grid and the search box."""
    async with http.get(cluster.url + "/", headers=cluster.admin_headers()) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/html")
        page = await response.text()
    for marker in ('id="upload-form"', 'id="videos"', 'id="search"'):
        assert marker in page


async def test_the_spool_is_emptied_after_every_upload(fresh_cluster, http, tmp_path):
    """The web's --spool-dir holds an upload's copy only while it is stored: nothing is
    left after a stored upload, a refused one (not a video) or one whose client vanished."""
    spool = tmp_path / "spool"
    spool.mkdir()
    cluster = fresh_cluster(web_args=("--spool-dir", str(spool)))
    status, _ = await upload(http, cluster, unique(), mp4_bytes(os.urandom(2 * 1024 * 1024)))
    assert status == 201
    status, _ = await upload(http, cluster, unique(), tiny_mp4()[:40] + os.urandom(300_000))
    assert status in (415, 422)
    body, content_type = harness.multipart("gone.mp4", mp4_bytes(os.urandom(10 * 1024 * 1024)))
    _, writer = await asyncio.open_connection(cluster.web.host, cluster.web.port)
    head = (
        f"POST /upload HTTP/1.1\r\nHost: {cluster.web.address}\r\nAuthorization: Bearer {cluster.admin_token}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body[: 1024 * 1024])  # a tenth of the form, then gone
    await writer.drain()
    await wait_until(lambda: any(spool.iterdir()), "the vanishing client's upload to be spooled")
    writer.close()  # gone mid-body
    await wait_until(lambda: not any(spool.iterdir()), "the spool to be emptied", timeout_s=10)


async def test_a_name_typed_in_another_unicode_form_finds_the_video(cluster, http):
    """A name is stored in NFC; the same name sent decomposed (NFD: how macOS keyboards
    and file names give "é") streams, edits, counts and deletes that same video, instead
    of a 404 for a name that reads exactly like the listed one."""
    stored = unicodedata.normalize("NFC", f"café-{uuid.uuid4().hex[:6]}.mp4")
    typed = quote(unicodedata.normalize("NFD", stored), safe="")
    assert typed != quote(stored, safe="")
    data = mp4_bytes(os.urandom(2000))
    status, _ = await harness.upload(http, cluster, stored, data)  # the name raw, as browsers send it
    assert status == 201
    async with http.get(f"{cluster.url}/stream/{typed}") as response:
        assert response.status == 200 and await response.read() == data
    async with http.patch(
        f"{cluster.url}/videos/{typed}", json={"title": "Renamed"}, headers=cluster.admin_headers()
    ) as response:
        assert response.status == 200 and (await response.json())["name"] == stored
    async with http.delete(f"{cluster.url}/videos/{typed}", headers=cluster.admin_headers()) as response:
        assert response.status == 200
    async with http.get(f"{cluster.url}/stream/{quote(stored, safe='')}") as response:
        assert response.status == 404


async def test_too_few_datanodes_is_a_503_that_says_so(fresh_cluster, http):
    """With one datanode up and two copies needed, an upload is refused with 503,
    Retry-After and the master's sentence saying how many datanodes run and how many are
    needed, not a generic "could not do this right now" that leaves an operator guessing."""
    cluster = fresh_cluster(datanodes=1)
    form = aiohttp.FormData()
    form.add_field("file", mp4_bytes(os.urandom(1000)), filename=unique("alone"), content_type="video/mp4")
    async with http.post(f"{cluster.url}/upload", data=form, headers=cluster.admin_headers()) as response:
        assert response.status == 503 and response.headers["Retry-After"]
        sentence = (await response.json())["error"]
    assert sentence.startswith("Only 1 datanode is running and 2 are needed"), (
        sentence
    )  # not "1 datanodes are"
    # Nor does the master's log send the operator after the datanodes' network: with too
    # few nodes running, no chain came short of what it was offered, so none is given up
    # for a fan-out ("a chain formed over 0 datanodes only ({}); fanning out instead. If
    # datanodes cannot reach each other's advertised addresses..." after a restart).
    assert "fanning out instead" not in (cluster.root / "logs" / "master.log").read_text()
