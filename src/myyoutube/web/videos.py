"""The video catalogue over HTTP: list, search, delete.

Theory of operation
-------------------
Each handler asks the master one question over the cluster protocol and answers JSON;
a refusal from the master becomes its status code in server.py's error middleware.
"""

from __future__ import annotations

from aiohttp import web

from myyoutube import names
from myyoutube.web.common import MASTER, error

# Search terms are names or parts of names; names are at most 255 bytes.
MAX_QUERY_CHARS = names.MAX_NAME_BYTES


async def listar(request: web.Request) -> web.Response:
    return web.json_response({"videos": await request.app[MASTER].list("")})


async def search(request: web.Request) -> web.Response:
    query = request.query.get("q", "")
    if len(query) > MAX_QUERY_CHARS:
        return error(400, f"The search text is longer than {MAX_QUERY_CHARS} characters.")
    return web.json_response({"videos": await request.app[MASTER].list(query.strip())})


async def delete(request: web.Request) -> web.Response:
    await request.app[MASTER].delete(request.match_info["name"])
    return web.json_response({"deleted": request.match_info["name"]})
