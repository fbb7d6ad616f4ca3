"""The catalogue over HTTP through a real cluster: pages and cursors on /listar and
/search, editing titles with PATCH /videos/{name}, and views counted once per viewer."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import pytest

from harness import tiny_mp4, upload, wait_until
from myyoutube.videotext import MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS
from myyoutube.web.videos import MAX_EDIT_BODY_BYTES
from myyoutube.web.viewers import VIEWER_COOKIE


def tag() -> str:
    return uuid.uuid4().hex[:8]


async def uploaded(http, cluster, name: str) -> str:
    status, body = await upload(http, cluster, name, tiny_mp4())
    assert status == 201, body
    return name


async def get_json(http, url: str, **params) -> tuple[int, dict]:
    async with http.get(url, params=params) as response:
        return response.status, await response.json()


async def record(http, cluster, name: str) -> dict:
    status, body = await get_json(http, f"{cluster.url}/search", q=name)
    assert status == 200
    return next(video for video in body["videos"] if video["name"] == name)


# --- pages ----------------------------------------------------------------------------------


async def test_search_pages_follow_their_cursor_to_the_end(cluster, http):
    """/search?q=&sort=oldest&limit=2 pages through 5 matching videos as 2, 2, 1 with
    `next` a cursor until the last page's null; every video appears once, each with its
    title, description, views and the matched ranges of its title."""
    run = tag()
    names = [await uploaded(http, cluster, f"paging_{run}-{number}.mp4") for number in range(5)]
    pages, cursor = [], None
    while True:
        params = {"q": run, "sort": "oldest", "limit": "2", **({"cursor": cursor} if cursor else {})}
        status, body = await get_json(http, f"{cluster.url}/search", **params)
        assert status == 200, body
        assert set(body) == {"videos", "next"}
        pages.append(body["videos"])
        cursor = body["next"]
        if cursor is None:
            break
    assert [len(page) for page in pages] == [2, 2, 1]
    listed = [video for page in pages for video in page]
    assert [video["name"] for video in listed] == names
    first = listed[0]
    assert (first["title"], first["description"], first["views"]) == (f"paging {run} 0", "", 0)
    assert first["title_highlight"] == [[7, 15]]  # the run tag inside "paging <run> 0"


async def test_listar_pages_and_keeps_its_old_shape(cluster, http):
    """/listar answers {"videos", "next"}: at most `limit` videos, newest first, then the
    next page from the cursor, without repeating any."""
    for number in range(3):
        await uploaded(http, cluster, f"listar-{tag()}-{number}.mp4")
    status, first = await get_json(http, f"{cluster.url}/listar", limit="2")
    assert status == 200 and len(first["videos"]) == 2 and first["next"]
    times = [video["uploaded_at"] for video in first["videos"]]
    assert times == sorted(times, reverse=True)
    status, second = await get_json(http, f"{cluster.url}/listar", limit="2", cursor=first["next"])
    assert status == 200
    assert not {v["name"] for v in first["videos"]} & {v["name"] for v in second["videos"]}


@pytest.mark.parametrize(
    "path, params, says",
    [
        ("/listar", {"limit": "0"}, "between 1 and 200"),
        ("/listar", {"limit": "201"}, "between 1 and 200"),
        ("/listar", {"limit": "ten"}, "whole number"),
        ("/listar", {"sort": "size"}, "Unknown sort"),
        ("/listar", {"sort": "relevance"}, "Unknown sort"),
        ("/listar", {"cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
        ("/listar", {"cursor": "%%%"}, "cursor"),
        # Past SQLite's 64-bit integers, and a lone surrogate: the master's query raised.
        (
            "/listar",
            {"cursor": "eyJzIjoibmV3ZXN0IiwiayI6MTAwMDAwMDAwMDAwMDAwMDAwMDAwMDAsIm4iOiJhIn0"},
            "cursor",
        ),
        ("/listar", {"cursor": "eyJzIjoibmV3ZXN0IiwiayI6MSwibiI6Ilx1ZDgwMCJ9"}, "cursor"),
        ("/search", {"q": "x", "cursor": "eyJzIjoibmV3ZXN0IiwiayI6MS4wLCJuIjoiYSJ9"}, "another sort"),
    ],
)
async def test_bad_page_requests_are_400_with_a_sentence(cluster, http, path, params, says):
    """A bad limit, sort or cursor is a 400 whose JSON error says what is wrong."""
    status, body = await get_json(http, cluster.url + path, **params)
    assert status == 400 and says in body["error"]


@pytest.mark.parametrize("query", ['"', "*", "NEAR(", "-x", "a:b", "\x00", "\ud800", "((("])
async def test_fts_syntax_in_search_is_answered_not_a_500(cluster, http, query):
    """FTS5 operators and odd characters in q are searched for as text (200), never a 500."""
    async with http.get(f"{cluster.url}/search", params={"q": query}) as response:
        assert response.status == 200
        assert "videos" in await response.json()


# --- editing --------------------------------------------------------------------------------


async def patch(http, cluster, name: str, body) -> tuple[int, dict]:
    kwargs = {"data": body} if isinstance(body, (bytes, str)) else {"json": body}
    async with http.patch(
        f"{cluster.url}/videos/{name}", headers=cluster.admin_headers(), **kwargs
    ) as response:
        return response.status, await response.json()


async def test_title_and_description_edit_is_searchable(cluster, http):
    """PATCH with a title answers 200 and the updated record; the description is kept
    until it is sent; the new title is found by search (accents folded) and the name
    stays the key."""
    name = await uploaded(http, cluster, f"raw-{tag()}.mp4")
    run = tag()
    status, body = await patch(
        http, cluster, name, {"title": f"  Crème brûlée {run} ", "description": "Day 1"}
    )
    assert status == 200, body
    assert (body["name"], body["title"], body["description"]) == (name, f"Crème brûlée {run}", "Day 1")
    status, body = await patch(http, cluster, name, {"title": f"Crème brûlée {run}, part 2"})
    assert status == 200 and body["description"] == "Day 1"
    status, found = await get_json(http, f"{cluster.url}/search", q=f"creme brulee {run}")
    assert [video["name"] for video in found["videos"]] == [name]
    assert found["videos"][0]["title_highlight"] == [[0, 5], [6, 12], [13, 21]]


@pytest.mark.parametrize(
    "body, status, says",
    [
        ({"title": ""}, 400, "empty"),
        ({"title": "   "}, 400, "empty"),
        ({"title": "x" * (MAX_TITLE_CHARS + 1)}, 400, "longer"),
        ({"title": "bad\x00title"}, 400, "control"),
        ({"title": "two\nlines"}, 400, "line breaks"),
        ({"title": "\u200b"}, 400, "shows nothing"),  # showed as an empty title
        ({"description": "d" * (MAX_DESCRIPTION_CHARS + 1)}, 400, "longer"),
        ({"description": "\x1b[2J"}, 400, "control"),
        ({"title": 5}, 400, "text"),
        ({"title": None}, 400, "text"),
        ({"owner": "me"}, 400, "Only the title, description and visibility"),
        ({}, 400, "changes nothing; send a title, a description or a visibility"),
        ([], 400, "JSON object"),
        (b"not json", 400, "JSON object"),
        (b"\xff\xfe", 400, "JSON object"),
        (b'{"title": "' + b"x" * MAX_EDIT_BODY_BYTES + b'"}', 413, "title or description is too long"),
        # Past the body limit, the person is told the text limits, not a size in KiB.
        ({"description": "\u00e9" * 30_000}, 413, f"a description {MAX_DESCRIPTION_CHARS}; shorten it"),
    ],
)
async def test_bad_edits_are_refused_and_change_nothing(cluster, http, body, status, says):
    """Each bad edit gets its 4xx with a sentence, and the video keeps its title."""
    name = await uploaded(http, cluster, f"keep-{tag()}.mp4")
    before = await record(http, cluster, name)
    answer_status, answer = await patch(http, cluster, name, body)
    assert answer_status == status and says in answer["error"]
    after = await record(http, cluster, name)
    assert (after["title"], after["description"]) == (before["title"], before["description"])


async def test_editing_an_unknown_video_is_404(cluster, http):
    """PATCH of a name no video has answers 404 with a sentence."""
    status, body = await patch(http, cluster, f"missing-{tag()}.mp4", {"title": "Hello"})
    assert status == 404 and "no video" in body["error"]


# --- views ----------------------------------------------------------------------------------


def browser() -> aiohttp.ClientSession:
    """A client that keeps cookies, as a browser does (aiohttp's default jar ignores cookies
    from an IP address like 127.0.0.1)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def play(session: aiohttp.ClientSession, cluster, name: str, start: int = 0) -> None:
    async with session.get(f"{cluster.url}/stream/{name}", headers={"Range": f"bytes={start}-"}) as response:
        assert response.status == 206
        await response.read()


