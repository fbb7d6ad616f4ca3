"""Resumable uploads (tus 1.0 at /files/) against a real cluster: what survives what."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import os
import sqlite3
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from harness import PER_CLIENT_SLOTS, Cluster, free_box_header, mp4_bytes, wait_until
from myyoutube.master.index_files import INDEX_FILE
from myyoutube.web import local_copy
from myyoutube.web.common import csrf_token
from videos import make_mp4

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}


def unique(stem: str = "tus", ext: str = ".mp4") -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}{ext}"


def metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


async def create(http, url: str, headers: dict, name: str, length: int, **more: str):
    """POST /files/; (status, Location or JSON error)."""
    asked = {
        **TUS,
        **headers,
        "Upload-Length": str(length),
        "Upload-Metadata": metadata(filename=name, **more),
    }
    async with http.post(f"{url}/files/", headers=asked) as response:
        if response.status == 201:
            return 201, response.headers["Location"]
        return response.status, await response.json()


async def offset_of(http, url: str, headers: dict, location: str) -> int:
    async with http.head(f"{url}{location}", headers={**TUS, **headers}) as response:
        assert response.status == 200, response.status
        assert response.headers["Cache-Control"] == "no-store"
        return int(response.headers["Upload-Offset"])


async def patch(http, url: str, headers: dict, location: str, offset: int, data: bytes):
    """PATCH; (status, headers, JSON error or None)."""
    asked = {**TUS, **OCTETS, **headers, "Upload-Offset": str(offset)}
    async with http.patch(f"{url}{location}", headers=asked, data=data) as response:
        body = None if response.status == 204 else await response.json()
        return response.status, response.headers, body


async def chunked(data: bytes) -> AsyncIterator[bytes]:
    """`data` as a body without Content-Length (chunked), a piece at a time."""
    for start in range(0, len(data), 16_384):
        yield data[start : start + 16_384]


async def stream_bytes(http, cluster: Cluster, name: str) -> bytes:
    """The stored original (GET /original: the bytes uploaded, whatever renditions exist)."""
    async with http.get(f"{cluster.url}/original/{name}", headers=cluster.admin_headers()) as response:
        assert response.status == 200, await response.text()
        return await response.read()


def open_blob_files(cluster: Cluster, blob_id: str = "") -> list:
    """Every byte of an unfinished upload on any datanode (open blobs and their checksums),
    or only those of `blob_id`. A chain write (an upload's or a transcoder's rendition)
    stores through open blobs too, so a cluster shared by a module may hold some of those."""
    pattern = f"{blob_id or '*'}.open*"
    return [path for node in cluster.datanodes for path in cluster.folder(node).glob(pattern)]


def session_blob(cluster: Cluster, location: str) -> str:
    """The blob that holds the bytes of the upload at `location`, from the master's index."""
    upload_id = location.rpartition("/")[2]
    index = sqlite3.connect(f"file:{cluster.root / 'master' / INDEX_FILE}?mode=ro", uri=True)
    try:
        row = index.execute(
            "SELECT blob_id FROM upload_sessions WHERE upload_id = ?", (upload_id,)
        ).fetchone()
    finally:
        index.close()
    assert row is not None, f"no session {upload_id} in the index"
    return row[0]


async def test_options_advertise_the_extensions_and_the_size_limit(cluster, http):
    """A tus client learns what this server does from OPTIONS."""
    async with http.options(f"{cluster.url}/files/") as response:
        assert response.status == 204
        assert response.headers["Tus-Version"] == "1.0.0"
        assert set(response.headers["Tus-Extension"].split(",")) == {
            "creation",
            "creation-with-upload",
            "termination",
            "expiration",
        }
        assert int(response.headers["Tus-Max-Size"]) > 0


