"""Pure tests of myyoutube.formatting: sizes, durations and dates as people read them."""

from __future__ import annotations

import pytest

from myyoutube import formatting


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1280, "1.3 KiB"),  # half-up rounding, like text.js
        (10 * 1024, "10.0 KiB"),
        (100 * 1024, "100 KiB"),
        (1024 * 1024 - 1, "1.0 MiB"),  # would display as "1024 KiB": roll over
        (5 * 1024 * 1024, "5.0 MiB"),
        (int(1.25 * 1024**3), "1.3 GiB"),
        (3 * 1024**4, "3.0 TiB"),
    ],
)
def test_human_size(size, text):
    """human_size uses 1024 steps, one decimal below 100, none above."""
    assert formatting.human_size(size) == text


def test_human_size_rejects_negative():
    """Negative and non-finite sizes are programming errors."""
    with pytest.raises(ValueError):
        formatting.human_size(-1)
    with pytest.raises(ValueError):
        formatting.human_size(float("nan"))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0:00"), (5.9, "0:05"), (65, "1:05"), (3600, "1:00:00"), (3723.9, "1:02:03")],
)
def test_human_duration(seconds, text):
    """human_duration renders m:ss below an hour and h:mm:ss above."""
    assert formatting.human_duration(seconds) == text


def test_utc_text():
    """utc_text shows a timestamp as minutes in UTC, the fallback before the page localises it."""
    assert formatting.utc_text(1_700_000_000) == "2023-11-14 22:13 UTC"


def test_counted_puts_the_noun_in_its_number():
    """The master's sentences said "still owns 1 videos" and "Only 1 datanodes are
    running"; counted() gives "1 video" and "2 videos" (and "0 videos")."""
    assert [formatting.counted(n, "video") for n in (0, 1, 2)] == ["0 videos", "1 video", "2 videos"]
    assert [formatting.counted(n, "copy", "copies") for n in (1, 2)] == ["1 copy", "2 copies"]


def test_agreeing_gives_the_word_for_the_count():
    """The verb after a count agrees with it: "1 datanode is", "0 datanodes are"."""
    assert [formatting.agreeing(n, "is", "are") for n in (0, 1, 2)] == ["are", "is", "are"]
