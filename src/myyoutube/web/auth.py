"""Who made each request on the web front end: the Host check, sessions, CSRF.

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

The routes that start and end sessions (sign-in, sign-out) are signin.py's; this module
sets and clears the cookie they hand out.
"""

from __future__ import annotations

import hmac
import logging
from urllib.parse import parse_qs, quote

from aiohttp import web

from myyoutube.admission import client_key
from myyoutube.client import RequestFailed
from myyoutube.master.users import SESSION_IDLE_S
from myyoutube.quietlog import QuietLog
from myyoutube.web import origin
from myyoutube.web.common import (
    ANONYMOUS,
    CONFIG,
    MASTER,
    VISITOR,
    BodyTooLarge,
    Visitor,
    csrf_token,
    error,
    read_body,
    wants_html,
)

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
# The largest form a page sends: the account page's three passwords of up to
# users.MAX_PASSWORD_CHARS (1024) characters each, percent-encoded (up to 12 bytes a
# character), and its CSRF token.
MAX_FORM_BODY_BYTES = 40 * 1024
# How the pages' forms arrive (the only body read_form reads).
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# How long a browser that reached the site over https keeps to https (HSTS): a year, the
# usual choice. Without includeSubDomains: the operator's other hosts are not ours to
# promise https for.
HSTS_MAX_AGE_S = 365 * 24 * 3600
# What an anonymous visitor of a private instance may still reach.
OPEN_PATHS = ("/login", "/api/login")
OPEN_PREFIXES = ("/static/",)


# --- where a request comes from ---------------------------------------------------------


def client_address(request: web.Request) -> str:
    """The client as per-client bounds count it (admission.client_key: an IPv6 client by
    its /64): the peer, or behind a trusted proxy the last X-Forwarded-For hop."""
    peer = request.remote or ""
    if peer in request.app[CONFIG].trusted_proxies:
        return client_key(_last_hop(request, "X-Forwarded-For") or peer)
    return client_key(peer)


def request_scheme(request: web.Request) -> str:
    """'https' over our TLS or a trusted proxy's (X-Forwarded-Proto), else 'http'."""
    if request.app[CONFIG].tls:
        return "https"
    if (request.remote or "") in request.app[CONFIG].trusted_proxies:
        return "https" if _last_hop(request, "X-Forwarded-Proto").lower() == "https" else "http"
    return "http"


async def strict_transport(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every answer over https (ours or a trusted proxy's) tells the
    browser to come back over https only (HSTS), so that an attacker on the network
    cannot serve a later visit typed as http://... or followed from an old link with
    pages of its own. The session cookie is Secure already; the pages were not."""
    if request_scheme(request) == "https":
        response.headers["Strict-Transport-Security"] = f"max-age={HSTS_MAX_AGE_S}"


def _last_hop(request: web.Request, field: str) -> str:
    """The last value of a forwarding field over all its lines: what the trusted proxy
    itself added. Lines of one field are one comma-separated list (RFC 9110, 5.3), and
    some proxies add a line of their own instead of appending to the client's, so the
    first line alone may be whatever the client made up."""
    return ",".join(request.headers.getall(field, ())).split(",")[-1].strip()


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
