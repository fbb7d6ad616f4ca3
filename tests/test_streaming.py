"""GET/HEAD /stream through a real cluster, case by case from RFC 9110 §13-§15.

ranges.py is tested line by line without sockets (test_ranges.py); these tests prove the
web front end wires its decisions to real bytes, headers and status codes.
"""

from __future__ import annotations

import email.utils
import os
import uuid
from urllib.parse import quote

import aiohttp
import pytest

from harness import mp4_bytes, upload

VIDEO = mp4_bytes(os.urandom(300_000))


@pytest.fixture(scope="module")
async def stored(cluster):
    """One video in the cluster: (its /original url, bytes, etag, last_modified header)."""
    name = f"rfc-{uuid.uuid4().hex[:8]}.mp4"
    async with aiohttp.ClientSession() as session:
        assert (await upload(session, cluster, name, VIDEO))[0] == 201
        # /original: the upload's own bytes, which never change (/stream switches to a
        # rendition once one is made, which would race these tests) and have a date.
        url = f"{cluster.url}/original/{quote(name, safe='')}"
        async with session.head(url) as response:
            return url, VIDEO, response.headers["ETag"], response.headers["Last-Modified"]


async def fetch(http, url, method="GET", **headers):
    async with http.request(method, url, headers=headers) as response:
        return response.status, response.headers, await response.read()


@pytest.mark.parametrize(
    "value",
    [
        "bytes=",
        "bytes=abc",
        "bytes=5-2",
        "items=0-1",
        "bytes 0-1",
        "bytes=--1",
        "=0-1",
    ],
)
async def test_malformed_or_unknown_unit_range_gets_the_whole_video(stored, http, value):
    """A Range that is malformed or in an unknown unit is ignored: 200 and every byte (§14.2)."""
    url, data, _, _ = stored
    status, headers, body = await fetch(http, url, Range=value)
    assert (status, body) == (200, data)
    assert "Content-Range" not in headers


async def test_open_ended_and_suffix_ranges_clamp_to_the_size(stored, http):
    """a- reads to the end; -n past the size gives the whole file as 206; b past the end clamps."""
    url, data, _, _ = stored
    status, headers, body = await fetch(http, url, Range=f"bytes={len(data) - 10}-")
    assert (status, body) == (206, data[-10:])
    status, headers, body = await fetch(http, url, Range=f"bytes=-{len(data) * 2}")
    assert (status, body) == (206, data)
    assert headers["Content-Range"] == f"bytes 0-{len(data) - 1}/{len(data)}"
    status, headers, body = await fetch(http, url, Range=f"bytes=100-{len(data) * 5}")
    assert (status, body) == (206, data[100:])


async def test_safari_probe_of_two_bytes_is_206(stored, http):
    """Safari's first request, bytes=0-1, is answered 206 with exactly 2 bytes."""
    url, data, _, _ = stored
    status, headers, body = await fetch(http, url, Range="bytes=0-1")
    assert (status, body, headers["Content-Length"]) == (206, data[:2], "2")
    assert headers["Content-Type"] == "video/mp4"


async def test_unsatisfiable_range_is_416_with_the_size(stored, http):
    """A range starting past the end is 416 with Content-Range: bytes */SIZE (§15.5.17)."""
    url, data, _, _ = stored
    status, headers, _ = await fetch(http, url, Range=f"bytes={len(data)}-")
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"


async def test_412_and_416_say_why_in_json(stored, http):
    """A refused range or precondition answers, like every refusal, {"error": sentence}
    (they had an empty body: `curl -r` past the end printed nothing at all); a HEAD
    refused by its precondition gets no body."""
    url, data, _, _ = stored
    for headers, status, words in (
        ({"Range": f"bytes={len(data)}-"}, 416, f"{len(data)} bytes"),
        ({"If-Match": '"other"'}, 412, "changed"),
    ):
        async with http.get(url, headers=headers) as response:
            assert response.status == status
            assert words in (await response.json())["error"]
    async with http.head(url, headers={"If-Match": '"other"'}) as response:
        assert response.status == 412 and await response.read() == b""


