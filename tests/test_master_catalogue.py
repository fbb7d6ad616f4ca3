"""Tests for myyoutube.master.catalogue on a real index file: keyset pages in every order,
search (accents, case, prefixes, punctuation, ranking, highlight, hostile input), title
edits and view counts. No sockets: the catalogue is driven through the Index."""

from __future__ import annotations

import itertools
import random

import pytest

from myyoutube import listing
from myyoutube.master.index import Index, StoredBlob
from myyoutube.permissions import User
from myyoutube.videotext import BadText

NOW = 1_800_000_000.0
NODES = ["127.0.0.1:7101"]
_blob_ids = itertools.count()


@pytest.fixture
def index(tmp_path):
    opened = Index(tmp_path / "index.sqlite3", NOW)
    yield opened
    opened.close()


def add(index: Index, name: str, uploaded_at: float = NOW, **details) -> None:
    """Commit a video as an upload would (no bytes anywhere: the catalogue needs none)."""
    blob_id = f"{next(_blob_ids):032x}"
    index.ownership.begin_blob(blob_id, NOW)
    video = dict(details, name=name, blob_id=blob_id, size=1, sha256="0" * 64, content_type="video/mp4")
    index.commit_video(dict(video, uploaded_at=uploaded_at), [StoredBlob(blob_id, 1, "0" * 64, NODES)], NOW)


def every_page(index: Index, text: str = "", sort: str = "", limit: int = 7) -> list[list[str]]:
    pages, cursor = [], ""
    while True:
        page = index.catalogue.page(text, sort, cursor, limit)
        pages.append([video["name"] for video in page.videos])
        if not page.next:
            return pages
        cursor = page.next


def names_in(index: Index, text: str = "", sort: str = "") -> list[str]:
    return [name for page in every_page(index, text, sort) for name in page]


@pytest.fixture
def catalogue_of_30(index):
    """30 videos with repeated upload times, titles, durations and view counts (ties are
    where keyset paging goes wrong)."""
    rng = random.Random(30)
    for number in range(30):
        add(
            index,
            f"clip-{number:02d}.mp4",
            uploaded_at=NOW + rng.randrange(8),
            duration_s=float(rng.randrange(5)),
        )
        title = rng.choice(["apple", "Banana", "cherry", "APPLE pie"])
        index.catalogue.edit(f"clip-{number:02d}.mp4", title, "")
        for _ in range(rng.randrange(4)):
            index.catalogue.add_view(f"clip-{number:02d}.mp4")
    index.catalogue.flush_views()
    return index


@pytest.mark.parametrize("sort", ["newest", "oldest", "title", "duration", "views", ""])
def test_pages_in_every_order_cover_each_video_once(catalogue_of_30, sort):
    """Paging 7 at a time in each order lists all 30 videos once each, in the order's
    sequence with the name breaking ties; every page but the last is full."""
    videos = catalogue_of_30.videos.values()
    expected = {
        "newest": sorted(videos, key=lambda v: (v["uploaded_at"], v["name"]), reverse=True),
        "oldest": sorted(videos, key=lambda v: (v["uploaded_at"], v["name"])),
        "title": sorted(videos, key=lambda v: (v["title"].lower(), v["name"])),
        "duration": sorted(videos, key=lambda v: (v["duration_s"], v["name"]), reverse=True),
        "views": sorted(videos, key=lambda v: (v["views"], v["name"]), reverse=True),
    }[sort or "newest"]
    pages = every_page(catalogue_of_30, sort=sort)
    assert [len(page) for page in pages] == [7, 7, 7, 7, 2]
    assert [name for page in pages for name in page] == [v["name"] for v in expected]


def test_paging_across_inserts_and_deletes_neither_repeats_nor_skips(index):
    """Between pages, videos are added before and after the cursor and others deleted: every
    video present throughout is listed exactly once, a deleted one that was not reached
    yet never is, and one added after the cursor's position is."""
    for number in range(20):
        add(index, f"v{number:02d}.mp4", uploaded_at=NOW + number)
    first = index.catalogue.page("", "oldest", "", 5)
    seen = [video["name"] for video in first.videos]
    assert seen == [f"v{number:02d}.mp4" for number in range(5)]
    add(index, "early.mp4", uploaded_at=NOW - 1)  # before the cursor: not this walk's
    add(index, "a-tie.mp4", uploaded_at=NOW + 4)  # same time as the cursor, name before it
    add(index, "w-tie.mp4", uploaded_at=NOW + 4)  # same time as the cursor, name after it
    add(index, "late.mp4", uploaded_at=NOW + 100)
    index.delete_video("v02.mp4", NOW)  # already seen
    index.delete_video("v07.mp4", NOW)  # not reached yet
    cursor = first.next
    while cursor:
        page = index.catalogue.page("", "oldest", cursor, 5)
        seen += [video["name"] for video in page.videos]
        cursor = page.next
    assert len(seen) == len(set(seen))
    survivors = [f"v{number:02d}.mp4" for number in range(20) if number != 7]
    assert set(survivors) <= set(seen)
    assert "v07.mp4" not in seen and "early.mp4" not in seen and "a-tie.mp4" not in seen
    assert seen.index("w-tie.mp4") == 5  # right after v04 (time +4, "w-tie" > "v04")
    assert seen[-1] == "late.mp4"


