"""Bad input and hostile peers: clear 4xx answers, nothing half-stored, roles keep serving."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import struct
import uuid
from urllib.parse import quote

import pytest

import harness
from harness import mp4_bytes, multipart, wait_until
from myyoutube import certs, links, protocol, tls_contexts
from myyoutube.protocol import CHUNK_BYTES
from myyoutube.stream import RequestFailed
from myyoutube.web.common import SMALL_BODY_TIMEOUT_S

VIDEO = mp4_bytes(os.urandom(20_000))


async def upload(http, cluster, filename, data=VIDEO, field="file"):
    return await harness.upload(http, cluster, filename, data, field)


async def listed(http, cluster) -> list[str]:
    async with http.get(f"{cluster.url}/listar") as response:
        return [v["name"] for v in (await response.json())["videos"]]


@pytest.mark.parametrize(
    "filename, stored_as",
    [
        ("../../etc/passwd.mp4", "passwd.mp4"),
        ("/abs/path/clip.mp4", "clip.mp4"),
        ("  spaced.mp4  ", "spaced.mp4"),
        ('say "hi".mp4', 'say "hi".mp4'),
        # In a quoted-string a backslash escapes the next character (RFC 9110 §5.6.4), so
        # these arrive without backslashes: whatever name results, it has no path in it.
        ("..\\..\\windows\\evil.mp4", None),
        ("C:\\videos\\cat.mp4", None),
    ],
)
async def test_path_parts_are_dropped_from_names(cluster, http, filename, stored_as):
    """Directory parts are stripped or the name refused; no file lands outside a node folder."""
    unique = uuid.uuid4().hex[:6]
    status, body = await upload(http, cluster, filename.replace(".mp4", f"-{unique}.mp4"))
    if stored_as is None:
        assert status == 400 or not {"/", "\\"} & set(body["name"]), body
    else:
        assert status == 201, body
        assert body["name"] == stored_as.replace(".mp4", f"-{unique}.mp4")
    outside = [
        p
        for p in cluster.root.rglob("*")
        if p.is_file()
        and not str(p).startswith(str(cluster.root / "datanodes"))
        and p.suffix in (".mp4", ".blob")
    ]
    assert outside == []


@pytest.mark.parametrize(
    "filename, reason",
    [
        ("", "no name"),
        ("..", "dot"),
        (".hidden.mp4", "dot"),
        ("bad\x00name.mp4", "malformed"),  # a raw NUL breaks the part's header itself
        ("line%0Abreak.mp4", "control"),  # how browsers escape a newline in a file name
        ("tab\there.mp4", "control"),
        ("x" * 252 + ".mp4", "255 bytes"),
        ("é" * 130 + ".mp4", "255 bytes"),
    ],
)
async def test_unusable_names_are_refused_with_the_reason(cluster, http, filename, reason):
    """Empty, dot-leading, control-character and over-255-byte names get 400 saying why."""
    status, body = await upload(http, cluster, filename)
    assert status == 400, body
    assert reason in body["error"]


async def test_not_a_video_is_415_and_not_stored(cluster, http):
    """A text file renamed .mp4 is refused by sniffing its bytes, and nothing is listed."""
    name = f"fake-{uuid.uuid4().hex[:6]}.mp4"
    status, body = await upload(http, cluster, name, b"#!/bin/sh\necho hello\n" * 100)
    assert status == 415 and "not a video" in body["error"]
    assert name not in await listed(http, cluster)


async def test_form_without_file_field_and_non_multipart_are_400(cluster, http):
    """A form lacking 'file', or a raw body, is refused with a sentence naming what's missing."""
    status, body = await upload(http, cluster, "x.mp4", field="video")
    assert status == 400 and "'file'" in body["error"]
    async with http.post(
        f"{cluster.url}/upload", data=VIDEO, headers={"Content-Type": "video/mp4", **cluster.admin_headers()}
    ) as response:
        assert response.status == 400
        assert "multipart/form-data" in (await response.json())["error"]


