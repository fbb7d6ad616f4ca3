"""Pages of the catalogue: sort orders, page sizes and opaque cursors (keyset pagination).

Theory of operation
-------------------
A listing is read one page at a time, in a total order: the sort key, then the video's
name (unique) to break ties. A page ends with a *cursor*, the (key, name) of its last
video; the next page is "the first `limit` videos after that pair in this order", which
SQL answers with a row-value comparison `(key, name) > (?, ?)` walking an index on
(key, name). Unlike OFFSET, this costs the same on page 1 and page 2,000, and a video
added or deleted meanwhile neither repeats a video nor skips one.

The cursor is opaque to clients: base64url of a small JSON object holding the sort, the
key and name of the last row, and for a search a fingerprint of the search text and the
search's *horizon* (see below). `decode_cursor` checks every part and refuses a cursor
that was cut, edited or made for another sort or search with a sentence, never a 500.

Searches order by relevance (bm25; lower is better) by default. A word that matches a
large share of the catalogue would have every match scored, so a search ranks only its
newest RANKED_MATCHES_MAX matches the searcher may see (by row id, which grows with
each upload): the horizon, the smallest row id taken in, is fixed on the first page and
carried in the cursor so later pages rank the same set. Relevance scores depend on the
whole catalogue (bm25 weighs a word by how rare it is), so a search's pages are exact
while nothing changes; an upload, edit or deletion between two pages can shift the
scores a little and repeat or skip a result at the page boundary. Listings have no such
caveat.

This module does no I/O; the master's catalogue runs the SQL it builds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from dataclasses import dataclass
from typing import TypeGuard, TypeVar

from myyoutube.permissions import User, is_admin

# Cards on a first screen and a bit more; a phone scrolls through 50 in a few flicks.
DEFAULT_PAGE_LIMIT = 50

# The most a client may ask for at once. 200 records of at most a 5,000-character
# description each stay far inside one frame's MAX_META_BYTES (8 MiB).
MAX_PAGE_LIMIT = 200

# A cursor holds a title (at most 200 characters, up to 4 UTF-8 bytes each) and a name
# (at most 255 bytes) in base64: under 2 KiB. Anything longer is not one of ours.
MAX_CURSOR_CHARS = 2048

# A search ranks at most this many of its matches, the newest ones the searcher may see:
# scoring and sorting cost 2-3 microseconds per match (bm25, the join to the videos
# table), so 5,000 keeps a search page near 15 ms at any catalogue size (bench/catalogue.py).
RANKED_MATCHES_MAX = 5_000

# Relevance weights of the search index's columns (title, description, name) in bm25: a
# word in the title says more about a video than one in its file name or description.
TITLE_WEIGHT, DESCRIPTION_WEIGHT, NAME_WEIGHT = 4.0, 1.0, 2.0

# Search fingerprints are short: they only tell one search's cursor from another's.
_QUERY_FINGERPRINT_CHARS = 16


class BadListing(ValueError):
    """A page request that cannot be answered; str(exc) says why, for the user."""


@dataclass(frozen=True)
class SortOrder:
    """One way to order videos: an SQL expression (over the videos table `v`, or the
    search's rank) and its direction; the name breaks ties in the same direction."""

    name: str
    key_sql: str
    descending: bool
    key_type: type


# The indexes on (key, name) that make each order a walk are in master/schema.py.
SORTS = {
    sort.name: sort
    for sort in (
        SortOrder("newest", "v.uploaded_at", True, float),
        SortOrder("oldest", "v.uploaded_at", False, float),
        SortOrder("title", "v.title", False, str),  # the column collates NOCASE
        SortOrder("duration", "v.duration_s", True, float),  # longest first
        SortOrder("views", "v.views", True, int),  # most watched first
    )
}
# bm25 over the search index (master/schema.py): lower is better.
RELEVANCE = SortOrder(
    "relevance", f"bm25(videos_fts, {TITLE_WEIGHT}, {DESCRIPTION_WEIGHT}, {NAME_WEIGHT})", False, float
)
SORT_NAMES = (*SORTS, RELEVANCE.name)


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last row's sort key and name (and the search's horizon)."""

    sort: str
    key: object
    name: str
    query: str = ""  # fingerprint of the search text, '' for a listing
    horizon: int = 0  # the smallest row id a search ranks; 0 for a listing


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE_LIMIT:
        raise BadListing(f"The page size (limit) must be between 1 and {MAX_PAGE_LIMIT}.")
    return limit


def parse_limit(raw: str | None) -> int:
    """The `limit` query parameter: DEFAULT_PAGE_LIMIT when absent."""
    if raw is None or raw == "":
        return DEFAULT_PAGE_LIMIT
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6:
        raise BadListing(f"The page size (limit) must be a whole number from 1 to {MAX_PAGE_LIMIT}.")
    return check_limit(int(raw))


def sort_order(name: str, searching: bool) -> SortOrder:
    """The order named by `sort` ('' for the default: newest, or relevance for a search)."""
    if name == "":
        return RELEVANCE if searching else SORTS["newest"]
    if name == RELEVANCE.name and searching:
        return RELEVANCE
    if name not in SORTS:
        choices = ", ".join(SORT_NAMES if searching else SORTS)
        raise BadListing(f"Unknown sort \u201c{name[:40]}\u201d; use one of {choices}.")
    return SORTS[name]


def query_fingerprint(match: str) -> str:
    """A short digest of a search's FTS expression ('' for a listing)."""
    if not match:
        return ""
    return hashlib.sha256(match.encode()).hexdigest()[:_QUERY_FINGERPRINT_CHARS]


