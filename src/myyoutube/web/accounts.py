"""Accounts over HTTP: admins manage them; everyone sees and changes their own (/account).

Theory of operation
-------------------
Each handler reads a small JSON body and asks the master, acting for the visitor; the
master decides (only an admin manages accounts; anyone may set their own password) and
its refusals become 401/403/404/409/400 in server.py's error middleware. These routes are
what `myyoutube user ...` speaks.

    GET    /api/users                   -> {"users": [...]}
    POST   /api/users                   {"username", "password", "role"[, "quota_bytes"]} -> 201 {"user"}
    PATCH  /api/users/{name}            {"role"?, "quota_bytes"?} -> {"user"}
    DELETE /api/users/{name}            [{"current_password"}] -> {"removed": name}
    PUT    /api/users/{name}/password   {"password"[, "current_password"]} -> {"changed": name}

Changing one's own password takes the current one (`current_password`): whoever holds a
stolen session or token must not be able to lock the owner out. So does an admin's act
on an admin account (making, changing or removing one, setting another admin's
password; permissions.takes_own_password): the admin's own password goes in the same
field of any of these bodies, and without it the answer is 403 saying so. Each such try
is a typed password like a sign-in, throttled with sign-ins in one budget
(signin.check_typed_password): a wrong one is 403, too many 429 with Retry-After. A
password change ends every session of the account, the one that made it too.

The account page (`GET /account`) shows the signed-in account's name, role, storage used
and quota, and a form to change the password (current, new, new again), which posts to
`POST /account/password` (a plain form with the session's CSRF token: it works without
scripts). A refusal renders the page again with its sentence, the cursor in the field to
fix. The change ends every session of the account, the browser's own too, so on success
the browser is signed in again with a fresh session (the person just proved the
password) and sent back to the page (`/account?changed=1`, so a reload does not post the
form again), which says that every other session was signed out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp_jinja2
from aiohttp import web

from myyoutube.account_messages import KEEP_QUOTA
from myyoutube.client import RequestFailed
from myyoutube.formatting import human_size
from myyoutube.master.users import BROWSER_SESSION, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS
from myyoutube.permissions import MAX_QUOTA_BYTES, User, may_upload
from myyoutube.web.auth import FORM_CONTENT_TYPE, end_session_cookie, read_form, start_session_cookie
from myyoutube.web.common import (
    MASTER,
    VISITOR,
    BodyTooLarge,
    account_of,
    error,
    json_value,
    master_for,
    read_body,
)
from myyoutube.web.pages import VisitorView, visitor_view
from myyoutube.web.signin import SignInRefused, check_typed_password

# Username, role, quota and up to two passwords (a change of one's own: the new and the
# current one) of users.MAX_PASSWORD_CHARS (1024) characters, each up to 12 bytes as JSON
# escapes it (signin.MAX_LOGIN_BODY_BYTES says why).
MAX_ACCOUNT_BODY_BYTES = 32 * 1024
# A wrong current password: the session is fine, the act is not allowed (401 would tell
# the command line its token had expired).
WRONG_CURRENT_PASSWORD_STATUS = 403
BAD_QUOTA = "quota_bytes is a number of bytes, at most 2^63-1 (or null for the default)."
NO_CURRENT_PASSWORD = 'To change your own password, send your current one too ("current_password").'

T = TypeVar("T")

ACCOUNT_PAGE = "/account"
SIGN_IN_FOR_ACCOUNT_PAGE = "/login?next=/account"
# What each role may do, in the words the account page uses.
ROLE_WORDS = {
    "admin": "Admin: manages accounts and the cluster, uploads and watches",
    "uploader": "Uploader: uploads videos and watches",
    "viewer": "Viewer: watches videos",
}
# The account page's sentences.
PASSWORD_CHANGED = (
    "Your password was changed. Every other session of your account (other browsers, the "
    "command line's saved sign-in) was signed out; this browser was signed in again."
)
FORM_NOT_A_FORM = "Send the password change as the account page does (a form)."
TYPE_CURRENT_PASSWORD = "Type your current password."
NEW_PASSWORDS_DIFFER = "The two new passwords differ; type the same new password twice."


def setup(app: web.Application) -> None:
    app.router.add_get(ACCOUNT_PAGE, account_page)
    app.router.add_post(ACCOUNT_PAGE + "/password", password_form)
    app.router.add_get("/api/users", list_users)
    app.router.add_post("/api/users", add_user)
    app.router.add_delete("/api/users/{name}", remove_user)
    app.router.add_patch("/api/users/{name}", update_user)
    app.router.add_put("/api/users/{name}/password", set_password)


class _BadBody(Exception):
    pass


async def _fields(request: web.Request, required: tuple[str, ...]) -> dict:
    """The JSON object of the body, with each `required` field a string."""
    try:
        fields = json_value(await read_body(request, MAX_ACCOUNT_BODY_BYTES))
    except BodyTooLarge:
        raise web.HTTPRequestEntityTooLarge(
            max_size=MAX_ACCOUNT_BODY_BYTES,
            actual_size=request.content_length or 0,
            text=f"An account request is at most {MAX_ACCOUNT_BODY_BYTES // 1024} KiB; this one is larger.",
        ) from None
    except ValueError:
        fields = None
    if not isinstance(fields, dict) or not all(isinstance(fields.get(name), str) for name in required):
        raise _BadBody("Send a JSON object with " + ", ".join(f'"{name}"' for name in required) + ".")
    return fields


def _quota_field(fields: dict, absent: int) -> int:
    """The "quota_bytes" field: `absent` when it is not given, -1 (the default quota) for
    null, else a whole number of bytes from -1 to MAX_QUOTA_BYTES (_BadBody otherwise)."""
    if "quota_bytes" not in fields:
        return absent
    quota = -1 if fields["quota_bytes"] is None else fields["quota_bytes"]  # -1: the default
    if not isinstance(quota, int) or isinstance(quota, bool) or not -1 <= quota <= MAX_QUOTA_BYTES:
        raise _BadBody(BAD_QUOTA)
    return quota


async def list_users(request: web.Request) -> web.Response:
    return web.json_response({"users": await master_for(request).list_users()})


def _own_password_field(fields: dict) -> str:
    """The asker's own password ("current_password"), '' when not given."""
    current = fields.get("current_password", "")
    if not isinstance(current, str):
        raise _BadBody('"current_password" is a string.')
    return current


