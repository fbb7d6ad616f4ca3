"""Pure tests of myyoutube.web.origin: the Host allow-list (DNS rebinding) and the
same-origin decision for state-changing requests (CSRF)."""

from __future__ import annotations

import pytest

from myyoutube import service
from myyoutube.web import origin

PORT = 8080


@pytest.mark.parametrize(
    ("public_url", "bound", "host", "allowed"),
    [
        (None, "127.0.0.1", "127.0.0.1:8080", True),
        (None, "127.0.0.1", "localhost:8080", True),
        (None, "127.0.0.1", "LOCALHOST:8080", True),
        (None, "127.0.0.1", "[::1]:8080", True),
        (None, "127.0.0.1", "evil.example:8080", False),  # DNS rebinding
        (None, "127.0.0.1", "127.0.0.1:9999", False),
        (None, "127.0.0.1", "127.0.0.1", False),  # port 80 implied
        (None, "127.0.0.1", "", False),
        (None, "0.0.0.0", "192.168.1.20:8080", True),  # any IP literal on a wildcard bind
        (None, "0.0.0.0", "evil.example:8080", False),
        (None, "0:0::0", "192.168.1.20:8080", True),  # :: spelled otherwise binds every address too
        (None, "0.0.0.0", "192.168.1.20:81", False),
        ("https://videos.example.org", "0.0.0.0", "videos.example.org", False),  # 443 vs 80 (http)
        ("http://videos.example.org", "0.0.0.0", "videos.example.org", True),
        ("http://videos.example.org", "0.0.0.0", "videos.example.org:80", True),
        ("http://videos.example.org", "0.0.0.0", "192.168.1.20:8080", False),  # --public-url is exact
        ("http://videos.example.org:8443", "127.0.0.1", "videos.example.org:8443", True),
        ("http://videos.example.org", "127.0.0.1", "evil.example", False),
    ],
)
def test_host_allow_list(public_url, bound, host, allowed):
    """Only the names the front end is known by pass; a rebinding attacker's name never does."""
    hosts = origin.allowed_hosts(public_url, bound, PORT)
    any_ip = PORT if public_url is None and service.is_wildcard(bound) else None
    assert origin.host_allowed(host, "http", hosts, any_ip) is allowed


def test_https_public_url_default_port():
    """Over https the Host without a port means 443."""
    hosts = origin.allowed_hosts("https://videos.example.org", "0.0.0.0", PORT)
    assert origin.host_allowed("videos.example.org", "https", hosts, None)


def test_public_url_must_be_http():
    with pytest.raises(origin.BadPublicUrl):
        origin.public_origin("ftp://videos.example.org")


HOST = "127.0.0.1:8080"


@pytest.mark.parametrize(
    ("origin_header", "fetch_site", "cookie", "refused"),
    [
        ("http://127.0.0.1:8080", "same-origin", True, False),
        ("http://127.0.0.1:8080", None, True, False),
        (None, "same-origin", True, False),
        (None, None, True, True),  # a cookie session must say where it comes from
        (None, None, False, False),  # curl or the CLI with no cookie: nothing to forge
        ("http://evil.example", None, True, True),
        ("http://evil.example", None, False, True),  # login CSRF
        ("http://127.0.0.1:8080", "cross-site", True, True),
        (None, "same-site", True, True),
        ("null", None, True, True),
        ("https://127.0.0.1:8080", None, True, True),  # another scheme is another origin
        ("http://127.0.0.1:8081", None, True, True),
        ("HTTP://127.0.0.1:8080", None, True, False),
    ],
)
def test_cross_origin_decision(origin_header, fetch_site, cookie, refused):
    """A state change is refused when it names another origin or site, or, with a cookie,
    names neither."""
    reason = origin.cross_origin_reason(origin_header, fetch_site, "http", HOST, cookie)
    assert (reason is not None) is refused
    if refused:
        assert reason.endswith(".")


@pytest.mark.parametrize(
    ("origin_header", "refused"),
    [
        ("https://videos.example.org", False),
        ("https://videos.example.org:443", False),
        ("http://videos.example.org", True),  # another scheme is another origin
        ("https://evil.example", True),
    ],
)
def test_the_public_urls_origin_is_ours_whatever_host_a_proxy_passes(origin_header, refused):
    """Behind a reverse proxy that passes its upstream's Host (nginx's default,
    127.0.0.1:8080), a form posted from a page of the --public-url is same-origin: it used
    to be refused as coming from another site, so nobody could sign in."""
    reason = origin.cross_origin_reason(
        origin_header, "same-origin", "https", HOST, True, "https://videos.example.org"
    )
    assert (reason is not None) is refused
