"""Signing in on the web front end: who made each request, sessions, CSRF, the Host check.

Theory of operation
-------------------
Three middlewares run before every handler, in this order:

* `guard_host` answers 421 to a request whose Host this front end is not known by
  (origin.py: the defence against DNS rebinding).
* `authenticate` finds the visitor: a browser session in the `myyoutube_session` cookie
  (HttpOnly, SameSite=Lax, Path=/; over https Secure and named `__Host-myyoutube_session`,
  see SECURE_SESSION_COOKIE) or an API token in `Authorization:
  Bearer TOKEN`, each checked with the master (WhoIs) on every request, so a logout or a
  password change anywhere ends the session everywhere at once. A stale cookie is
  cleared and the visit goes on anonymously; a bad bearer token is a 401. On a private
  instance an anonymous visitor reaches only the sign-in page and the static files.
  Signed-in answers get `Cache-Control: no-store` unless a handler chose otherwise.
* `forbid_cross_site` refuses state-changing requests (anything but GET/HEAD/OPTIONS) that
  come from another site (origin.py) and, for cookie sessions, those without the session's
  CSRF token (common.csrf_token) in the X-CSRF-Token header or, for a plain HTML form, its
  `csrf_token` field. Pages put the token in `<meta name="csrf-token">`; the scripts send it.
  Bearer-token requests are exempt: no browser adds that header on its own.

Sign-in (`POST /login` from the form, `POST /api/login` for scripts) is throttled per
client address and per account name (throttle.py) before the master is asked, and every
refusal says the same sentence whether the account exists or not. An address the account
signed in from lately is held by its address's throttle only, so strangers' guesses
cannot lock the owner out. `check_typed_password` is that bracket, for every route where
a client types a password (changing one's own password asks for the current one, and
shares the same budget: accounts.py).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import parse_qs, quote

import aiohttp_jinja2
from aiohttp import web

from myyoutube.admission import client_key
from myyoutube.client import RequestFailed
from myyoutube.master.users import API_TOKEN, BROWSER_SESSION, SESSION_IDLE_S
from myyoutube.quietlog import QuietLog
from myyoutube.web import origin, pages
from myyoutube.web.common import (
    ANONYMOUS,
    CONFIG,
    MASTER,
    VISITOR,
    BodyTooLarge,
    Visitor,
    csrf_token,
    error,
    json_value,
    read_body,
    wants_html,
)
from myyoutube.web.throttle import PasswordGuesses, TooSoon

log = logging.getLogger(__name__)
quiet = QuietLog(log)

SESSION_COOKIE = "myyoutube_session"
# Over https the session cookie has the __Host- prefix: a browser keeps such a cookie only
# from this very host (Secure, Path=/, no Domain), so a page on a sibling subdomain
# (blog.example.org beside videos.example.org) cannot plant a session of its own choosing
# ("cookie tossing"): a visitor signed into the planter's account would upload there.
SECURE_SESSION_COOKIE = "__Host-" + SESSION_COOKIE
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# A sign-in body holds a username and a password: users.MAX_PASSWORD_CHARS (1024)
# characters, each up to 12 bytes as JSON escapes it (a character outside the BMP is a
# surrogate pair, "\ud83d\ude00", as Python's json and so the command line send it).
MAX_LOGIN_BODY_BYTES = 16 * 1024
# The largest form a page sends: the account page's three passwords of up to
# users.MAX_PASSWORD_CHARS (1024) characters each, percent-encoded (up to 12 bytes a
# character), and its CSRF token.
MAX_FORM_BODY_BYTES = 40 * 1024
# How the pages' forms arrive (the only body read_form reads).
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
NOT_A_FORM = (
    "Send the sign-in as the sign-in page does (a form, application/x-www-form-urlencoded); "
    "scripts sign in with POST /api/login and JSON."
)
# What an anonymous visitor of a private instance may still reach.
OPEN_PATHS = ("/login", "/api/login")
OPEN_PREFIXES = ("/static/",)

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


# --- where a request comes from ---------------------------------------------------------


def client_address(request: web.Request) -> str:
    """The client as per-client bounds count it (admission.client_key: an IPv6 client by
    its /64): the peer, or behind a trusted proxy the last X-Forwarded-For hop."""
    peer = request.remote or ""
    if peer in request.app[CONFIG].trusted_proxies:
        forwarded = request.headers.get("X-Forwarded-For", "").split(",")[-1].strip()
        return client_key(forwarded or peer)
    return client_key(peer)


def request_scheme(request: web.Request) -> str:
    """'https' over our TLS or a trusted proxy's (X-Forwarded-Proto), else 'http'."""
    if request.app[CONFIG].tls:
        return "https"
    if (request.remote or "") in request.app[CONFIG].trusted_proxies:
        return "https" if request.headers.get("X-Forwarded-Proto", "").lower() == "https" else "http"
    return "http"


@web.middleware
async def guard_host(request: web.Request, handler):
    config = request.app[CONFIG]
    if not origin.host_allowed(
        request.headers.get("Host"), request_scheme(request), config.allowed_hosts, config.any_ip_host_port
    ):
        return error(421, "This server does not answer to that host name.")
    return await handler(request)


