"""Tests for myyoutube.listing: page sizes, sort orders and opaque keyset cursors."""

from __future__ import annotations

import base64
import json

import pytest

from myyoutube.listing import (
    DEFAULT_PAGE_LIMIT,
    MAX_CURSOR_CHARS,
    MAX_PAGE_LIMIT,
    RELEVANCE,
    SORTS,
    BadListing,
    Cursor,
    decode_cursor,
    encode_cursor,
    keyset_condition,
    order_by,
    parse_limit,
    query_fingerprint,
    sort_order,
)

MATCH = '"cafe"*'


def raw_cursor(fields: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "sort, key",
    [("newest", 1_700_000_000.123456), ("title", "Café — “quoted”"), ("views", 42), ("duration", 0.0)],
)
def test_cursor_round_trips_for_every_sort(sort, key):
    """A cursor decodes to exactly the key and name it was made from (floats exactly)."""
    cursor = Cursor(sort, key, "é name.mp4")
    token = encode_cursor(cursor)
    assert token.isascii() and "=" not in token and "/" not in token and "+" not in token
    assert decode_cursor(token, SORTS[sort], "") == cursor


def test_search_cursor_carries_its_search_and_horizon():
    """A search cursor holds the search's fingerprint and horizon, and only fits that search."""
    cursor = Cursor("relevance", -3.25, "a.mp4", query_fingerprint(MATCH), 9_000)
    token = encode_cursor(cursor)
    assert decode_cursor(token, RELEVANCE, MATCH) == cursor
    with pytest.raises(BadListing, match="another search"):
        decode_cursor(token, RELEVANCE, '"tea"*')
    with pytest.raises(BadListing, match="another search"):
        decode_cursor(encode_cursor(Cursor("newest", 1.0, "a.mp4")), SORTS["newest"], MATCH)


def test_cursor_of_another_sort_is_refused():
    """A cursor made for one order and sent with another is a BadListing, not a wrong page."""
    token = encode_cursor(Cursor("views", 3, "a.mp4"))
    with pytest.raises(BadListing, match="another sort"):
        decode_cursor(token, SORTS["title"], "")


@pytest.mark.parametrize(
    "token",
    [
        "not base64!",
        "%%%",
        "a",  # one base64 character cannot be a byte
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),  # not UTF-8
        raw_cursor([1, 2]),  # JSON, not an object
        raw_cursor({"s": "views", "k": "3", "n": "a.mp4"}),  # key of the wrong type
        raw_cursor({"s": "views", "k": True, "n": "a.mp4"}),  # bool is not a count
        raw_cursor({"s": "views", "k": 3, "n": 5}),
        raw_cursor({"s": "views", "k": 3}),
        raw_cursor({"s": "views", "k": 3, "n": "a", "x": 1}),
        raw_cursor({"s": "views", "k": 3, "n": "a", "h": -1}),
        raw_cursor({"s": "views", "k": 10**30, "n": "a.mp4"}),  # no 64-bit integer for SQLite
        raw_cursor({"s": "views", "k": 3, "n": "a", "h": 2**63}),
        raw_cursor({"s": "views", "k": 3, "n": "\ud800"}),  # a lone surrogate: no UTF-8
        encode_cursor(Cursor("views", 3, "a.mp4"))[:-3],  # cut short
        "é" * 10,
        "A" * (MAX_CURSOR_CHARS + 1),
        base64.urlsafe_b64encode(b"[" * 100_000).decode()[:MAX_CURSOR_CHARS],
    ],
)
def test_damaged_cursor_is_refused_with_a_sentence(token):
    """Anything that is not a cursor this module made is a BadListing with a sentence."""
    with pytest.raises(BadListing, match="cursor"):
        decode_cursor(token, SORTS["views"], "")


def test_a_title_key_that_is_no_utf8_is_refused():
    """A title sort's key with a lone surrogate (valid JSON) is refused, not bound to SQL."""
    with pytest.raises(BadListing, match="cursor"):
        decode_cursor(raw_cursor({"s": "title", "k": "\udfff", "n": "a"}), SORTS["title"], "")


def test_non_finite_key_is_refused():
    """NaN or infinity in a cursor (JSON accepts them) is not a position in any order."""
    token = base64.urlsafe_b64encode(b'{"s":"newest","k":NaN,"n":"a"}').decode()
    with pytest.raises(BadListing):
        decode_cursor(token, SORTS["newest"], "")


@pytest.mark.parametrize(
    "raw, limit", [(None, DEFAULT_PAGE_LIMIT), ("", DEFAULT_PAGE_LIMIT), ("1", 1), ("200", MAX_PAGE_LIMIT)]
)
def test_limit_parses(raw, limit):
    """limit defaults to DEFAULT_PAGE_LIMIT and accepts 1 to MAX_PAGE_LIMIT."""
    assert parse_limit(raw) == limit


@pytest.mark.parametrize("raw", ["0", "201", "-1", "1.5", "ten", "١٢", "9" * 40, " 5"])
def test_bad_limit_is_refused(raw):
    """Out of range or not a plain whole number: BadListing naming the bounds."""
    with pytest.raises(BadListing, match=r"between 1 and|whole number"):
        parse_limit(raw)


def test_sort_names_and_defaults():
    """'' is newest for a listing and relevance for a search; relevance needs a search;
    an unknown sort names the choices."""
    assert sort_order("", searching=False) is SORTS["newest"]
    assert sort_order("", searching=True) is RELEVANCE
    assert sort_order("views", searching=True) is SORTS["views"]
    with pytest.raises(BadListing, match="newest, oldest, title, duration, views"):
        sort_order("relevance", searching=False)
    with pytest.raises(BadListing, match="Unknown sort"):
        sort_order("size", searching=False)


def test_keyset_follows_the_direction_of_the_order():
    """Descending orders continue below the cursor, ascending ones above; name breaks ties
    in the same direction."""
    newest, title = SORTS["newest"], SORTS["title"]
    assert keyset_condition(newest, None) == ("1", ())
    assert keyset_condition(newest, Cursor("newest", 5.0, "b")) == (
        "(v.uploaded_at, v.name) < (?, ?)",
        (5.0, "b"),
    )
    assert keyset_condition(title, Cursor("title", "T", "b"))[0] == "(v.title, v.name) > (?, ?)"
    assert order_by(newest) == "v.uploaded_at DESC, v.name DESC"
    assert order_by(title) == "v.title ASC, v.name ASC"