async def _with_own_password(request: web.Request, current: str, act: Callable[[str], Awaitable[T]]) -> T:
    """`act(current)`: an act on an account, with the asker's own password if one was
    given. A given one is tried as a sign-in is, throttled in the asker's budget
    (SignInRefused: wrong, or too many tries); the master says whether the act needed it."""
    asker = account_of(request)
    if not current or asker is None:
        return await act(current)
    return await check_typed_password(request, asker, lambda: act(current), WRONG_CURRENT_PASSWORD_STATUS)


async def add_user(request: web.Request) -> web.Response:
    try:
        fields = await _fields(request, ("username", "password", "role"))
        quota = _quota_field(fields, absent=-1)
        current = _own_password_field(fields)
    except _BadBody as exc:
        return error(400, str(exc))
    master = master_for(request)
    try:
        user = await _with_own_password(
            request,
            current,
            lambda typed: master.add_user(
                fields["username"], fields["password"], fields["role"], quota, typed
            ),
        )
    except SignInRefused as refusal:
        return refusal.answer()
    return web.json_response({"user": user}, status=201)


async def remove_user(request: web.Request) -> web.Response:
    """DELETE /api/users/NAME, with a body {"current_password"} when NAME is an admin."""
    name, master = request.match_info["name"], master_for(request)
    try:
        current = _own_password_field(await _fields(request, ())) if request.body_exists else ""
    except _BadBody:
        return error(400, 'Send no body, or {"current_password": "..."} to remove an admin account.')
    try:
        await _with_own_password(request, current, lambda typed: master.remove_user(name, typed))
    except SignInRefused as refusal:
        return refusal.answer()
    return web.json_response({"removed": name})


async def update_user(request: web.Request) -> web.Response:
    """PATCH /api/users/NAME {"role"?: ROLE, "quota_bytes"?: N or null for the default}:
    the fields given change, the others stay."""
    try:
        fields = await _fields(request, ())
    except _BadBody as exc:
        return error(400, str(exc))
    unknown = sorted(set(fields) - {"role", "quota_bytes", "current_password"})
    if unknown or not set(fields) & {"role", "quota_bytes"}:
        return error(400, 'Send a JSON object with "role", "quota_bytes" or both.')
    role = fields.get("role", "")
    if not isinstance(role, str) or ("role" in fields and not role):
        return error(400, '"role" is admin, uploader or viewer.')
    try:
        quota = _quota_field(fields, absent=KEEP_QUOTA)
        current = _own_password_field(fields)
    except _BadBody as exc:
        return error(400, str(exc))
    name, master = request.match_info["name"], master_for(request)
    try:
        user = await _with_own_password(
            request, current, lambda typed: master.update_user(name, role, quota, typed)
        )
    except SignInRefused as refusal:
        return refusal.answer()
    return web.json_response({"user": user})