async def test_upload_in_pieces_becomes_the_same_video(cluster, http):
    """Three PATCHes make a video whose stream is byte for byte the file; HEAD follows the
    offset and tells when the upload expires; the session is gone once committed."""
    data, name, auth = mp4_bytes(os.urandom(900_000)), unique(), cluster.admin_headers()
    status, location = await create(http, cluster.url, auth, name, len(data), title="Three pieces")
    assert status == 201, location
    blob_id = session_blob(cluster, location)
    cuts = [0, 100_000, 600_000, len(data)]
    for start, end in itertools.pairwise(cuts):
        assert await offset_of(http, cluster.url, auth, location) == start
        status, headers, body = await patch(http, cluster.url, auth, location, start, data[start:end])
        assert status == 204, body
        assert int(headers["Upload-Offset"]) == end
        assert "GMT" in headers["Upload-Expires"]
    assert await stream_bytes(http, cluster, name) == data
    video = await cluster.client().stat(name)
    assert video["title"] == "Three pieces"
    async with http.head(f"{cluster.url}{location}", headers={**TUS, **auth}) as response:
        assert response.status == 404
    assert open_blob_files(cluster, blob_id) == []


async def test_wrong_offset_is_409_and_past_the_length_is_refused(cluster, http):
    """A PATCH at another offset than the upload's is 409 and stores nothing; one that
    would pass the declared length is 413; the upload then goes on from its offset."""
    data, name, auth = mp4_bytes(os.urandom(300_000)), unique(), cluster.admin_headers()
    status, location = await create(http, cluster.url, auth, name, len(data))
    status, _, _ = await patch(http, cluster.url, auth, location, 0, data[:50_000])
    assert status == 204
    status, headers, body = await patch(http, cluster.url, auth, location, 10, data[10:20])
    assert status == 409 and "50000" in body["error"]
    assert headers["Upload-Offset"] == "50000"
    status, _, body = await patch(http, cluster.url, auth, location, 50_000, data[50_000:] + b"extra")
    assert status == 413 and "past its end" in body["error"]
    assert await offset_of(http, cluster.url, auth, location) == 50_000
    # Without a Content-Length (chunked) the 413 comes as the bytes pass the end; a first
    # append refused so left an empty copy in the web's temp folder (local_copy.py).
    status, location_of_chunked = await create(http, cluster.url, auth, unique(), 10_000)
    status, _, body = await patch(http, cluster.url, auth, location_of_chunked, 0, chunked(data[:20_000]))
    assert status == 413 and "past its end" in body["error"]
    copy = Path(tempfile.gettempdir()) / f"{local_copy.PREFIX}{location_of_chunked.rpartition('/')[2]}"
    assert not copy.exists()
    status, _, _ = await patch(http, cluster.url, auth, location, 50_000, data[50_000:])
    assert status == 204
    assert await stream_bytes(http, cluster, name) == data


async def test_creation_follows_the_rules_of_plain_uploads(cluster, http):
    """The name is reserved at creation (409 at once when taken), an anonymous visitor is
    401, a file over the limit is 413, a non-video is 415 at its first bytes, and a wrong
    protocol version is 412: each with a sentence."""
    auth, name = cluster.admin_headers(), unique()
    assert (await create(http, cluster.url, auth, name, 1000))[0] == 201
    status, body = await create(http, cluster.url, auth, name, 1000)
    assert status == 409 and name in body["error"]
    status, body = await create(http, cluster.url, {}, unique(), 1000)
    assert status == 401 and body["error"]
    status, body = await create(http, cluster.url, auth, unique(), 10**15)
    assert status == 413 and "limit" in body["error"]
    async with http.post(f"{cluster.url}/files/", headers={**auth, "Tus-Resumable": "0.2.2"}) as response:
        assert response.status == 412 and (await response.json())["error"]
    status, location = await create(http, cluster.url, auth, unique(ext=".txt"), 10_000)
    status, _, body = await patch(http, cluster.url, auth, location, 0, b"hello world " * 800 + b"!" * 400)
    assert status == 415 and "not a video" in body["error"]
    async with http.head(f"{cluster.url}{location}", headers={**TUS, **auth}) as response:
        assert response.status == 404  # the refused upload is gone


