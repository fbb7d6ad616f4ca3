"""Tests for myyoutube.videotext: default titles, what a title or description may hold,
search text made safe for FTS5, and highlight offsets."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from myyoutube.videotext import (
    MAX_DESCRIPTION_CHARS,
    MAX_QUERY_WORDS,
    MAX_TITLE_CHARS,
    BadText,
    clean_description,
    clean_title,
    default_title,
    highlight_ranges,
    match_expression,
)


@pytest.mark.parametrize(
    "name, title",
    [
        ("holiday-005.mp4", "holiday 005"),
        ("My_Summer__2019.final.webm", "My Summer 2019 final"),
        ("  spaced   out .mov", "spaced out"),
        ("no-extension", "no extension"),
        ("Café au lait.mp4", "Café au lait"),
        ("___.mp4", "___.mp4"),  # nothing but separators: the name itself
    ],
)
def test_default_title_drops_the_extension_and_separators(name, title):
    """A file name becomes a title: no extension, _ - . as spaces, whitespace collapsed."""
    assert default_title(name) == title


def test_default_title_of_a_long_name_fits_a_title():
    """A 255-character name still gives a title within MAX_TITLE_CHARS."""
    assert len(default_title("a" * 250 + ".mp4")) == MAX_TITLE_CHARS


def test_title_is_trimmed_and_normalized():
    """Surrounding whitespace goes and a decomposed accent is stored composed (NFC)."""
    assert clean_title("  Cafe\u0301 at noon \n") == "Café at noon"


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("", "empty"),
        ("   \t ", "empty"),
        ("x" * (MAX_TITLE_CHARS + 1), "longer"),
        ("two\nlines", "line breaks"),
        ("bell\x07", "control"),
        ("para\u2029graph", "line breaks"),
        ("lone \ud800 surrogate", "control"),
        ("\u200b", "shows nothing"),  # zero width space
        ("\ufeff\u200d", "shows nothing"),
        ("\u3164 \u2800", "shows nothing"),  # a Hangul filler, the braille blank
        ("\u0301", "shows nothing"),  # an accent over nothing
    ],
)
def test_bad_titles_are_refused_with_a_reason(raw, reason):
    """Empty, overlong, multi-line or control-character titles raise BadText saying why;
    so does one of only invisible or blank characters, which was stored and showed as an
    empty title."""
    with pytest.raises(BadText, match=reason):
        clean_title(raw)


def test_invisible_characters_inside_a_visible_title_are_kept():
    """Joiners inside an emoji sequence and a word joiner between words are part of
    how the title is written: a title that shows something keeps them."""
    for title in ("\U0001f469\u200d\U0001f4bb coding", "word\u2060join", "\u2800 art \u2800"):
        assert clean_title(title) == title


def test_text_reversing_overrides_are_refused_but_right_to_left_text_is_kept():
    """A title or description holding a bidirectional override (RLO, LRO: "\u202egnp.exe"
    shows as "exe.png") is refused saying why; Hebrew with a direction mark, and an
    isolate around mixed text, are kept as typed."""
    for override in ("\u202e", "\u202d"):
        with pytest.raises(BadText, match="reverse the text"):
            clean_title(f"{override}gnp.exe")
        with pytest.raises(BadText, match="reverse the text"):
            clean_description(f"see {override}this")
    assert clean_title("\u05e9\u05dc\u05d5\u05dd \u200f(2026)") == "\u05e9\u05dc\u05d5\u05dd \u200f(2026)"
    assert clean_description("a \u2067\u05d0\u2069 b") == "a \u2067\u05d0\u2069 b"


def test_title_of_exactly_the_maximum_is_kept():
    """MAX_TITLE_CHARS characters (after trimming) is allowed, emoji included."""
    assert clean_title(" " + "😀" * MAX_TITLE_CHARS + " ") == "😀" * MAX_TITLE_CHARS


def test_description_keeps_paragraphs_and_refuses_controls():
    """A description keeps line breaks and tabs (CRLF becomes LF), may be empty, and
    refuses other control characters and overlong text."""
    assert clean_description("First line\r\n\tSecond\n") == "First line\n\tSecond"
    assert clean_description("   ") == ""
    assert len(clean_description("d" * MAX_DESCRIPTION_CHARS)) == MAX_DESCRIPTION_CHARS
    with pytest.raises(BadText, match="longer"):
        clean_description("d" * (MAX_DESCRIPTION_CHARS + 1))
    with pytest.raises(BadText, match="control"):
        clean_description("escape \x1b[31m")


def test_every_word_becomes_a_quoted_prefix_token():
    """Each word is quoted (quotes doubled) and made a prefix; punctuation-only words go."""
    assert match_expression("holiday 005") == '"holiday"* "005"*'
    assert match_expression('say "hi"') == '"say"* """hi"""*'
    assert match_expression("holiday-005") == '"holiday-005"*'
    assert match_expression(" - * ( : ") == ""
    assert match_expression("NEAR(a b)") == '"NEAR(a"* "b)"*'


def test_a_long_search_keeps_its_first_words():
    """Only the first MAX_QUERY_WORDS words are looked for."""
    words = [f"w{number}" for number in range(MAX_QUERY_WORDS + 5)]
    assert match_expression(" ".join(words)).count("*") == MAX_QUERY_WORDS


@pytest.fixture(scope="module")
def fts():
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(title, tokenize = 'unicode61 remove_diacritics 2')")
    db.executemany(
        "INSERT INTO t (title) VALUES (?)", [("Café au lait",), ("holiday 005",), ("NEAR AND OR",)]
    )
    return db


@given(st.text(max_size=60))
def test_any_text_is_a_valid_fts5_query(fts, text):
    """Whatever a person types, the expression is valid FTS5 (never a syntax error)."""
    expression = match_expression(text)
    if expression:
        fts.execute("SELECT rowid FROM t WHERE t MATCH ?", (expression,)).fetchall()


@pytest.mark.parametrize(
    "text",
    [
        '"',
        '""',
        "*",
        "NEAR",
        "NEAR(",
        "-café",
        "(",
        ")",
        "title:",
        "a OR b",
        "^x",
        "AND",
        "NOT x",
        "{title}: x",
    ],
)
def test_fts5_syntax_in_a_search_is_plain_text(fts, text):
    """FTS5 operators typed in a search are words or nothing, never operators or errors."""
    expression = match_expression(text)
    if expression:
        fts.execute("SELECT rowid FROM t WHERE t MATCH ?", (expression,)).fetchall()


def test_highlight_ranges_count_utf16_code_units():
    """Ranges are [start, end) in UTF-16 code units of the title: an emoji before a match
    counts 2, as JavaScript's String.slice does."""
    assert highlight_ranges("😀 Café au lait", "cafe LAIT") == [[3, 7], [11, 15]]
    assert highlight_ranges("nothing here", "cafe") == []


def test_highlight_marks_word_prefixes_folded_like_the_tokenizer():
    """A title word is marked when it starts with a searched word, case and accents
    folded on both sides; punctuation separates words and is never marked; a word that
    only contains the searched letters is not marked."""
    assert highlight_ranges("Écoles & HOLIDAY-005", "ecole holiday 00") == [[0, 6], [9, 16], [17, 20]]
    assert highlight_ranges("Flore, Florence", "flo") == [[0, 5], [7, 15]]
    assert highlight_ranges("Reflow", "flo") == []
    assert highlight_ranges("anything", '" * - ( :') == []
