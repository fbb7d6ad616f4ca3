"""What every route module of the web front end shares: app keys, JSON errors, slots.

Theory of operation
-------------------
`server.py` builds the application and stores the shared objects under the typed app
keys below; each route module (pages, videos, streaming, uploads, admin) reads them from
`request.app`. Errors a user sees are JSON `{"error": "<sentence>"}` made by `error()`.
`Slots` bounds how many requests of one kind run at once: past the bound the answer is
503 with Retry-After, never a queue.
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager

from aiohttp import web

from myyoutube.client import MasterClient
from myyoutube.web import metrics

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; "
        "script-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

MASTER = web.AppKey("master", MasterClient)
LIMITS = web.AppKey("limits", dict)
METRICS = web.AppKey("metrics", metrics.WebMetrics)


def error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


class Slots:
    """A bounded count of requests of one kind; past the bound, 503 rather than a queue."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit, self.what, self.used = limit, what, 0

    @asynccontextmanager
    async def take(self):
        if self.used >= self.limit:
            raise web.HTTPServiceUnavailable(
                text=json.dumps({"error": f"Too many {self.what} at once; try again in a few seconds."}),
                content_type="application/json",
                headers={"Retry-After": "5"},
            )
        self.used += 1
        try:
            yield
        finally:
            self.used -= 1