# --- who is asking ------------------------------------------------------------------------


async def _visitor(request: web.Request) -> tuple[Visitor, bool]:
    """The visitor, and whether a stale session cookie should be cleared."""
    master = request.app[MASTER]
    authorization = request.headers.get("Authorization", "")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise web.HTTPUnauthorized(text="Send the token as: Authorization: Bearer TOKEN.")
        token = token.strip()
        if _may_be_a_token(token):
            try:
                return Visitor(await master.who_is(token), "bearer", token), False
            except RequestFailed as exc:
                if exc.code != "unauthenticated":
                    raise
        raise web.HTTPUnauthorized(text="The token is not valid any more; sign in again.")
    cookie = request.cookies.get(session_cookie(request), "")
    if not cookie:
        return ANONYMOUS, False
    if not _may_be_a_token(cookie):
        return ANONYMOUS, True
    try:
        return Visitor(await master.who_is(cookie), "cookie", cookie), False
    except RequestFailed as exc:
        if exc.code != "unauthenticated":
            raise
        return ANONYMOUS, True


def session_cookie(request: web.Request) -> str:
    """The session cookie's name for this request's scheme."""
    return SECURE_SESSION_COOKIE if request_scheme(request) == "https" else SESSION_COOKIE


def end_session_cookie(request: web.Request, response: web.StreamResponse) -> None:
    """Have the browser drop its session cookie (a __Host- one only goes with Secure)."""
    response.del_cookie(session_cookie(request), path="/", secure=request_scheme(request) == "https")


def _may_be_a_token(token: str) -> bool:
    """Tokens are hex; one holding anything but printable ASCII (a header's raw bytes
    arrive as surrogates) is none of ours, and could not even be sent to the master to ask."""
    return token.isascii() and token.isprintable()


def _open_to_anonymous(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


@web.middleware
async def authenticate(request: web.Request, handler):
    visitor, stale_cookie = await _visitor(request)
    request[VISITOR] = visitor
    if visitor.user is None and request.app[CONFIG].private and not _open_to_anonymous(request.path):
        if wants_html(request):
            raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
        return error(401, "This MyYoutube is private; sign in first.")
    response = await handler(request)
    if stale_cookie and not response.prepared:
        end_session_cookie(request, response)
    if visitor.user is not None and not response.prepared and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response


# --- cross-site requests ------------------------------------------------------------------


@web.middleware
async def forbid_cross_site(request: web.Request, handler):
    visitor = request[VISITOR]
    if request.method in SAFE_METHODS or visitor.via == "bearer":
        return await handler(request)
    cookie_session = visitor.via == "cookie" or session_cookie(request) in request.cookies
    reason = origin.cross_origin_reason(
        request.headers.get("Origin"),
        request.headers.get("Sec-Fetch-Site"),
        request_scheme(request),
        request.headers.get("Host", ""),
        cookie_session,
        request.app[CONFIG].public_url,
    )
    if reason is None and visitor.via == "cookie" and not await _csrf_token_matches(request, visitor.token):
        reason = "This page is out of date (its security token does not match); reload it and try again."
    if reason is not None:
        quiet.warning(
            "refused %s %s from %s: %s", request.method, request.raw_path, client_address(request), reason
        )
        return error(403, reason)
    return await handler(request)


async def _csrf_token_matches(request: web.Request, session_token: str) -> bool:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.content_type == FORM_CONTENT_TYPE:
        sent = (await read_form(request)).get(CSRF_FIELD, "")
    # A header's raw non-ASCII bytes arrive as surrogates, which no token of ours holds.
    return (
        sent is not None
        and sent.isascii()
        and hmac.compare_digest(sent.encode(), csrf_token(session_token).encode())
    )


async def read_form(request: web.Request) -> dict[str, str]:
    """A small urlencoded form (sign-in, sign-out, a password change), read once and kept
    on the request."""
    if "form" not in request:
        try:
            body = await read_body(request, MAX_FORM_BODY_BYTES)
        except BodyTooLarge:
            raise web.HTTPRequestEntityTooLarge(
                max_size=MAX_FORM_BODY_BYTES, actual_size=request.content_length or 0
            ) from None
        fields = parse_qs(body.decode(errors="replace"), keep_blank_values=True)
        request["form"] = {key: values[0] for key, values in fields.items()}
    return request["form"]


# --- signing in and out -------------------------------------------------------------------


class SignInRefused(Exception):
    def __init__(self, status: int, sentence: str, retry_after_s: int = 0) -> None:
        super().__init__(sentence)
        self.status, self.sentence, self.retry_after_s = status, sentence, retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)} if self.retry_after_s else {}


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
        raise SignInRefused(
            429, f"Too many wrong passwords; try again in {wait.retry_after_s} seconds.", wait.retry_after_s
        ) from None
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


def start_session_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    """Have the browser keep `token`, a browser session, as its session cookie."""
    response.set_cookie(
        session_cookie(request),
        token,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=request_scheme(request) == "https",
        max_age=int(SESSION_IDLE_S),
    )


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
        return error(refusal.status, refusal.sentence, **refusal.headers())
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
