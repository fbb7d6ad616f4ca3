"""Operator routes: cluster status as JSON, Prometheus metrics, orphan purge; admins only.

Theory of operation
-------------------
The status report and the metrics name internal addresses and capacities, and a purge
deletes data: each handler first requires an admin (401 for an anonymous visitor, 403
for anyone else), then asks the master, acting for that admin (the master checks again),
and renders the answer. /metrics also answers when the master is down, reporting it as
not up. A scraper that cannot sign in can read /metrics from a separate loopback-only
port instead (`--metrics-port`, see main.py), where nothing else is served. That port
answers only loopback Host names (auth.guard_host): a page elsewhere that makes its own
name resolve to 127.0.0.1 (DNS rebinding) would otherwise read it from any browser
running on the host.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from myyoutube import permissions
from myyoutube.client import RequestFailed
from myyoutube.web import auth
from myyoutube.web.common import CONFIG, MASTER, METRICS, VISITOR, WebConfig, master_for


def require_admin(request: web.Request) -> None:
    user = request[VISITOR].user
    if user is None:
        raise web.HTTPUnauthorized(text="Sign in as an admin to see this.")
    if not permissions.may_admin(user):
        raise web.HTTPForbidden(text="Only an admin may see or change the cluster.")


async def api_status(request: web.Request) -> web.Response:
    require_admin(request)
    return web.json_response(await master_for(request).status())


async def purge_orphans(request: web.Request) -> web.Response:
    require_admin(request)
    return web.json_response({"purged": await master_for(request).purge_orphans()})


async def prometheus(request: web.Request) -> web.Response:
    require_admin(request)
    return await metrics_response(request, master_for(request))


async def metrics_response(request: web.Request, master) -> web.Response:
    """The metrics text, with the master's report fetched by `master` (an admin's client)."""
    try:
        report = await master.status()
    except (OSError, TimeoutError, RequestFailed):
        report = None  # reported as myyoutube_up{role="master"} 0
    local = master.direct.local if master.direct is not None else None
    return web.Response(
        body=request.app[METRICS].render(report, local), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


def metrics_only_app(master, metrics_app: web.Application) -> web.Application:
    """The loopback-only app for `--metrics-port`: /metrics and nothing else, asking the
    master as the admin account (whoever reaches loopback is trusted with the numbers).
    Its Host names are learnt once its port is known; until then it answers none."""
    app = web.Application(middlewares=[auth.guard_host])
    app[CONFIG] = WebConfig()
    app[MASTER] = master.as_user(permissions.ADMIN_USER)
    app[METRICS] = metrics_app[METRICS]

    async def scrape(request: web.Request) -> web.Response:
        return await metrics_response(request, request.app[MASTER])

    app.router.add_get("/metrics", scrape)
    return app