async def test_a_resumable_upload_takes_the_name_the_uploader_chose(cluster, http):
    """Upload-Metadata's `name` names the video instead of its `filename`: a file whose
    name is taken is uploaded under another without being renamed on disk."""
    data, taken, chosen, auth = (
        mp4_bytes(os.urandom(200_000)),
        unique(),
        unique("chosen", ""),
        cluster.admin_headers(),
    )
    assert (await create(http, cluster.url, auth, taken, 1000))[0] == 201
    asked = {**TUS, **OCTETS, **auth, "Upload-Length": str(len(data))}
    asked["Upload-Metadata"] = metadata(filename=taken, name=chosen)
    async with http.post(f"{cluster.url}/files/", headers=asked, data=data) as response:
        assert response.status == 201, await response.text()
        assert response.headers["Video-Name"] == chosen
    assert await stream_bytes(http, cluster, chosen) == data
    asked["Upload-Metadata"] = metadata(filename=taken, name=chosen)
    async with http.post(f"{cluster.url}/files/", headers=asked, data=data) as response:
        assert response.status == 409 and chosen in (await response.json())["error"]


async def test_creation_with_upload_and_termination(cluster, http):
    """A creation request may carry the first bytes; DELETE ends an upload at once, with
    every partial byte on every datanode, and frees its name."""
    data, name, auth = mp4_bytes(os.urandom(400_000)), unique(), cluster.admin_headers()
    asked = {
        **TUS,
        **OCTETS,
        **auth,
        "Upload-Length": str(len(data)),
        "Upload-Metadata": metadata(filename=name),
    }
    async with http.post(f"{cluster.url}/files/", headers=asked, data=data[:150_000]) as response:
        assert response.status == 201
        assert response.headers["Upload-Offset"] == "150000"
        location = response.headers["Location"]
    blob_id = session_blob(cluster, location)
    assert len({path.parent for path in open_blob_files(cluster, blob_id)}) == 3
    async with http.delete(f"{cluster.url}{location}", headers={**TUS, **auth}) as response:
        assert response.status == 204
    assert open_blob_files(cluster, blob_id) == []
    assert (await create(http, cluster.url, auth, name, len(data)))[0] == 201


async def test_a_refusal_says_whether_the_name_is_the_problem(cluster, http):
    """A name against the rules is refused (400) saying so ("field": "name"), which the
    upload page reads to offer another name; an empty file is refused without it, since
    another name would not help."""
    auth = cluster.admin_headers()
    status, answer = await create(http, cluster.url, auth, ".hidden.mp4", 1000)
    assert status == 400 and answer["field"] == "name" and "dot" in answer["error"]
    status, answer = await create(http, cluster.url, auth, unique(), 0)
    assert (
        status == 400
        and "field" not in answer
        and answer["error"] == "The file is empty; choose a video file."
    )


async def test_a_creation_carrying_the_whole_file_names_the_video(cluster, http):
    """A creation whose body is the whole file (Creation-With-Upload, as tus clients send
    small files) is answered like the last PATCH: 201 with the offset, the video's name and
    its sha256 (they were missing, so a client could not check what was stored)."""
    data, name, auth = mp4_bytes(os.urandom(50_000)), unique("whole"), cluster.admin_headers()
    asked = {
        **TUS,
        **OCTETS,
        **auth,
        "Upload-Length": str(len(data)),
        "Upload-Metadata": metadata(filename=name),
    }
    async with http.post(f"{cluster.url}/files/", headers=asked, data=data) as response:
        assert response.status == 201, await response.text()
        assert response.headers["Upload-Offset"] == str(len(data))
        assert response.headers["Location"].startswith("/files/")
        assert response.headers["Video-Name"] == name
        assert response.headers["Video-Sha256"] == hashlib.sha256(data).hexdigest()
    assert await stream_bytes(http, cluster, name) == data


