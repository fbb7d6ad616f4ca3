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
    PUT    /api/users/{name}/password   {"password"[, "current_password"]} -> {"changed": name}

Changing one's own password takes the current one (an admin setting another account's
does not): whoever holds a stolen session or token must not be able to lock the owner
out. Each such try is a typed password like a sign-in, throttled with sign-ins in one
budget (auth.check_typed_password): a wrong one is 403, too many 429 with Retry-After.
Every session of the account ends with the change, the one that made it too.
"""

from __future__ import annotations

from aiohttp import web

from myyoutube.permissions import MAX_QUOTA_BYTES
from myyoutube.web.auth import SignInRefused, check_typed_password
from myyoutube.web.common import BodyTooLarge, account_of, error, json_value, master_for, read_body

# Username, passwords, role and quota: a few KB at most (two passwords of
# users.MAX_PASSWORD_CHARS each, JSON-escaped, fit).
MAX_ACCOUNT_BODY_BYTES = 16 * 1024
# A wrong current password: the session is fine, the act is not allowed (401 would tell
# the command line its token had expired).
WRONG_CURRENT_PASSWORD_STATUS = 403
NO_CURRENT_PASSWORD = 'To change your own password, send your current one too ("current_password").'


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
    name, current = request.match_info["name"], fields.get("current_password", "")
    if not isinstance(current, str):
        return error(400, '"current_password" is a string.')
    if name != account_of(request):
        await master_for(request).set_password(name, fields["password"])
    elif not current:
        return error(400, NO_CURRENT_PASSWORD)
    else:
        try:
            await change_own_password(request, fields["password"], current)
        except SignInRefused as refusal:
            return error(refusal.status, refusal.sentence, **refusal.headers())
    return web.json_response({"changed": name})


async def change_own_password(request: web.Request, password: str, current_password: str) -> None:
    """The signed-in visitor's password becomes `password`, if `current_password` is the
    one it has (SignInRefused if not, or if too many were wrong: tried like a sign-in)."""
    name = account_of(request)
    assert name is not None, "only a signed-in visitor has a password of their own"
    master = master_for(request)
    await check_typed_password(
        request,
        name,
        lambda: master.set_password(name, password, current_password),
        WRONG_CURRENT_PASSWORD_STATUS,
    )
