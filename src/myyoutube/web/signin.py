"""Signing in and out on the web front end: the sign-in page and form, the API's token
sign-in, sign-out, and who is signed in.

Theory of operation
-------------------
Sign-in (`POST /login` from the form, `POST /api/login` for scripts) is throttled per
client address and per account name (throttle.py) before the master is asked, and every
refusal says the same sentence whether the account exists or not. An address the account
signed in from lately is held by its address's throttle only, so strangers' guesses
cannot lock the owner out. `check_typed_password` is that bracket, for every route where
a client types a password (changing one's own password asks for the current one, and
shares the same budget: accounts.py).
Sessions themselves (the cookie, the bearer token, CSRF) are checked by auth.py's
middlewares on every request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp_jinja2
from aiohttp import web

from myyoutube.client import RequestFailed
from myyoutube.master.users import API_TOKEN, BROWSER_SESSION
from myyoutube.quietlog import QuietLog
from myyoutube.web import pages
from myyoutube.web.auth import (
    FORM_CONTENT_TYPE,
    client_address,
    end_session_cookie,
    read_form,
    start_session_cookie,
)
from myyoutube.web.common import MASTER, VISITOR, BodyTooLarge, error, json_value, read_body
from myyoutube.web.throttle import PasswordGuesses, TooSoon

quiet = QuietLog(logging.getLogger(__name__))

# A sign-in body holds a username and a password: users.MAX_PASSWORD_CHARS (1024)
# characters, each up to 12 bytes as JSON escapes it (a character outside the BMP is a
# surrogate pair, "\ud83d\ude00", as Python's json and so the command line send it).
MAX_LOGIN_BODY_BYTES = 16 * 1024
NOT_A_FORM = (
    "Send the sign-in as the sign-in page does (a form, application/x-www-form-urlencoded); "
    "scripts sign in with POST /api/login and JSON."
)

PASSWORD_GUESSES = web.AppKey("password_guesses", PasswordGuesses)
T = TypeVar("T")


def setup(app: web.Application) -> None:
    app[PASSWORD_GUESSES] = PasswordGuesses()
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_form)
    app.router.add_post("/logout", logout_form)
    app.router.add_post("/api/login", api_login)
    app.router.add_post("/api/logout", api_logout)
    app.router.add_get("/api/me", me)


class SignInRefused(Exception):
    def __init__(self, status: int, sentence: str, retry_after_s: int = 0) -> None:
        super().__init__(sentence)
        self.status, self.sentence, self.retry_after_s = status, sentence, retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)} if self.retry_after_s else {}

    def answer(self) -> web.Response:
        """The refusal as an API answer: its status, sentence and Retry-After."""
        return error(self.status, self.sentence, **self.headers())


async def check_typed_password(
    request: web.Request, account: str, check: Callable[[], Awaitable[T]], refused_status: int = 401
) -> T:
    """What `check` (the master checking a password typed for `account`) answers, throttled
    per client address and per account name like every such check (throttle.PasswordGuesses);
    SignInRefused when throttled (429) or when the master refused the password
    (`refused_status`, with the master's sentence)."""
    guesses = request.app[PASSWORD_GUESSES]
    try:
        guess = guesses.begin(account, client_address(request), time.monotonic())
    except TooSoon as wait:
        raise SignInRefused(429, f"Too many wrong passwords; {wait}.", wait.retry_after_s) from None
    try:
        answer = await check()
    except BaseException as exc:
        if isinstance(exc, RequestFailed) and exc.code == "refused":
            quiet.info("wrong password for %r from %s", account[:64], guess.address)
            raise SignInRefused(refused_status, exc.message) from None
        guesses.not_a_guess(guess)
        raise
    guesses.right(guess, time.monotonic())
    return answer


async def _sign_in(request: web.Request, username: str, password: str, kind: str):
    """(token, user) for a correct password; SignInRefused otherwise (throttled or wrong)."""
    # Account names are lower case: "Admin", as a phone capitalises it, is the same account.
    account = username.strip().lower()
    return await check_typed_password(
        request, account, lambda: request.app[MASTER].login(account, password, kind)
    )


def local_path(target: str) -> str:
    """Where to go after signing in: a path on this site only (never //other.example).

    Browsers read `\\` as `/` and drop every tab and line break from a URL (WHATWG URL
    standard) before resolving it, so `/<TAB>/other.example` would leave the site: any
    control character makes the target the home page."""
    if (
        target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in target)
    ):
        return target
    return "/"


async def login_page(request: web.Request) -> web.Response:
    target = local_path(request.query.get("next", "/"))
    if request[VISITOR].user is not None:
        raise web.HTTPSeeOther(target)
    return aiohttp_jinja2.render_template("login.html", request, pages.login_context(target))


async def login_form(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    target = local_path(form.get("next", "/"))
    try:
        if request.content_type != FORM_CONTENT_TYPE:
            # Not what the sign-in page sends (curl -F sends multipart): its fields cannot
            # be read, and answering "wrong password" would count a failure against them.
            raise SignInRefused(400, NOT_A_FORM)
        token, _ = await _sign_in(
            request, form.get("username", ""), form.get("password", ""), BROWSER_SESSION
        )
    except SignInRefused as refusal:
        context = pages.login_context(target, refusal.sentence, form.get("username", ""))
        response = aiohttp_jinja2.render_template("login.html", request, context, status=refusal.status)
        response.headers.update(refusal.headers())
        return response
    response = web.HTTPSeeOther(target)
    start_session_cookie(request, response, token)
    return response


async def logout_form(request: web.Request) -> web.StreamResponse:
    visitor = request[VISITOR]
    if visitor.token:
        await request.app[MASTER].logout(visitor.token)
    response = web.HTTPSeeOther("/")
    end_session_cookie(request, response)
    return response


async def api_login(request: web.Request) -> web.Response:
    """POST /api/login {"username", "password"} -> {"token", "user"} (an API token)."""
    try:
        fields = _json_object(await read_body(request, MAX_LOGIN_BODY_BYTES))
    except BodyTooLarge:
        return error(413, "A sign-in is a username and a password; this body is far larger.")
    username, password = fields.get("username"), fields.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        return error(400, 'Send {"username": "...", "password": "..."} as JSON.')
    try:
        token, user = await _sign_in(request, username, password, API_TOKEN)
    except SignInRefused as refusal:
        return refusal.answer()
    return web.json_response({"token": token, "user": user.as_dict()})


async def api_logout(request: web.Request) -> web.Response:
    visitor = request[VISITOR]
    if visitor.token:
        await request.app[MASTER].logout(visitor.token)
    response = web.json_response({"signed_out": bool(visitor.token)})
    if visitor.via == "cookie":
        end_session_cookie(request, response)
    return response


async def me(request: web.Request) -> web.Response:
    """GET /api/me: the signed-in account, or null."""
    user = request[VISITOR].user
    return web.json_response({"user": user.as_dict() if user else None})


def _json_object(body: bytes) -> dict:
    try:
        value = json_value(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
