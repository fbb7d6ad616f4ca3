"""Tests for myyoutube.web.viewers: which stream requests start a view."""

from __future__ import annotations

import pytest

from myyoutube.web.viewers import starts_at_first_byte


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
