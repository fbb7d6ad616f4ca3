"""Tests for myyoutube.cluster_addresses: browser URLs and free ports."""

from __future__ import annotations

import socket

import pytest

from myyoutube.cluster_addresses import browser_url, free_port, port_free


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:8080"),
        ("::", "http://[::1]:8080"),
        ("192.0.2.7", "http://192.0.2.7:8080"),
        ("::1", "http://[::1]:8080"),
        ("[2001:db8::5]", "http://[2001:db8::5]:8080"),
        ("video.example", "http://video.example:8080"),
    ],
)
def test_the_printed_url_is_one_a_browser_can_open(host, url):
    """A wildcard becomes the loopback address (it names no address to connect to), and
    an IPv6 address goes in brackets once."""
    assert browser_url(host, 8080) == url


def test_a_port_in_use_is_not_free_and_a_free_one_is():
    """A port another socket listens on is taken; free_port's answer can be bound."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert not port_free("127.0.0.1", taken.getsockname()[1])
    assert port_free("127.0.0.1", free_port("127.0.0.1"))