async def set_password(request: web.Request) -> web.Response:
    try:
        fields = await _fields(request, ("password",))
    except _BadBody as exc:
        return error(400, str(exc))
    try:
        current = _own_password_field(fields)
    except _BadBody as exc:
        return error(400, str(exc))
    name, master = request.match_info["name"], master_for(request)
    own = name == account_of(request)
    if own and not current:
        return error(400, NO_CURRENT_PASSWORD)
    try:
        if own:
            await change_own_password(request, fields["password"], current)
        else:
            await _with_own_password(
                request, current, lambda typed: master.set_password(name, fields["password"], typed)
            )
    except SignInRefused as refusal:
        return refusal.answer()
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


# --- the account page -------------------------------------------------------------------


def storage_text(used_bytes: int, quota_bytes: int | None) -> str:
    """How much the account stores, against its quota: "1.5 MiB of 10.0 GiB (0%)"."""
    if quota_bytes is None:
        return f"{human_size(used_bytes)} (no quota)"
    if quota_bytes == 0:
        return f"{human_size(used_bytes)} of 0 B (it may store nothing)"
    percent = min(100, int(100 * used_bytes / quota_bytes))
    return f"{human_size(used_bytes)} of {human_size(quota_bytes)} ({percent}%)"


def account_context(
    user: User, visitor: VisitorView, message: str = "", changed: bool = False, focus: str = ""
) -> dict[str, Any]:
    """The account page of `user`; `message` says how the last password change went
    (`changed` if it worked), `focus` names the field to fix ("current" or "new")."""
    return {
        "visitor": visitor,
        "name": user.name,
        "role": ROLE_WORDS.get(user.role, user.role),
        # A viewer stores nothing and may not: a quota there reads as room it does not have.
        "storage": storage_text(user.used_bytes, user.quota_bytes) if may_upload(user) else "",
        "message": message,
        "changed": changed,
        "focus": focus,
        "min_password_chars": MIN_PASSWORD_CHARS,
        "max_password_chars": MAX_PASSWORD_CHARS,
    }


def form_problem(form: dict[str, str]) -> tuple[str, str] | None:
    """What is wrong with a password-change form before the master is asked: (sentence,
    field to fix), or None."""
    if not form.get("current_password"):
        return TYPE_CURRENT_PASSWORD, "current"
    if form.get("new_password", "") != form.get("new_password_again", ""):
        return NEW_PASSWORDS_DIFFER, "new"
    return None


async def account_page(request: web.Request) -> web.Response:
    user = request[VISITOR].user
    if user is None:
        raise web.HTTPSeeOther(SIGN_IN_FOR_ACCOUNT_PAGE)
    changed = request.query.get("changed") == "1"
    context = account_context(
        user, visitor_view(request[VISITOR], request.path_qs), PASSWORD_CHANGED if changed else "", changed
    )
    return aiohttp_jinja2.render_template("account.html", request, context)


async def password_form(request: web.Request) -> web.StreamResponse:
    """POST /account/password from the account page's form."""
    user = request[VISITOR].user
    if user is None:  # the session ended meanwhile (signed out elsewhere, expired)
        raise web.HTTPSeeOther(SIGN_IN_FOR_ACCOUNT_PAGE)
    form = await read_form(request) if request.content_type == FORM_CONTENT_TYPE else {}
    problem = (FORM_NOT_A_FORM, "current") if not form else form_problem(form)
    if problem is not None:
        return _page_refusing(request, user, problem[0], 400, problem[1])
    new_password = form.get("new_password", "")
    try:
        await change_own_password(request, new_password, form["current_password"])
    except SignInRefused as refusal:  # a wrong current password, or too many of them
        return _page_refusing(request, user, refusal.sentence, refusal.status, "current", refusal.headers())
    except RequestFailed as exc:
        if exc.code != "bad_request":
            raise
        return _page_refusing(request, user, exc.message, 400, "new")  # too short, too long
    return await _signed_in_again(request, user.name, new_password)


def _page_refusing(
    request: web.Request, user: User, sentence: str, status: int, focus: str, headers: dict | None = None
) -> web.Response:
    """The account page again, saying why the password was not changed."""
    context = account_context(user, visitor_view(request[VISITOR]), sentence, focus=focus)
    response = aiohttp_jinja2.render_template("account.html", request, context, status=status)
    response.headers.update(headers or {})
    return response


async def _signed_in_again(request: web.Request, name: str, password: str) -> web.StreamResponse:
    """After one's own password change, which ended this browser's session with every
    other: a fresh session with the new password, back on the account page."""
    try:
        token, _ = await request.app[MASTER].login(name, password, BROWSER_SESSION)
    except RequestFailed:  # changed, but no new session: the person signs in by hand
        response = web.HTTPSeeOther(SIGN_IN_FOR_ACCOUNT_PAGE)
        end_session_cookie(request, response)
        return response
    response = web.HTTPSeeOther(ACCOUNT_PAGE + "?changed=1")
    start_session_cookie(request, response, token)
    return response