def test_page_size_bounds_and_damaged_cursor_are_refused(index):
    """limit outside 1..MAX_PAGE_LIMIT and a damaged cursor raise BadListing; an empty
    catalogue is one empty page."""
    assert index.catalogue.page("", "", "", 50).videos == []
    for limit in (0, listing.MAX_PAGE_LIMIT + 1):
        with pytest.raises(listing.BadListing):
            index.catalogue.page("", "", "", limit)
    with pytest.raises(listing.BadListing, match="cursor"):
        index.catalogue.page("", "", "garbage", 10)


# --- search ---------------------------------------------------------------------------------


@pytest.fixture
def searchable(index):
    add(index, "cafe-paris.mp4")
    index.catalogue.edit("cafe-paris.mp4", "Café de Flore", "A morning in Paris")
    add(index, "holiday-005.mp4")
    add(index, "notes.mp4")
    index.catalogue.edit("notes.mp4", "Lecture notes", "We stopped at a CAFE for holiday photos")
    add(index, "ÉCOLE_rentrée.webm")
    return index


def found(index: Index, text: str) -> list[str]:
    return names_in(index, text)


def test_search_ignores_accents_and_case(searchable):
    """ "cafe" finds "Café" (and "CAFE"); "ecole" finds "ÉCOLE"; "CAFÉ" finds the same."""
    assert set(found(searchable, "cafe")) == {"cafe-paris.mp4", "notes.mp4"}
    assert set(found(searchable, "CAFÉ")) == {"cafe-paris.mp4", "notes.mp4"}
    assert found(searchable, "ecole rentree") == ["ÉCOLE_rentrée.webm"]


def test_search_matches_word_prefixes_not_substrings(searchable):
    """ "flo" finds "Flore" (a word's start); "lore", inside a word, finds nothing."""
    assert found(searchable, "flo") == ["cafe-paris.mp4"]
    assert found(searchable, "lore") == []


def test_search_ignores_punctuation(searchable):
    """ "holiday 005" finds the video named holiday-005.mp4, and so does "holiday-005";
    all words are required."""
    assert found(searchable, "holiday 005") == ["holiday-005.mp4"]
    assert found(searchable, "holiday-005") == ["holiday-005.mp4"]
    assert found(searchable, "holiday, 005!") == ["holiday-005.mp4"]
    assert set(found(searchable, "holiday")) == {"holiday-005.mp4", "notes.mp4"}


def test_a_title_match_ranks_above_a_description_match(searchable):
    """A word in a title outranks the same word in a description (bm25 with weights)."""
    assert found(searchable, "holiday") == ["holiday-005.mp4", "notes.mp4"]
    assert found(searchable, "cafe") == ["cafe-paris.mp4", "notes.mp4"]


def test_matched_title_words_are_highlighted(searchable):
    """Each result carries the [start, end) ranges of its title's matched words; a match
    only in the description highlights nothing in the title."""
    page = searchable.catalogue.page("cafe flo", "", "", 10)
    assert [video["title"] for video in page.videos] == ["Café de Flore"]
    assert page.highlights == [[[0, 4], [8, 13]]]
    page = searchable.catalogue.page("photos", "", "", 10)
    assert [video["name"] for video in page.videos] == ["notes.mp4"] and page.highlights == [[]]


@pytest.mark.parametrize(
    "text",
    ['"', '"cafe', "cafe*", "NEAR(cafe paris)", "-cafe", "cafe OR x", "title:cafe", "(", "\x00", "*", "^"],
)
def test_fts_syntax_in_a_search_is_answered_safely(searchable, text):
    """FTS5 operators typed in a search never raise: they are words or nothing."""
    names_in(searchable, text)


def test_fts_operators_are_only_words(searchable):
    """A quoted or starred word still finds its video; an operator word is looked for
    as a word."""
    assert found(searchable, '"cafe') == found(searchable, "cafe*") == found(searchable, "cafe")
    assert found(searchable, "cafe OR lecture") == []  # OR is a word no title has


def test_search_pages_cover_every_match_once(index):
    """A search paged 3 at a time lists every match once, best first."""
    for number in range(11):
        add(index, f"match-{number}.mp4")
        index.catalogue.edit(f"match-{number}.mp4", "sunset " * (number % 3 + 1) + "beach", "")
    add(index, "other.mp4")
    pages = every_page(index, "sunset", limit=3)
    assert [len(page) for page in pages] == [3, 3, 3, 2]
    listed = [name for page in pages for name in page]
    assert sorted(listed) == sorted(f"match-{number}.mp4" for number in range(11))


