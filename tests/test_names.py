"""Tests for myyoutube.names.clean_name: normalization, path stripping and readable refusals."""

from __future__ import annotations

import re
import unicodedata

import pytest

from myyoutube.names import MAX_NAME_BYTES, BadName, chosen_name, clean_name


def test_plain_name_unchanged():
    """An ordinary file name comes back as it was."""
    assert clean_name("cat video (2024).mp4") == "cat video (2024).mp4"


def test_nfc_and_nfd_give_the_same_name():
    """A name composed (NFC) or decomposed (NFD) cleans to the same NFC string."""
    nfc = unicodedata.normalize("NFC", "Café Ñandú.mp4")
    nfd = unicodedata.normalize("NFD", "Café Ñandú.mp4")
    assert nfc != nfd
    assert clean_name(nfc) == clean_name(nfd) == nfc
    assert len(clean_name(nfd)) == len("Café Ñandú.mp4")


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("/home/ann/videos/cat.mp4", "cat.mp4"),
        ("C:\\Users\\ann\\Videos\\cat.mp4", "cat.mp4"),
        ("videos/2024\\holiday.webm", "holiday.webm"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("  spaced name.mp4  ", "spaced name.mp4"),
        ("dir/  padded.mp4 ", "padded.mp4"),
    ],
)
def test_directory_parts_stripped(raw, expected):
    """Only the last path component is kept, with either separator, and surrounding spaces trimmed."""
    assert clean_name(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "videos/", "C:\\videos\\", "/"])
def test_empty_name_refused(raw):
    """A name that is empty once its directory part is dropped is refused."""
    with pytest.raises(BadName, match="no name"):
        clean_name(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "cat\x00.mp4",  # NUL
        "cat\x07.mp4",  # bell
        "cat\x1b[31m.mp4",  # terminal escape
        "cat\x7f.mp4",  # DEL
        "cat\u200b.mp4",  # zero-width space (Cf)
        "cat\u202e4pm.exe",  # right-to-left override (Cf)
        "cat\ud800.mp4",  # lone surrogate (Cs)
        "cat\ue000.mp4",  # private use (Co)
        "cat\U000e0001.mp4",  # language tag (Cf)
        "cat\u0378.mp4",  # unassigned (Cn)
    ],
)
def test_control_and_invisible_characters_refused(raw):
    """Control, format, surrogate, private-use and unassigned characters are refused."""
    with pytest.raises(BadName, match="control or invisible"):
        clean_name(raw)


@pytest.mark.parametrize("raw", [".hidden.mp4", ".", "..", "dir/.secret", "C:\\x\\.mp4"])
def test_leading_dot_refused(raw):
    """A name starting with a dot (after path stripping) is refused."""
    with pytest.raises(BadName, match="start with a dot"):
        clean_name(raw)


def test_dot_inside_name_allowed():
    """Dots other than the first character are fine."""
    assert clean_name("my.cat.v2.mp4") == "my.cat.v2.mp4"


def test_name_of_exactly_max_bytes_allowed():
    """A name of exactly MAX_NAME_BYTES UTF-8 bytes is accepted."""
    name = "é" * 125 + "x.mp4"  # 250 + 5 bytes
    assert len(name.encode()) == MAX_NAME_BYTES == 255
    assert clean_name(name) == name


@pytest.mark.parametrize("name", ["a" * 256, "é" * 128, "😀" * 64])
def test_name_over_max_bytes_refused(name):
    """A name over 255 UTF-8 bytes is refused, counting bytes rather than characters."""
    assert len(name.encode()) > MAX_NAME_BYTES
    with pytest.raises(BadName, match="longer than 255 bytes"):
        clean_name(name)


def test_length_counted_after_nfc():
    """An NFD name whose NFC form fits in 255 bytes is accepted."""
    nfd = unicodedata.normalize("NFD", "é" * 127)  # 381 bytes decomposed, 254 composed
    assert len(nfd.encode()) > MAX_NAME_BYTES
    assert clean_name(nfd) == "é" * 127


def test_long_directory_part_does_not_count():
    """Only the kept component is measured: a long directory path before a short name is fine."""
    assert clean_name("d" * 1000 + "/cat.mp4") == "cat.mp4"


@pytest.mark.parametrize("raw", ["", "a/", "x\x00y", ".x", "a" * 300, "\u200b"])
def test_every_refusal_is_a_readable_sentence(raw):
    """Each refusal is a BadName (a ValueError) whose message is a capitalized sentence ending in a period."""
    with pytest.raises(BadName) as caught:
        clean_name(raw)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert re.fullmatch(r"[A-Z][^\x00-\x1f]{10,}\.", message), message
    assert raw not in message or raw == ""  # never echoes the hostile name back


@pytest.mark.parametrize("raw", ["Talks/2026", "C:\\talk", "/"])
def test_a_chosen_name_with_a_separator_is_refused_not_cut(raw):
    """A name the uploader typed is theirs as typed: "Talks/2026" is refused with a
    sentence, not silently stored as "2026" (as a file name's directory part would be)."""
    with pytest.raises(BadName, match="cannot contain"):
        chosen_name(raw)


def test_a_chosen_name_follows_the_file_name_rules():
    """The same rules as a file name: NFC, trimmed, no leading dot, no control characters."""
    assert chosen_name(" Summer talk ") == "Summer talk"
    assert chosen_name(unicodedata.normalize("NFD", "été")) == "été"
    for bad in (".hidden", "a\x00b", ""):
        with pytest.raises(BadName):
            chosen_name(bad)
