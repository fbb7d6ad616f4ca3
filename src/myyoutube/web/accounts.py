"""User management over HTTP, for admins: list, add, remove, set a password.

Theory of operation
-------------------
Each handler reads a small JSON body and asks the master, acting for the visitor; the
master decides (only an admin manages accounts; anyone may set their own password) and
its refusals become 401/403/404/409/400 in server.py's error middleware. These routes are
what `myyoutube user ...` speaks.

    GET    /api/users                   -> {"users": [...]}
    POST   /api/users                   {"username", "password", "role"[, "quota_bytes"]} -> 201 {"user"}
    DELETE /api/users/{name}            -> {"removed": name}
    PUT    /api/users/{name}/password   {"password"} -> {"changed": name}
"""

from __future__ import annotations

from aiohttp import web

from myyoutube.permissions import MAX_QUOTA_BYTES
from myyoutube.web.common import BodyTooLarge, error, json_value, master_for, read_body

# Username, password, role and quota: a few hundred bytes at most.
MAX_ACCOUNT_BODY_BYTES = 4 * 1024


def setup(app: web.Application) -> None:
    app.router.add_get("/api/users", list_users)
    app.router.add_post("/api/users", add_user)
    app.router.add_delete("/api/users/{name}", remove_user)
    app.router.add_put("/api/users/{name}/password", set_password)


class _BadBody(Exception):
    pass


async def _fields(request: web.Request, required: tuple[str, ...]) -> dict:
    """The JSON object of the body, with each `required` field a string."""
    try:
        fields = json_value(await read_body(request, MAX_ACCOUNT_BODY_BYTES))
    except (BodyTooLarge, ValueError):
        fields = None
    if not isinstance(fields, dict) or not all(isinstance(fields.get(name), str) for name in required):
        raise _BadBody("Send a JSON object with " + ", ".join(f'"{name}"' for name in required) + ".")
    return fields


async def list_users(request: web.Request) -> web.Response:
    return web.json_response({"users": await master_for(request).list_users()})


async def add_user(request: web.Request) -> web.Response:
    try:
        fields = await _fields(request, ("username", "password", "role"))
    except _BadBody as exc:
        return error(400, str(exc))
    quota = fields.get("quota_bytes", -1)
    if quota is None:
        quota = -1
    if not isinstance(quota, int) or isinstance(quota, bool) or not -1 <= quota <= MAX_QUOTA_BYTES:
        return error(400, "quota_bytes is a number of bytes, at most 2^63-1 (or null for the default).")
    user = await master_for(request).add_user(fields["username"], fields["password"], fields["role"], quota)
    return web.json_response({"user": user}, status=201)


async def remove_user(request: web.Request) -> web.Response:
    await master_for(request).remove_user(request.match_info["name"])
    return web.json_response({"removed": request.match_info["name"]})


async def set_password(request: web.Request) -> web.Response:
    try:
        fields = await _fields(request, ("password",))
    except _BadBody as exc:
        return error(400, str(exc))
    await master_for(request).set_password(request.match_info["name"], fields["password"])
    return web.json_response({"changed": request.match_info["name"]})