async def test_several_ranges_are_a_correct_multipart_answer(stored, http):
    """Two distant ranges come back as multipart/byteranges with a Content-Range per part."""
    url, data, _, _ = stored
    status, headers, body = await fetch(http, url, Range="bytes=0-9,200000-200009")
    assert status == 206 and "Content-Range" not in headers
    content_type = headers["Content-Type"]
    assert content_type.startswith("multipart/byteranges; boundary=")
    boundary = content_type.split("boundary=")[1].encode()
    assert int(headers["Content-Length"]) == len(body)
    parts = [p for p in body.split(b"--" + boundary) if p.strip() not in (b"", b"--")]
    assert len(parts) == 2
    for part, (start, end) in zip(parts, [(0, 9), (200000, 200009)], strict=True):
        head, _, payload = part.partition(b"\r\n\r\n")
        assert f"Content-Range: bytes {start}-{end}/{len(data)}".encode() in head
        assert payload == data[start : end + 1] + b"\r\n"  # the CRLF belongs to the next delimiter


async def test_overlapping_range_sets_bigger_than_the_file_get_200(stored, http):
    """bytes=0-,0-,0- (an amplification attempt) is answered with the plain video once."""
    url, data, _, _ = stored
    status, _, body = await fetch(http, url, Range="bytes=0-,0-,0-")
    assert (status, body) == (200, data)


async def test_validators_are_strong_and_stable(stored, http):
    """ETag is a strong tag of the content (no W/), the same on GET and HEAD, and cacheable."""
    url, data, etag, last_modified = stored
    status, headers, body = await fetch(http, url, method="HEAD")
    assert status == 200 and body == b"" and headers["Content-Length"] == str(len(data))
    assert headers["ETag"] == etag and not etag.startswith("W/")
    assert headers["Cache-Control"] == "public, no-cache"  # kept, revalidated before each use
    assert email.utils.parsedate_to_datetime(last_modified)
    _, headers, _ = await fetch(http, url)
    assert headers["ETag"] == etag


async def test_if_range_with_the_etag_resumes_and_a_weak_or_stale_one_restarts(stored, http):
    """If-Range: matching strong ETag -> 206; weak or other ETag -> 200 whole body (§13.1.5)."""
    url, data, etag, last_modified = stored
    status, _, body = await fetch(http, url, Range="bytes=10-19", **{"If-Range": etag})
    assert (status, body) == (206, data[10:20])
    for validator in ["W/" + etag, '"something-else"']:
        status, _, body = await fetch(http, url, Range="bytes=10-19", **{"If-Range": validator})
        assert (status, body) == (200, data)
    status, _, body = await fetch(http, url, Range="bytes=10-19", **{"If-Range": last_modified})
    assert (status, body) == (206, data[10:20])


async def test_stream_has_no_date_so_dates_never_validate_it(stored, http):
    """/stream serves the original until a rendition replaces it, under the same upload
    date: it sends no Last-Modified, If-Range with a date restarts with the whole body
    (never splicing ranges of two files), and If-Modified-Since never answers 304."""
    original, _, _, last_modified = stored
    url = original.replace("/original/", "/stream/")
    status, headers, _ = await fetch(http, url, method="HEAD")
    assert status == 200 and "Last-Modified" not in headers
    status, headers, _ = await fetch(http, url, Range="bytes=10-19", **{"If-Range": last_modified})
    assert status == 200 and "Content-Range" not in headers  # the whole of whatever it is now
    status, _, _ = await fetch(http, url, **{"If-Modified-Since": last_modified})
    assert status == 200


async def test_conditional_requests_get_304_and_412(stored, http):
    """If-None-Match/If-Modified-Since -> 304 without a body; If-Match/If-Unmodified-Since -> 412."""
    url, _, etag, last_modified = stored
    for headers in [
        {"If-None-Match": etag},
        {"If-None-Match": f'"x", {etag}'},
        {"If-Modified-Since": last_modified},
    ]:
        status, response_headers, body = await fetch(http, url, **headers)
        assert (status, body) == (304, b""), headers
        assert response_headers["ETag"] == etag
    # If-None-Match wins over If-Modified-Since (§13.2.2): a non-matching tag means 200.
    status, _, _ = await fetch(http, url, **{"If-None-Match": '"other"', "If-Modified-Since": last_modified})
    assert status == 200
    for headers in [{"If-Match": '"other"'}, {"If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}]:
        status, _, _ = await fetch(http, url, **headers)
        assert status == 412, headers
    status, _, _ = await fetch(http, url, **{"If-Match": etag})
    assert status == 200