async def test_a_refused_creation_body_leaves_the_name_free(cluster, http):
    """A creation whose first bytes are refused (more than its Upload-Length, or not a
    video) is answered with the refusal and leaves nothing behind: the name stays free for
    the next try. It used to stay taken ("already exists", for a video that did not) until
    the upload expired, the client never having learnt its address to end it."""
    auth = cluster.admin_headers()
    data = mp4_bytes(os.urandom(10_000))
    for length, body, status in ((100, data, 413), (len(data), b"not a video at all" * 600, 415)):
        name = unique()
        asked = {
            **TUS,
            **OCTETS,
            **auth,
            "Upload-Length": str(length),
            "Upload-Metadata": metadata(filename=name),
        }
        async with http.post(f"{cluster.url}/files/", headers=asked, data=body) as response:
            assert response.status == status, await response.text()
        assert (await create(http, cluster.url, auth, name, len(data)))[0] == 201


async def test_the_upload_is_kept_as_sent_and_transcoded_and_a_non_video_is_refused(cluster, http, tmp_path):
    """The last byte goes through the plain upload's processing: an MP4 whose moov follows
    its media is the video's original byte for byte (its sha256 the file's) and gets its
    rendition made; a file with an MP4 signature that FFmpeg cannot read is 415 at
    completion, and its upload and bytes are gone."""
    auth = cluster.admin_headers()
    late = make_mp4(tmp_path / "late.mp4", seconds=2.0, faststart=False).read_bytes()
    name = unique("camera")
    _, location = await create(http, cluster.url, auth, name, len(late))
    status, headers, body = await patch(http, cluster.url, auth, location, 0, late)
    assert status == 204, body
    assert headers["Video-Sha256"] == hashlib.sha256(late).hexdigest()
    assert await stream_bytes(http, cluster, name) == late

    async def ready() -> bool:
        return (await cluster.client().stat(name)).get("state") == "ready"

    await wait_until(ready, "the rendition is made", 60)
    fake = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + free_box_header(50_000) + os.urandom(50_000)
    _, location = await create(http, cluster.url, auth, unique("broken"), len(fake))
    blob_id = session_blob(cluster, location)
    status, _, body = await patch(http, cluster.url, auth, location, 0, fake)
    assert status == 415 and body["error"]
    async with http.head(f"{cluster.url}{location}", headers={**TUS, **auth}) as response:
        assert response.status == 404
    assert open_blob_files(cluster, blob_id) == []


async def test_a_browser_session_needs_the_csrf_token(cluster, http):
    """With the session cookie but without the X-CSRF-Token header, creating or patching
    an upload is refused (403): another site cannot make a signed-in browser upload."""
    headers = {**TUS, "Upload-Length": "1000", "Upload-Metadata": metadata(filename=unique())}
    cookie = {"Cookie": f"myyoutube_session={cluster.admin_token}", "Origin": cluster.url}
    async with http.post(f"{cluster.url}/files/", headers={**headers, **cookie}) as response:
        assert response.status == 403 and "security token" in (await response.json())["error"]
    token = csrf_token(cluster.admin_token)
    async with http.post(
        f"{cluster.url}/files/", headers={**headers, **cookie, "X-CSRF-Token": token}
    ) as response:
        assert response.status == 201


async def test_two_patches_at_once_one_wins_the_other_is_409(cluster, http):
    """Two PATCHes at the same offset (a client retrying while its first try still runs):
    the master takes them one at a time, the second finds the offset moved and is 409."""
    data, name, auth = mp4_bytes(os.urandom(2_000_000)), unique(), cluster.admin_headers()
    _, location = await create(http, cluster.url, auth, name, len(data))
    first, second = await asyncio.gather(
        patch(http, cluster.url, auth, location, 0, data[:1_000_000]),
        patch(http, cluster.url, auth, location, 0, data[:1_000_000]),
    )
    assert sorted([first[0], second[0]]) == [204, 409]
    assert await offset_of(http, cluster.url, auth, location) == 1_000_000