async def views_become(http, cluster, name: str, expected: int) -> None:
    """Views are reported in the background: wait for the count, then check that nothing
    more arrives."""

    async def counted() -> bool:
        return (await record(http, cluster, name))["views"] == expected

    await wait_until(counted, f"{name} has {expected} views", timeout_s=10)
    await asyncio.sleep(0.5)
    assert (await record(http, cluster, name))["views"] == expected


async def test_views_count_once_per_viewer_not_per_range_request(cluster, http):
    """A browser opening the watch page gets a viewer cookie (HttpOnly, SameSite=Lax); its
    stream from byte 0 counts one view, its later range requests and a replay do not; a
    second browser counts one more; a cookie-less client counts once for its address,
    and is handed a viewer cookie only with the answers that start a playback."""
    name = await uploaded(http, cluster, f"views-{tag()}.mp4")
    async with browser() as first:
        async with first.get(f"{cluster.url}/watch/{name}") as response:
            assert response.status == 200
            cookie = response.cookies[VIEWER_COOKIE]
            assert (
                cookie["httponly"]
                and cookie["samesite"] == "Lax"
                and int(cookie["max-age"]) > 3600 * 24 * 300
            )
        await play(first, cluster, name)
        await play(first, cluster, name, start=1000)  # a seek
        await play(first, cluster, name)  # a replay within the window
        async with first.head(f"{cluster.url}/stream/{name}") as response:
            assert response.status == 200
        await views_become(http, cluster, name, 1)
    async with browser() as second:
        async with second.get(f"{cluster.url}/watch/{name}") as response:
            assert response.cookies[VIEWER_COOKIE].value != cookie.value
        await play(second, cluster, name)
        await views_become(http, cluster, name, 2)
    for _ in range(2):
        async with http.get(f"{cluster.url}/stream/{name}") as response:  # no cookies kept
            assert response.status == 200 and VIEWER_COOKIE in response.cookies
            await response.read()
        # A seek counts no view, and hands a client that keeps no cookies no new id either.
        async with http.get(f"{cluster.url}/stream/{name}", headers={"Range": "bytes=1000-"}) as response:
            assert response.status == 206 and VIEWER_COOKIE not in response.cookies
            await response.read()
    await views_become(http, cluster, name, 3)
    status, by_views = await get_json(http, f"{cluster.url}/search", q=name, sort="views")
    assert status == 200 and by_views["videos"][0]["views"] == 3


async def test_views_survive_a_master_restart(fresh_cluster, http):
    """Counted views are written to the index (at the latest when the master stops) and
    are still there after a restart."""
    cluster = fresh_cluster(datanodes=1, master_args=("--replication", "1"))
    name = await uploaded(http, cluster, f"kept-views-{tag()}.mp4")
    async with browser() as viewer:
        await play(viewer, cluster, name)
    await views_become(http, cluster, name, 1)
    cluster.master.stop()
    cluster.restart_master()
    assert (await cluster.client().stat(name))["views"] == 1
