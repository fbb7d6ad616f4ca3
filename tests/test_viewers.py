"""Tests for myyoutube.web.viewers: which stream requests start a view, and whose it is."""

from __future__ import annotations

import asyncio
import secrets
import uuid

import pytest
from multidict import CIMultiDict

from harness import mp4_bytes, store, wait_until
from myyoutube.web.view_budget import MAX_VIEWERS_PER_ADDRESS
from myyoutube.web.viewers import VIEWER_COOKIE, starts_at_first_byte


@pytest.mark.parametrize(
    "method, headers, starts",
    [
        ("GET", {}, True),  # a whole-file download or a player without ranges
        ("GET", {"Range": "bytes=0-"}, True),  # Chrome starting a video
        ("GET", {"Range": "bytes=0-1"}, True),  # Safari's probe
        ("GET", {"Range": "Bytes = 00-99, 200-"}, True),
        ("GET", {"Range": "bytes=1000-"}, False),  # a seek or the next piece
        ("GET", {"Range": "bytes=-500"}, False),  # the tail (an MP4's moov)
        ("GET", {"Range": "bytes=01-"}, False),
        ("HEAD", {}, False),
    ],
)
def test_only_a_start_from_the_first_byte_is_a_view(method, headers, starts):
    """A GET with no Range or a Range from byte 0 starts watching; seeks, tails and HEAD
    requests do not."""
    assert starts_at_first_byte(method, headers) is starts


async def test_visitors_behind_a_trusted_proxy_count_apart(fresh_cluster, http):
    """Behind a --trusted-proxy, two cookie-less visitors (curl, a video linked from
    elsewhere) are told apart by the address the proxy forwards: two views, not the one
    every visitor shared under the proxy's own address. The viewer cookie each one gets is
    marked Secure when the proxy says the visitor came over https, as the session cookie is.
    One of them making up a new viewer cookie for every request counts at most
    MAX_VIEWERS_PER_ADDRESS views more, not one per request, even when it sends a made-up
    X-Forwarded-For line of its own before the one the proxy adds (some proxies add a line
    rather than append to the client's: the last hop of all lines is the proxy's)."""
    cluster = fresh_cluster(web_args=("--trusted-proxy", "127.0.0.1"))
    name = f"proxied-{uuid.uuid4().hex[:8]}.mp4"
    await store(cluster, name, mp4_bytes(b"x" * 1000))
    for visitor, scheme in (("198.51.100.7", "https"), ("203.0.113.9", "http")):
        headers = {"X-Forwarded-For": visitor, "X-Forwarded-Proto": scheme}
        async with http.get(f"{cluster.url}/stream/{name}", headers=headers) as answer:
            assert answer.status == 200
            cookie = answer.headers["Set-Cookie"]
            assert cookie.startswith(f"{VIEWER_COOKIE}=") and "HttpOnly" in cookie
            assert ("; Secure" in cookie) == (scheme == "https")
            await answer.read()

    async def counted_twice() -> bool:
        async with http.get(f"{cluster.url}/videos/{name}") as answer:
            return (await answer.json())["views"] == 2

    await wait_until(counted_twice, "two views counted", 10)
    for number in range(MAX_VIEWERS_PER_ADDRESS + 5):
        forged = CIMultiDict([("X-Forwarded-For", f"192.0.2.{number}"), ("X-Forwarded-For", "198.51.100.7")])
        forged["Cookie"] = f"{VIEWER_COOKIE}={secrets.token_hex(16)}"
        async with http.get(f"{cluster.url}/stream/{name}", headers=forged) as answer:
            await answer.read()
    # The views are reported in the background: give the last ones time to land.
    await asyncio.sleep(1.0)
    async with http.get(f"{cluster.url}/videos/{name}") as answer:
        assert (await answer.json())["views"] == 2 + MAX_VIEWERS_PER_ADDRESS