async def test_open_uploads_count_against_the_quota_and_look_alike_names_are_taken(cluster, http):
    """An unfinished upload holds its declared length of its owner's quota: a second one
    that would not fit beside it is 413 at creation, and fits once the first is
    cancelled. A name that only looks like one being uploaded is 409 too."""
    client, user = cluster.client(), f"quota{uuid.uuid4().hex[:6]}"
    await client.add_user(user, "a long enough password", "uploader", quota_bytes=1_000_000)
    client.close()
    auth = {"Authorization": f"Bearer {cluster.sign_in(user, 'a long enough password')}"}
    _, first = await create(http, cluster.url, auth, unique(), 800_000)
    status, body = await create(http, cluster.url, auth, unique(), 300_000)
    assert status == 413 and "quota" in body["error"]
    async with http.delete(f"{cluster.url}{first}", headers={**TUS, **auth}) as response:
        assert response.status == 204
    assert (await create(http, cluster.url, auth, unique(), 300_000))[0] == 201
    name = f"сat-{uuid.uuid4().hex[:6]}.mp4"  # Cyrillic с
    assert (await create(http, cluster.url, auth, name, 1000))[0] == 201
    status, body = await create(http, cluster.url, auth, name.replace("с", "c"), 1000)
    assert status == 409 and body["error"]


async def test_a_patch_cut_midway_keeps_the_bytes_that_arrived(cluster, http):
    """A client whose connection drops in the middle of a PATCH body: every byte that
    reached the server is kept (confirmed by all replicas), so it resumes right there."""
    data, name, auth = mp4_bytes(os.urandom(1_000_000)), unique(), cluster.admin_headers()
    _, location = await create(http, cluster.url, auth, name, len(data))
    sent = 600_000
    _, writer = await asyncio.open_connection(cluster.web.host, cluster.web.port)
    head = (
        f"PATCH {location} HTTP/1.1\r\nHost: {cluster.web.host}:{cluster.web.port}\r\n"
        f"Authorization: {auth['Authorization']}\r\nTus-Resumable: 1.0.0\r\n"
        f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    writer.write(head.encode() + data[:sent])
    await writer.drain()
    await asyncio.sleep(0.5)
    writer.transport.abort()
    await wait_until(
        lambda: offset_of(http, cluster.url, auth, location), "the bytes that arrived are confirmed", 15
    )
    assert await offset_of(http, cluster.url, auth, location) == sent
    status, _, _ = await patch(http, cluster.url, auth, location, sent, data[sent:])
    assert status == 204
    assert await stream_bytes(http, cluster, name) == data


async def test_a_creation_turned_away_for_want_of_a_slot_leaves_the_name_free(cluster, http):
    """A creation carrying bytes that finds every upload slot of its client taken is 503
    ("try again in a few seconds") and leaves nothing behind: the retry it invites gets
    the name. Before, the upload it had opened lived on, its address never told, so the
    retry was refused as "being uploaded" (and the quota held) until it expired a day later."""
    auth, release = cluster.admin_headers(), asyncio.Event()
    slots = int(PER_CLIENT_SLOTS[PER_CLIENT_SLOTS.index("--max-uploads-per-client") + 1])
    started = []

    async def first_bytes_then_wait():
        yield b"x" * 1000
        started.append(True)
        await release.wait()

    async def held_patch() -> None:
        _, location = await create(http, cluster.url, auth, unique("held"), 100_000)
        asked = {**TUS, **OCTETS, **auth, "Upload-Offset": "0"}
        async with http.patch(f"{cluster.url}{location}", headers=asked, data=first_bytes_then_wait()):
            pass
        async with http.delete(f"{cluster.url}{location}", headers={**TUS, **auth}):
            pass

    holders = [asyncio.ensure_future(held_patch()) for _ in range(slots)]
    try:
        await wait_until(lambda: len(started) == slots, "every upload slot is taken", 15)
        await asyncio.sleep(0.2)  # the last PATCH's handler takes its slot
        data, name = mp4_bytes(os.urandom(10_000)), unique("turned-away")
        asked = {**TUS, **OCTETS, **auth, "Upload-Length": str(len(data))}
        asked["Upload-Metadata"] = metadata(filename=name)
        async with http.post(f"{cluster.url}/files/", headers=asked, data=data) as response:
            assert response.status == 503, await response.text()
    finally:
        release.set()
        await asyncio.gather(*holders)
    assert (await create(http, cluster.url, auth, name, len(data)))[0] == 201
