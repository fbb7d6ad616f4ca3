"""What every route module of the web front end shares: app keys, JSON errors, slots.

Theory of operation
-------------------
`server.py` builds the application and stores the shared objects under the typed app
keys below; each route module (pages, videos, streaming, uploads, admin) reads them from
`request.app`. Errors a user sees are JSON `{"error": "<sentence>"}` made by `error()`.
`Slots` bounds how many requests of one kind run at once, in all and per client address:
past the bound the answer is 503 with Retry-After, never a queue.

Each request carries its `Visitor` (who signed it in, and how) under the VISITOR key, set
by auth.py's middleware before any handler runs; `master_for(request)` is the master
client acting for that visitor, so the master checks the same account's rights again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web

from myyoutube.client import MasterClient
from myyoutube.permissions import User
from myyoutube.web import metrics

# media-src allows blob: because hls.js plays through Media Source Extensions, which hand
# the <video> an object URL (blob:) for the MediaSource it fills from /hls/ segments.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; style-src 'self'; "
        "script-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    # aiohttp's own would name the Python and aiohttp versions: which published bugs to try.
    "Server": "MyYoutube",
}


@dataclass(frozen=True)
class Visitor:
    """Who made a request: `user` None for anonymous; `via` is how they signed in
    ('cookie', 'bearer' or '' for nobody) and `token` the session or API token."""

    user: User | None = None
    via: str = ""
    token: str = ""


ANONYMOUS = Visitor()


@dataclass
class WebConfig:
    """How this front end is exposed: set from its flags, and `allowed_hosts` once it
    knows the port it listens on."""

    private: bool = False
    public_url: str | None = None
    tls: bool = False
    trusted_proxies: frozenset[str] = frozenset()
    allowed_hosts: frozenset[str] = frozenset()
    any_ip_host_port: int | None = None  # bound to a wildcard address: any IP literal on this port


MASTER = web.AppKey("master", MasterClient)
LIMITS = web.AppKey("limits", dict)
METRICS = web.AppKey("metrics", metrics.WebMetrics)
CONFIG = web.AppKey("config", WebConfig)
VISITOR = web.RequestKey("visitor", Visitor)


def master_for(request: web.Request) -> MasterClient:
    """The master client acting for whoever made `request`."""
    return request.app[MASTER].as_user(request[VISITOR].user)


def error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def wants_html(request: web.Request) -> bool:
    """A browser navigating (a person reads the answer), not a script asking for JSON."""
    return request.method in ("GET", "HEAD") and "text/html" in request.headers.get("Accept", "")


def csrf_token(session_token: str) -> str:
    """The CSRF token of a browser session: derived from the session token (which is
    HttpOnly, so no script can read it) by a hash no one can invert to get the session."""
    return hashlib.sha256(b"myyoutube csrf\0" + session_token.encode()).hexdigest()


# The small bodies read whole (a sign-in, an edit, an account: a few KB at most) arrive
# with their headers from any real client. One still arriving after this long is a client
# holding the connection and its handler open (slowloris past the header deadline,
# connections.py), as long as it likes: the same bound as the headers get.
SMALL_BODY_TIMEOUT_S = 10.0

# Upload bytes the web keeps on its own disk (a plain upload's spool file, a resumable
# upload's local copy) are written by a bulk thread in batches this large, two at most
# held per file: a thread hop per chunk, awaited before the chunk went on to the master,
# put every wait for the disk in the upload's path and cost it half its time
# (batched_writes.py).
SPOOL_BATCH_BYTES = 2 * 1024 * 1024


T = TypeVar("T")


class LocalDiskFailed(Exception):
    """The web's own disk refused an upload's spool file (full, read-only, failing): an
    OSError like a lost master link, but not the cluster's trouble, and said so."""


async def on_local_disk(step: Awaitable[T]) -> T:
    """`step`, a file operation on the web's own disk: its OSError becomes LocalDiskFailed."""
    try:
        return await step
    except OSError as exc:
        raise LocalDiskFailed(exc.strerror or str(exc)) from exc


class BodyTooLarge(Exception):
    pass


def json_value(body: bytes) -> object:
    """The JSON value of a request body; ValueError if it is not JSON, or not text the
    cluster can carry: JSON's escapes allow a lone surrogate ("\\ud800"), which no UTF-8
    encoder takes, so a title or password holding one would fail on its way to the master."""
    try:
        value = json.loads(body.decode())
        json.dumps(value, ensure_ascii=False).encode()
    except (UnicodeError, RecursionError) as exc:
        raise ValueError(str(exc)) from exc
    return value


async def read_body(request: web.Request, max_bytes: int) -> bytes:
    """The whole request body; BodyTooLarge past `max_bytes`, without reading further;
    408 if it takes longer than SMALL_BODY_TIMEOUT_S to arrive."""
    if (request.content_length or 0) > max_bytes:
        raise BodyTooLarge(max_bytes)
    body = b""
    try:
        async with asyncio.timeout(SMALL_BODY_TIMEOUT_S):
            while len(body) <= max_bytes and (more := await request.content.read(max_bytes + 1 - len(body))):
                body += more
    except TimeoutError:
        raise web.HTTPRequestTimeout(
            text="The request's body did not arrive in time; send it again."
        ) from None
    if len(body) > max_bytes:
        raise BodyTooLarge(max_bytes)
    return body


def account_of(request: web.Request) -> str | None:
    """The signed-in visitor's account name, or None for an anonymous one."""
    user = request[VISITOR].user
    return user.name if user is not None else None


class Slots:
    """A bounded count of requests of one kind, in all and per client (None: no per-client
    bound); past either bound, 503 rather than a queue. A client is its address, and for
    uploads also its account, each held to the per-client bound: an account uploading
    from several hosts cannot take every slot either."""

    def __init__(self, limit: int, what: str, per_client: int | None = None) -> None:
        self.limit, self.what, self.used = limit, what, 0
        self.per_client = per_client
        self.by_client: dict[tuple[str, str], int] = {}  # ("address" or "account", key) -> held

    @contextmanager
    def take(self, client: str = "", account: str | None = None):
        keys = [("address", client)] + ([("account", account)] if account is not None else [])
        full = None
        if self.per_client is not None:
            full = next((key[0] for key in keys if self._held(key) >= self.per_client), None)
        if self.used >= self.limit or full is not None:
            where = {"address": " from your address", "account": " for your account"}
            raise web.HTTPServiceUnavailable(
                text=json.dumps(
                    {
                        "error": f"Too many {self.what} at once"
                        + (where.get(full or "", "") if self.used < self.limit else "")
                        + "; try again in a few seconds."
                    }
                ),
                content_type="application/json",
                headers={"Retry-After": "5"},
            )
        self.used += 1
        for key in keys:
            self.by_client[key] = self._held(key) + 1
        try:
            yield
        finally:
            self.used -= 1
            for key in keys:
                self.by_client[key] -= 1
                if not self.by_client[key]:
                    del self.by_client[key]

    def _held(self, key: tuple[str, str]) -> int:
        return self.by_client.get(key, 0)