async def test_client_that_stops_halfway_leaves_nothing(cluster, http):
    """An upload connection cut mid-body stores nothing: no listing, no stray files."""
    name = f"cut-{uuid.uuid4().hex[:6]}.mp4"
    head = (
        f'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode() + mp4_bytes(os.urandom(1_000_000))
    request = (
        f"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n"
        f"Content-Length: {len(head) + 5_000_000}\r\n\r\n"
    ).encode()
    _reader, writer = await asyncio.open_connection(cluster.web.host, cluster.web.port)
    writer.write(request + head)
    await writer.drain()
    await asyncio.sleep(0.5)
    writer.transport.abort()
    await wait_until(lambda: cluster.stray_files() == [], "partial replicas removed", 10)
    assert name not in await listed(http, cluster)


def with_field_after_the_file(body: bytes, content_type: str, field: str, value: str) -> bytes:
    """A form made by harness.multipart, with a text field after its file."""
    boundary = content_type.split("boundary=")[1]
    part = f'Content-Disposition: form-data; name="{field}"\r\n\r\n{value}\r\n--{boundary}--\r\n'
    return body[: -len("--\r\n")] + b"\r\n" + part.encode()


async def refused_and_nothing_stored(http, cluster, name: str, body: bytes, content_type: str, words: str):
    """POST /upload of `body` is 400 with `words` in its sentence, and leaves nothing."""
    headers = {"Content-Type": content_type, **cluster.admin_headers()}
    async with http.post(f"{cluster.url}/upload", data=body, headers=headers) as response:
        assert response.status == 400, await response.text()
        assert words in (await response.json())["error"]
    async with http.get(f"{cluster.url}/videos/{quote(name)}", headers=cluster.admin_headers()) as response:
        assert response.status == 404
    await wait_until(lambda: cluster.stray_files() == [], "partial replicas removed", 10)


async def test_form_that_ends_inside_the_file_is_refused_as_incomplete(cluster, http):
    """A body that ends before the boundary closing the file part (the client, or a proxy,
    sent less than the form) is refused with a sentence, not stored as if it were whole:
    it used to be 201 with the file's last kilobyte missing."""
    name = f"unclosed-{uuid.uuid4().hex[:6]}.mp4"
    body, content_type = multipart(name, VIDEO)
    cut = body[: body.rindex(b"\r\n--") - 1000]
    await refused_and_nothing_stored(http, cluster, name, cut, content_type, "ended before the form did")


async def test_visibility_after_the_file_is_refused_not_ignored(cluster, http):
    """`curl -F file=@v.mp4 -F visibility=private` puts the field after the file, when the
    video is already being stored: it is refused with a sentence saying where the field
    goes, and nothing is stored (it used to be stored public, the field ignored)."""
    name = f"late-{uuid.uuid4().hex[:6]}.mp4"
    body, content_type = multipart(name, VIDEO)
    late = with_field_after_the_file(body, content_type, "visibility", "private")
    await refused_and_nothing_stored(http, cluster, name, late, content_type, "before the file")


async def test_a_second_file_behind_the_video_is_not_waited_for(cluster, http):
    """A form with another file after the video (two -F file=@... given to curl) stores
    the first at once: the rest of the form is not read, so a second file still on its
    way (here it never comes) cannot hold the upload up."""
    name = f"first-{uuid.uuid4().hex[:6]}.mp4"
    body, content_type = multipart(name, VIDEO)
    boundary = content_type.split("boundary=")[1]
    second = (
        b'\r\nContent-Disposition: form-data; name="file"; filename="second.mp4"\r\n'
        b"Content-Type: video/mp4\r\n\r\n"
    ) + os.urandom(3 * CHUNK_BYTES)  # then the client stalls: the rest never comes
    sent = body[: -len("--\r\n")] + second
    request = (
        f"POST /upload HTTP/1.1\r\nHost: {cluster.web.address}\r\n"
        f"Authorization: {cluster.admin_headers()['Authorization']}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(sent) + 1_000_000}\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection(cluster.web.host, cluster.web.port)
    writer.write(request + sent)
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 30)
    writer.close()
    assert status.startswith(b"HTTP/1.1 201"), status
    async with http.get(f"{cluster.url}/videos/{quote(name)}", headers=cluster.admin_headers()) as response:
        assert response.status == 200


async def test_fields_before_the_file_and_unknown_fields_after_it_are_used_or_skipped(cluster, http):
    """The visibility before the file applies; an unknown field after the file is skipped."""
    name = f"early-{uuid.uuid4().hex[:6]}.mp4"
    body, content_type = multipart(name, VIDEO)
    boundary = content_type.split("boundary=")[1]
    early = f'--{boundary}\r\nContent-Disposition: form-data; name="visibility"\r\n\r\nunlisted\r\n'
    body = early.encode() + with_field_after_the_file(body, content_type, "submit", "Upload")
    headers = {"Content-Type": content_type, **cluster.admin_headers()}
    async with http.post(f"{cluster.url}/upload", data=body, headers=headers) as response:
        assert response.status == 201, await response.text()
    async with http.get(f"{cluster.url}/videos/{quote(name)}", headers=cluster.admin_headers()) as response:
        assert (await response.json())["visibility"] == "unlisted"


@pytest.mark.parametrize(("field", "value"), [("name", "renamed.mp4"), ("visibility", "private")])
async def test_a_field_we_use_after_the_file_is_refused_and_nothing_stored(cluster, http, field, value):
    """A `name` or `visibility` sent after the file could not apply (the video is stored
    under what came before it): the upload is refused with 400 saying to put it first,
    rather than a private video going public, and nothing is stored."""
    name = f"late-{uuid.uuid4().hex[:6]}.mp4"
    body, content_type = multipart(name, VIDEO)
    body = with_field_after_the_file(body, content_type, field, value)
    headers = {"Content-Type": content_type, **cluster.admin_headers()}
    async with http.post(f"{cluster.url}/upload", data=body, headers=headers) as response:
        assert response.status == 400, await response.text()
        assert f"The form's '{field}' field comes after the file" in (await response.json())["error"]
    for stored in (name, "renamed.mp4"):
        async with http.get(
            f"{cluster.url}/videos/{quote(stored)}", headers=cluster.admin_headers()
        ) as response:
            assert response.status == 404


async def test_a_small_body_that_never_finishes_is_408_and_frees_the_connection(cluster):
    """A sign-in whose body stops short of its Content-Length (slowloris past the header
    deadline) is answered 408 with a sentence once SMALL_BODY_TIMEOUT_S is up, and the
    connection closed at once: it used to be held, with its handler, for as long as the
    client liked, and then for aiohttp's 10 s of lingering close."""
    reader, writer = await asyncio.open_connection(cluster.web.host, cluster.web.port)
    writer.write(
        f"POST /api/login HTTP/1.1\r\nHost: {cluster.web.address}\r\n"
        'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"username"'.encode()
    )
    await writer.drain()
    # Until EOF: the lingering close would have held it 10 s past the deadline.
    answer = await asyncio.wait_for(reader.read(), SMALL_BODY_TIMEOUT_S + 6)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:200]
    assert "did not arrive in time" in json.loads(body)["error"]