def test_a_common_word_ranks_only_its_newest_matches(index, monkeypatch):
    """With more matches than RANKED_MATCHES_MAX, a search ranks the newest of them; the
    horizon is fixed by the first page and travels in the cursor."""
    monkeypatch.setattr(listing, "RANKED_MATCHES_MAX", 5)
    for number in range(12):
        add(index, f"walk-{number:02d}.mp4")
    first = index.catalogue.page("walk", "", "", 3)
    monkeypatch.setattr(listing, "RANKED_MATCHES_MAX", 100)
    second = index.catalogue.page("walk", "", first.next, 3)
    listed = [video["name"] for video in first.videos + second.videos]
    assert sorted(listed) == [f"walk-{number:02d}.mp4" for number in range(7, 12)]
    assert second.next == ""


def test_others_private_matches_do_not_crowd_out_what_a_viewer_may_see(index, monkeypatch):
    """The newest RANKED_MATCHES_MAX matches a search ranks are those the searcher may see:
    an account's many new private videos with the same word in their titles leave an
    anonymous viewer's search with the public ones, and their owner's with their own."""
    monkeypatch.setattr(listing, "RANKED_MATCHES_MAX", 3)
    for number in range(4):
        add(index, f"public-cat-{number}.mp4", visibility="public", owner="ann")
    for number in range(6):
        add(index, f"private-cat-{number}.mp4", visibility="private", owner="bob")
    anonymous = [video["name"] for video in index.catalogue.page("cat", "newest", "", 10).videos]
    assert anonymous == [f"public-cat-{number}.mp4" for number in (3, 2, 1)]
    bob = User("bob", "uploader")
    assert [video["name"] for video in index.catalogue.page("cat", "newest", "", 10, bob).videos] == [
        f"private-cat-{number}.mp4" for number in (5, 4, 3)
    ]


def test_search_with_a_sort_order_pages_by_it(index):
    """A search may be sorted like a listing; its pages follow that order."""
    for number in range(6):
        add(index, f"trip-{number}.mp4", uploaded_at=NOW + number)
    assert names_in(index, "trip", "oldest") == [f"trip-{number}.mp4" for number in range(6)]
    assert names_in(index, "trip", "newest") == [f"trip-{number}.mp4" for number in reversed(range(6))]


# --- titles and views ---------------------------------------------------------------------


def test_edits_are_searchable_durable_and_checked(tmp_path):
    """An edited title and description are found by search (the old title no longer is),
    survive a reopen, and bad text or an unknown video changes nothing."""
    path = tmp_path / "index.sqlite3"
    index = Index(path, NOW)
    add(index, "raw-take-1.mp4")
    assert index.videos["raw-take-1.mp4"]["title"] == "raw take 1"
    edited = index.catalogue.edit(
        "raw-take-1.mp4", "  Sunrise over Lisbon ", "Shot on the 5th\nfrom the castle"
    )
    assert edited["title"] == "Sunrise over Lisbon"
    assert found(index, "lisbon castle") == ["raw-take-1.mp4"]
    assert found(index, "take") == ["raw-take-1.mp4"]  # the name is still searchable
    assert found(index, "raw take sunrise") == ["raw-take-1.mp4"]
    with pytest.raises(BadText):
        index.catalogue.edit("raw-take-1.mp4", "", "x")
    assert index.catalogue.edit("missing.mp4", "Title", "") is None
    index.close()
    reopened = Index(path, NOW)
    assert reopened.videos["raw-take-1.mp4"]["title"] == "Sunrise over Lisbon"
    assert reopened.videos["raw-take-1.mp4"]["description"] == "Shot on the 5th\nfrom the castle"
    assert found(reopened, "sunrise") == ["raw-take-1.mp4"]
    reopened.close()


def test_deleted_video_leaves_the_search_index(index):
    """A deleted video is no longer found; a new one under the same name is, by its own words."""
    add(index, "dup.mp4")
    index.catalogue.edit("dup.mp4", "First version", "")
    index.delete_video("dup.mp4", NOW)
    assert found(index, "first") == []
    add(index, "dup.mp4")
    assert found(index, "first") == [] and found(index, "dup") == ["dup.mp4"]


def test_views_count_at_once_and_are_written_on_flush_and_close(tmp_path):
    """A view shows in the record at once; it reaches the index (and the views order) when
    flushed, and close() flushes what is left."""
    path = tmp_path / "index.sqlite3"
    index = Index(path, NOW)
    add(index, "a.mp4")
    add(index, "b.mp4")
    assert index.catalogue.add_view("b.mp4") == 1
    assert names_in(index, sort="views") == ["b.mp4", "a.mp4"]  # ties: name descending
    index.catalogue.add_view("a.mp4")
    index.catalogue.add_view("a.mp4")
    index.catalogue.flush_views()
    assert names_in(index, sort="views") == ["a.mp4", "b.mp4"]
    index.catalogue.add_view("b.mp4")
    index.close()
    reopened = Index(path, NOW)
    assert {name: video["views"] for name, video in reopened.videos.items()} == {"a.mp4": 2, "b.mp4": 2}
    reopened.close()
