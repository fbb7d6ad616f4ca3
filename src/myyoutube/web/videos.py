"""The video catalogue over HTTP: list, search, one video's record, edit, delete.

Theory of operation
-------------------
Each handler asks the master one question over the cluster protocol, acting for the
visitor (common.master_for), and answers JSON; the master lists only what that account
may see and refuses what it may not do, and its refusals become status codes in
server.py's error middleware.

`/listar` and `/search?q=` answer one page, `{"videos": [...], "next": CURSOR|null}`,
choosing it by `limit`, `cursor` and `sort` (listing.py). The master checks the sort and
the cursor (its sentences come back as 400s); only the page size is parsed here.

`GET /videos/{name}` answers one video's public record (the watch page polls it while the
video is processing), if the visitor may see it.

`PATCH /videos/{name}` takes `{"title": ..., "description": ..., "visibility": ...}` (any
of them may be left out), checks the JSON's shape, asks `permissions.may_edit` (the
video's owner or an admin; the master asks again), and has the master store the change,
which it checks (videotext.py) before anything is written. Every delete is logged with
who asked for it.
"""

from __future__ import annotations

import logging

from aiohttp import web

from myyoutube import listing, names, permissions, videotext
from myyoutube.web.common import VISITOR, BodyTooLarge, error, json_value, master_for, read_body

log = logging.getLogger(__name__)

# Search terms are names or parts of names; names are at most 255 bytes.
MAX_QUERY_CHARS = names.MAX_NAME_BYTES

# An edit's JSON body: a 5,000-character description is at most 60 KB even with every
# character written as an escaped surrogate pair (12 bytes), plus the title.
MAX_EDIT_BODY_BYTES = 64 * 1024

# What an edit may change.
_EDITABLE = ("title", "description", "visibility")


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
    page = await master_for(request).list_page(query, sort, cursor, limit)
    return web.json_response({"videos": page.videos, "next": page.next or None})


async def show(request: web.Request) -> web.Response:
    """GET /videos/{name}: the video's public record, as /listar lists it."""
    return web.json_response(await master_for(request).stat(request.match_info["name"]))


async def edit(request: web.Request) -> web.Response:
    """PATCH /videos/{name}: change the title, description and/or visibility; the
    updated record."""
    try:
        changes = _edit_changes(await read_body(request, MAX_EDIT_BODY_BYTES))
    except BodyTooLarge:
        # Only text past its limits makes an edit this large: say which limits.
        return error(
            413,
            f"The title or description is too long: a title holds at most {videotext.MAX_TITLE_CHARS} "
            f"characters and a description {videotext.MAX_DESCRIPTION_CHARS}; shorten it.",
        )
    except _Refused as refusal:
        return error(400, str(refusal))
    master = master_for(request)
    video = await master.stat(request.match_info["name"])
    user = request[VISITOR].user
    if not permissions.may_edit(user, video):
        if user is None:
            return error(401, "Sign in to edit your videos.")
        return error(403, names.owner_only("change"))
    if "title" in changes or "description" in changes:
        title = changes.get("title", video["title"])
        description = changes.get("description", video["description"])
        video = await master.update_video(video["name"], title, description)
    if "visibility" in changes:
        video = await master.set_visibility(video["name"], changes["visibility"])
    return web.json_response(video)


class _Refused(Exception):
    """The edit's body is not what it should be; str(exc) says why (a 400)."""


def _edit_changes(body: bytes) -> dict[str, str]:
    """The fields an edit changes, from its JSON body; _Refused with a sentence."""
    try:
        changes = json_value(body)
    except ValueError:
        changes = None
    if not isinstance(changes, dict):
        raise _Refused('Send the changes as a JSON object: {"title": "...", "description": "..."}.')
    if not changes:
        raise _Refused("The edit changes nothing; send a title, a description or a visibility.")
    unknown = sorted(set(changes) - set(_EDITABLE))
    if unknown:
        raise _Refused(
            f"Only the title, description and visibility can be changed, not \u201c{unknown[0][:40]}\u201d."
        )
    for field, value in changes.items():
        if not isinstance(value, str):
            raise _Refused(f"The {field} must be text.")
    if changes.get("visibility", permissions.PUBLIC) not in permissions.VISIBILITIES:
        raise _Refused(f"The visibility must be one of {', '.join(permissions.VISIBILITIES)}.")
    return changes


async def delete(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    await master_for(request).delete(name)
    user = request[VISITOR].user
    log.info("deleted %r at the request of %s", name, user.name if user else "an anonymous visitor")
    return web.json_response({"deleted": name})