async def test_search_and_stream_with_odd_input_never_500(cluster, http):
    """Huge or odd queries and encoded traversal get 4xx or an empty result, never a 500."""
    async with http.get(f"{cluster.url}/search", params={"q": "a" * 1000}) as response:
        assert response.status == 400 and "longer" in (await response.json())["error"]
    async with http.get(f"{cluster.url}/search", params={"q": "a" * 20_000}) as response:
        assert response.status in (400, 414)  # past aiohttp's request-line limit
    for query in ["%", "_", "'; DROP TABLE videos; --", "\u202e", "*"]:
        async with http.get(f"{cluster.url}/search", params={"q": query}) as response:
            assert response.status == 200 and "videos" in await response.json()
    for path in [
        "/stream/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/stream/..%2Findex.sqlite3",
        "/watch/%00",
        "/static/..%2f..%2fpyproject.toml",
    ]:
        async with http.get(cluster.url + path) as response:
            assert response.status in (400, 403, 404), path
    async with http.request("PATCH", f"{cluster.url}/upload") as response:
        assert response.status == 405


async def test_pages_carry_security_headers_and_escape_names(cluster, http):
    """Pages send a self-only CSP and nosniff, and name no software version; a markup-like
    name is shown as text."""
    # No '/' in it: a slash would make everything before it a directory part, stripped.
    name = f"<img src=x onerror=alert(1)>{uuid.uuid4().hex[:6]}.mp4"
    assert (await upload(http, cluster, name))[0] == 201
    async with http.get(f"{cluster.url}/watch/{quote(name, safe='')}") as response:
        page = await response.text()
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Server"] == "MyYoutube"
    async with http.get(f"{cluster.url}/stream/{quote(name, safe='')}") as response:
        assert response.status == 200 and response.headers["Server"] == "MyYoutube"
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


async def test_upload_slots_are_bounded_with_503(fresh_cluster, http):
    """Past --max-uploads concurrent uploads, the next one gets 503 with Retry-After."""
    cluster = fresh_cluster(web_args=("--max-uploads", "1"))
    body = b'--B\r\nContent-Disposition: form-data; name="file"; filename="slow.mp4"\r\n\r\n' + mp4_bytes(
        b"x" * 10_000
    )
    _reader, writer = await asyncio.open_connection(cluster.web.host, cluster.web.port)
    writer.write(
        f"POST /upload HTTP/1.1\r\nHost: {cluster.web.address}\r\n"
        f"Authorization: Bearer {cluster.admin_token}\r\n".encode()
        + b"Content-Type: multipart/form-data; boundary=B\r\nContent-Length: 999999\r\n\r\n"
        + body
    )
    await writer.drain()
    await asyncio.sleep(0.5)  # the slow upload now holds the only slot
    body, content_type = multipart("second.mp4", VIDEO)
    async with http.post(
        f"{cluster.url}/upload", data=body, headers={"Content-Type": content_type, **cluster.admin_headers()}
    ) as response:
        assert response.status == 503
        assert response.headers["Retry-After"]
    writer.transport.abort()


