"""Operator routes: cluster status as JSON, Prometheus metrics, orphan purge.

Theory of operation
-------------------
Each handler asks the master for its report (or to act) and renders it; /metrics also
answers when the master is down, reporting it as not up.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from myyoutube.client import RequestFailed
from myyoutube.web.common import MASTER, METRICS


async def api_status(request: web.Request) -> web.Response:
    return web.json_response(await request.app[MASTER].status())


async def purge_orphans(request: web.Request) -> web.Response:
    return web.json_response({"purged": await request.app[MASTER].purge_orphans()})


async def prometheus(request: web.Request) -> web.Response:
    try:
        report = await request.app[MASTER].status()
    except (OSError, TimeoutError, RequestFailed):
        report = None  # reported as myyoutube_up{role="master"} 0
    return web.Response(
        body=request.app[METRICS].render(report), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )
