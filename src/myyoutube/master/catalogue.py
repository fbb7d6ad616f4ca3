"""The catalogue over the master's index: pages, search, titles and view counts.

Theory of operation
-------------------
The index keeps every video's record in memory (`Index.videos`) but a page is chosen by
SQLite, which has what a dict lacks at 100,000 videos: an index per sort order, so a page
is a walk of `limit` entries from the cursor (listing.py), whatever its depth, and the
FTS5 search index (`videos_fts`, kept in step with the videos table by triggers; see
schema.py's migration 2). A query returns only names and sort keys; the records come from
memory. So a page costs one indexed SQL query plus, for a search's first page, one to
find its horizon (listing.py).

Titles and descriptions are written to SQLite (fsynced) before memory, like everything
else in the index. View counts are not worth an fsync each: `add_view` counts in memory
at once and `flush_views` writes the counts gathered since the last flush in one
transaction (the master flushes every VIEWS_FLUSH_S and on shutdown). A crash loses at
most that many seconds of views, and the views order in SQLite trails the counts shown
by as much.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from myyoutube import listing, videotext
from myyoutube.permissions import User

# How often counted views are written to the index; what a crash can lose.
VIEWS_FLUSH_S = 10.0


@dataclass(frozen=True)
class Page:
    """One page of a listing or search: the records, for a search the matched ranges of
    each title (videotext.highlight_ranges), and the cursor of the next page ('' if none)."""

    videos: list[dict]
    highlights: list[list[list[int]]] | None
    next: str


class Catalogue:
    def __init__(
        self,
        db: sqlite3.Connection,
        videos: dict[str, dict],
        transaction: Callable[[], AbstractContextManager[None]],
    ) -> None:
        self._db = db
        self._videos = videos  # the index's records, by name
        self._transaction = transaction
        self._unsaved_views: dict[str, int] = {}  # name -> views counted since the last flush

    # --- pages ------------------------------------------------------------------------------

    def page(self, text: str, sort_name: str, cursor: str, limit: int, viewer: User | None = None) -> Page:
        """The page of videos `viewer` may list after `cursor` (the first if ''), listed or,
        if `text` holds anything, searched for; raises listing.BadListing with a sentence for bad input."""
        searching = bool(text.strip())
        match = videotext.match_expression(text) if searching else ""
        sort = listing.sort_order(sort_name, searching)
        listing.check_limit(limit)
        after = listing.decode_cursor(cursor, sort, match) if cursor else None
        if searching and not match:
            return Page([], [], "")  # only punctuation: no word to look for
        visible = listing.visibility_condition(viewer)
        conditions = [listing.keyset_condition(sort, after), visible]
        where = " AND ".join(sql for sql, _ in conditions)
        params = tuple(value for _, values in conditions for value in values)
        order = listing.order_by(sort)
        horizon = 0
        if searching:
            horizon = after.horizon if after else self._horizon(match, visible)
            rows = self._db.execute(
                f"SELECT v.name, {sort.key_sql} FROM videos_fts JOIN videos v ON v.id = videos_fts.rowid"
                f" WHERE videos_fts MATCH ? AND videos_fts.rowid >= ? AND {where} ORDER BY {order} LIMIT ?",
                (match, horizon, *params, limit + 1),
            ).fetchall()
        else:
            rows = self._db.execute(
                f"SELECT v.name, {sort.key_sql} FROM videos v WHERE {where} ORDER BY {order} LIMIT ?",
                (*params, limit + 1),
            ).fetchall()
        more, rows = len(rows) > limit, rows[:limit]
        next_cursor = ""
        if more:
            name, key = rows[-1]
            fingerprint = listing.query_fingerprint(match)
            next_cursor = listing.encode_cursor(listing.Cursor(sort.name, key, name, fingerprint, horizon))
        videos = [self._videos[name] for name, _ in rows]
        highlights = [videotext.highlight_ranges(v["title"], text) for v in videos] if searching else None
        return Page(videos, highlights, next_cursor)

    def _horizon(self, match: str, visible: tuple[str, tuple]) -> int:
        """The smallest row id among the newest RANKED_MATCHES_MAX matches the viewer may
        list (`visible`: listing.visibility_condition), or 0 if there are none.

        Only those count, or another account's private videos could crowd out everything
        the viewer may see: 5,000 new private "holiday" clips would hide every public one.
        The inner query walks the matches newest first (FTS5 keeps them in row id order,
        one primary-key lookup each) and stops at the RANKED_MATCHES_MAX-th visible one;
        MIN then needs no order from it. Cost: ~1 µs a match walked, +3-5 ms on a search
        of a common word at 100,000 videos; the walk is longer only by the matches the
        viewer may not see that are newer than that last visible one."""
        condition, params = visible
        row = self._db.execute(
            "SELECT MIN(id) FROM (SELECT v.id AS id FROM videos_fts JOIN videos v ON v.id = videos_fts.rowid"
            f" WHERE videos_fts MATCH ? AND {condition} ORDER BY videos_fts.rowid DESC LIMIT ?)",
            (match, *params, listing.RANKED_MATCHES_MAX),
        ).fetchone()
        return row[0] or 0

    # --- titles -----------------------------------------------------------------------------

    def edit(self, name: str, title: str, description: str) -> dict | None:
        """Set a video's title and description (None if there is no such video); raises
        videotext.BadText with a sentence for text that cannot be stored."""
        title, description = videotext.clean_title(title), videotext.clean_description(description)
        video = self._videos.get(name)
        if video is None:
            return None
        with self._transaction():
            self._db.execute(
                "UPDATE videos SET title = ?, description = ? WHERE name = ?", (title, description, name)
            )
        video.update(title=title, description=description)
        return video

    # --- views ------------------------------------------------------------------------------

    def add_view(self, name: str) -> int:
        """Count one view of an existing video (written at the next flush); its new count."""
        video = self._videos[name]
        video["views"] += 1
        self._unsaved_views[name] = self._unsaved_views.get(name, 0) + 1
        return video["views"]

    def flush_views(self) -> None:
        """Write the views counted since the last flush, in one transaction."""
        if not self._unsaved_views:
            return
        unsaved, self._unsaved_views = self._unsaved_views, {}
        try:
            with self._transaction():
                self._db.executemany(
                    "UPDATE videos SET views = views + ? WHERE name = ?",
                    [(count, name) for name, count in unsaved.items()],
                )
        except sqlite3.Error:
            for name, count in unsaved.items():  # kept for the next flush
                self._unsaved_views[name] = self._unsaved_views.get(name, 0) + count
            raise