def _roles(cluster):
    return [("master", cluster.master), ("datanode", cluster.datanodes[0]), ("web", cluster.web)]


async def test_garbage_on_every_port_leaves_roles_serving(cluster, http):
    """Random bytes, oversize lengths and silent sockets on each role's port harm nobody."""
    oversize = struct.pack("!IBI", protocol.MAX_FRAME_BYTES + 1, 1, 0)
    for _, role in _roles(cluster):
        for junk in [os.urandom(4096), oversize, b"GET / HTTP/1.1\r\n\r\n", b""]:
            with socket.create_connection((role.host, role.port), timeout=5) as sock:
                sock.sendall(junk)
    async with http.get(f"{cluster.url}/listar") as response:
        assert response.status == 200
    status, _ = await upload(http, cluster, f"after-garbage-{uuid.uuid4().hex[:6]}.mp4")
    assert status == 201


async def test_wrong_certificate_and_wrong_role_are_refused(fresh_cluster, tmp_path, http):
    """On a TLS cluster, a client with another CA's certificate never gets a frame through,
    a datanode certificate cannot ask the master for a listing, and the refusals are
    logged; the cluster itself serves on."""
    cluster = fresh_cluster(tls=True)
    certs.init_ca(tmp_path / "other-ca")
    stranger = tls_contexts.load(certs.issue(tmp_path / "other-ca", "web", "stranger"), "web")
    with pytest.raises((ConnectionError, OSError, ssl.SSLError)):
        connection = await links.connect(cluster.master.host, cluster.master.port, stranger, "master")
        await connection.write_frame(protocol.ListVideos(query="", sort="", cursor="", limit=1, user=""))
        await connection.read_frame()
    cluster.cert_args("datanode", "rogue-datanode")
    rogue = tls_contexts.load(cluster.root / "certs" / "rogue-datanode", "datanode")
    connection = await links.connect(cluster.master.host, cluster.master.port, rogue, "master")
    await connection.write_frame(protocol.ListVideos(query="", sort="", cursor="", limit=1, user=""))
    with pytest.raises(RequestFailed, match="datanode may not send ListVideos"):
        await connection.read_expected(protocol.VideoList)
    connection.abort()
    master_log = cluster.root / "logs" / "master.log"
    await wait_until(lambda: "TLS handshake failed" in master_log.read_text(), "handshake refusal logged", 5)
    status, _ = await upload(http, cluster, "still-served.mp4")
    assert status == 201


async def test_stream_slots_are_bounded_with_503(fresh_cluster, http):
    """Past --max-streams concurrent streams, the next one gets 503 with Retry-After."""
    cluster = fresh_cluster(web_args=("--max-streams", "1"))
    assert (await upload(http, cluster, "long.mp4", mp4_bytes(os.urandom(20 * 1024 * 1024))))[0] == 201
    async with http.get(f"{cluster.url}/stream/long.mp4") as holding:
        await holding.content.readexactly(1024)  # the stream is open and not drained
        async with http.get(f"{cluster.url}/stream/long.mp4") as refused:
            assert refused.status == 503 and refused.headers["Retry-After"]
            assert "Too many streams" in (await refused.json())["error"]

    async def slot_free() -> bool:
        async with http.get(f"{cluster.url}/stream/long.mp4", headers={"Range": "bytes=0-9"}) as again:
            return again.status == 206

    await wait_until(slot_free, "the slot is given back once the first viewer left", 10)


async def test_look_alike_video_name_is_409_naming_the_existing_video(cluster, http):
    """With "cat….mp4" stored, "сat….mp4" (Cyrillic с, the issue's example) is refused with
    409 and a sentence naming the existing video; nothing is stored under it."""
    tail = uuid.uuid4().hex[:6]
    status, _ = await upload(http, cluster, f"cat{tail}.mp4")
    assert status == 201
    status, answer = await upload(http, cluster, f"\u0441at{tail}.mp4")
    assert status == 409
    assert f"\u201ccat{tail}.mp4\u201d" in answer["error"]
    assert f"\u0441at{tail}.mp4" not in await listed(http, cluster)


async def test_a_path_cannot_write_lines_into_the_log(cluster, http):
    """A refused request is logged with its path as sent: an encoded line break (%0A) in
    it stays %0A. The decoded path let anyone write whole lines of their choosing (a fake
    "admin signed in") into the web's log."""
    forged = f"forged-{uuid.uuid4().hex[:8]} INFO admin signed in"
    path = "/videos/x%0A" + quote(forged)
    async with http.post(f"{cluster.url}{path}", headers={"Origin": "http://evil.example"}) as answer:
        assert answer.status == 403
    log = (cluster.root / "logs" / "web.log").read_text()
    assert path in log and f"\n{forged}" not in log
