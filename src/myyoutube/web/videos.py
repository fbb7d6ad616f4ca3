"""The video catalogue over HTTP: list, search, edit, delete.

Theory of operation
-------------------
Each handler asks the master one question over the cluster protocol and answers JSON;
a refusal from the master becomes its status code in server.py's error middleware.

`/listar` and `/search?q=` answer one page, `{"videos": [...], "next": CURSOR|null}`,
choosing it by `limit`, `cursor` and `sort` (listing.py). The master checks the sort and
the cursor (its sentences come back as 400s); only the page size is parsed here.

`PATCH /videos/{name}` takes `{"title": ..., "description": ...}` (either may be left
out), checks the JSON's shape, asks `permissions.may_edit_video`, and has the master
store the text, which the master checks (videotext.py) before anything is written.
"""

from __future__ import annotations

import json

from aiohttp import web

from myyoutube import listing, names, permissions
from myyoutube.web.common import MASTER, error

# Search terms are names or parts of names; names are at most 255 bytes.
MAX_QUERY_CHARS = names.MAX_NAME_BYTES

# An edit's JSON body: a 5,000-character description is at most 60 KB even with every
# character written as an escaped surrogate pair (12 bytes), plus the title.
MAX_EDIT_BODY_BYTES = 64 * 1024

# What an edit may change.
_EDITABLE = ("title", "description")


async def listar(request: web.Request) -> web.Response:
    return await _page(request, "")


async def search(request: web.Request) -> web.Response:
    query = request.query.get("q", "")
    if len(query) > MAX_QUERY_CHARS:
        return error(400, f"The search text is longer than {MAX_QUERY_CHARS} characters.")
    return await _page(request, query.strip())


async def _page(request: web.Request, query: str) -> web.Response:
    try:
        limit = listing.parse_limit(request.query.get("limit"))
    except listing.BadListing as exc:
        return error(400, str(exc))
    sort, cursor = request.query.get("sort", ""), request.query.get("cursor", "")
    page = await request.app[MASTER].list_page(query, sort, cursor, limit)
    return web.json_response({"videos": page.videos, "next": page.next or None})


async def edit(request: web.Request) -> web.Response:
    """PATCH /videos/{name}: change the title and/or description; the updated record."""
    try:
        changes = _edit_changes(await _body(request, MAX_EDIT_BODY_BYTES))
    except _Refused as refusal:
        return error(refusal.status, refusal.sentence)
    master = request.app[MASTER]
    video = await master.stat(request.match_info["name"])
    if not permissions.may_edit_video(video, editor=None):
        return error(403, "You may not edit this video.")
    title = changes.get("title", video["title"])
    description = changes.get("description", video["description"])
    return web.json_response(await master.update_video(video["name"], title, description))


class _Refused(Exception):
    def __init__(self, status: int, sentence: str) -> None:
        super().__init__(sentence)
        self.status, self.sentence = status, sentence


async def _body(request: web.Request, max_bytes: int) -> bytes:
    """The whole request body, refused (413) past `max_bytes` without reading further."""
    too_large = _Refused(413, f"The request body is larger than {max_bytes // 1024} KiB.")
    if (request.content_length or 0) > max_bytes:
        raise too_large
    body = bytearray()
    async for piece in request.content.iter_chunked(max_bytes):
        body += piece
        if len(body) > max_bytes:
            raise too_large
    return bytes(body)


def _edit_changes(body: bytes) -> dict[str, str]:
    """The fields an edit changes, from its JSON body; _Refused (400) with a sentence."""
    try:
        changes = json.loads(body.decode())
    except (UnicodeDecodeError, ValueError, RecursionError):
        changes = None
    if not isinstance(changes, dict) or not changes:
        raise _Refused(400, 'Send the changes as a JSON object: {"title": "...", "description": "..."}.')
    unknown = sorted(set(changes) - set(_EDITABLE))
    if unknown:
        raise _Refused(
            400, f"Only the title and description can be changed, not \u201c{unknown[0][:40]}\u201d."
        )
    for field, value in changes.items():
        if not isinstance(value, str):
            raise _Refused(400, f"The {field} must be text.")
    return changes


async def delete(request: web.Request) -> web.Response:
    await request.app[MASTER].delete(request.match_info["name"])
    return web.json_response({"deleted": request.match_info["name"]})
