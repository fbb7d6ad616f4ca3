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


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("1048576", 1048576),
        ("1MiB", 1024**2),
        ("1 M", 1024**2),  # a bare letter is binary, as dd and head read it
        ("5gib", 5 * 1024**3),
        (" 20 GiB ", 20 * 1024**3),
        ("1.5GB", 1_500_000_000),  # KB, MB, GB, TB are decimal
        ("10 kB", 10_000),
        ("1.5KiB", 1536),
        ("0.1PB", 10**14),  # exact: no float rounding
        ("3B", 3),
    ],
)
def test_parse_size_reads_what_an_operator_types(text, size):
    """A --...-bytes flag takes a plain count or a size with a unit, binary (KiB, M) or
    decimal (MB), in any case, with or without a space."""
    assert formatting.parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "expected a number of bytes, or with a unit"),
        ("lots", "expected a number of bytes, or with a unit"),
        ("-5", "expected a number of bytes, or with a unit"),
        ("1e9", "expected a number of bytes, or with a unit"),
        ("5 GiBs", "expected a number of bytes, or with a unit"),
        ("\u0661\u0662", "expected a number of bytes, or with a unit"),  # Arabic-Indic 12
        ("1.5B", "'1.5B' is not a whole number of bytes"),
        ("1.0001KB", "'1.0001KB' is not a whole number of bytes"),
        ("9" * 5000, r"got '9{64}'\.\.\. \(5000 characters\)$"),  # past Python's int digits limit
    ],
)
def test_parse_size_refuses_in_a_sentence(text, says):
    """What is not a whole number of bytes is BadSize, with a sentence naming the text."""
    with pytest.raises(formatting.BadSize, match=says):
        formatting.parse_size(text)


def test_a_size_reads_back_as_it_was_shown():
    """What human_size shows for a whole number of units parses back to the same bytes."""
    for size in (1024, 3 * 1024**2, 10 * 1024**3, 2 * 1024**4):
        assert formatting.parse_size(formatting.human_size(size)) == size


def test_exception_text_names_the_failure_without_an_empty_tail():
    """A timeout has no message: its reason read "TimeoutError: " in the master's log
    ("chain write of blob ...: 127.0.0.1:P dropped: TimeoutError: "); now only its type."""
    assert formatting.exception_text(TimeoutError()) == "TimeoutError"
    refused = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)")
    assert (
        formatting.exception_text(refused)
        == "ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 9)"
    )