def encode_cursor(cursor: Cursor) -> str:
    fields = {"s": cursor.sort, "k": cursor.key, "n": cursor.name}
    if cursor.query:
        fields.update(q=cursor.query, h=cursor.horizon)
    raw = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_NOT_OURS = "This page cursor is damaged or was not made by this server; start again from the first page."


def decode_cursor(token: str, sort: SortOrder, match: str) -> Cursor:
    """The cursor a client sent back, checked against the sort and search it is used with."""
    if len(token) > MAX_CURSOR_CHARS or not token.isascii():
        raise BadListing(_NOT_OURS)
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        fields = json.loads(raw.decode())
    except (binascii.Error, ValueError, RecursionError):
        raise BadListing(_NOT_OURS) from None
    if not isinstance(fields, dict) or set(fields) - {"s", "k", "n", "q", "h"}:
        raise BadListing(_NOT_OURS)
    if fields.get("s") != sort.name:
        raise BadListing("This page cursor belongs to another sort order; start again from the first page.")
    if fields.get("q", "") != query_fingerprint(match):
        raise BadListing("This page cursor belongs to another search; start again from the first page.")
    key, name, horizon = fields.get("k"), fields.get("n"), fields.get("h", 0)
    if not (_is(key, sort.key_type) and _is(name, str) and _is(horizon, int) and horizon >= 0):
        raise BadListing(_NOT_OURS)
    return Cursor(sort.name, key, name, fields.get("q", ""), horizon)


# What SQLite can bind: an integer in 64 bits. A cursor's key of 10**30, or a string with
# a lone surrogate ("\ud800" is valid JSON but no UTF-8), made the master's query raise
# OverflowError or UnicodeEncodeError, i.e. a traceback in its log per request.
_SQLITE_INTEGERS = range(-(2**63), 2**63)

T = TypeVar("T")


def _is(value: object, kind: type[T]) -> TypeGuard[T]:
    """JSON type check for a value SQLite will bind: bool is not a number; an integral
    float key may come back as int; integers fit in 64 bits; strings are UTF-8."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int) and value not in _SQLITE_INTEGERS:
        return False
    if isinstance(value, str) and not _is_utf8(value):
        return False
    if kind is float:
        return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    return isinstance(value, kind)


def _is_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def keyset_condition(sort: SortOrder, cursor: Cursor | None) -> tuple[str, tuple]:
    """The SQL condition for "after the cursor in this order" and its parameters."""
    if cursor is None:
        return "1", ()
    after = "<" if sort.descending else ">"
    return f"({sort.key_sql}, v.name) {after} (?, ?)", (cursor.key, cursor.name)


def order_by(sort: SortOrder) -> str:
    direction = "DESC" if sort.descending else "ASC"
    return f"{sort.key_sql} {direction}, v.name {direction}"


def visibility_condition(viewer: User | None) -> tuple[str, tuple]:
    """The SQL condition (over `v`) a video meets to be listed to `viewer`: the rule of
    permissions.may_list, for SQLite (tests/test_permissions.py checks they agree)."""
    if is_admin(viewer):
        return "1", ()
    if viewer is None:
        return "v.visibility = 'public'", ()
    return "(v.visibility = 'public' OR v.owner = ?)", (viewer.name,)
