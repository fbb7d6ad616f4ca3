"""GET /api/admin/backup: a consistent copy of the master's index, for an admin.

Theory of operation
-------------------
`myyoutube admin backup FILE` downloads this. The web front end requires an admin (as
admin.py does), asks the master for the copy on the admin's behalf (BackupIndex; the
master checks again) and relays it chunk by chunk, so memory stays at one chunk
whatever the index's size. The first chunk is awaited before the response starts, so a
refusal is still an HTTP error with a sentence; a copy cut short later aborts the
connection, which the client sees as a short, failed download (never as a second HTTP
response written into the body, which is what an error answered after the headers would be). `myyoutube-master
--restore FILE` starts a master from the file.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from myyoutube.web.admin import require_admin
from myyoutube.web.common import SECURITY_HEADERS, master_for

log = logging.getLogger(__name__)


async def backup(request: web.Request) -> web.StreamResponse:
    require_admin(request)
    chunks = master_for(request).backup_index()
    first = await anext(chunks)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/vnd.sqlite3",
            "Content-Disposition": f'attachment; filename="myyoutube-index-{stamp}.sqlite3"',
            "Cache-Control": "no-store",
            # Sent before the error middleware could add them to a prepared response.
            **SECURITY_HEADERS,
        }
    )
    await response.prepare(request)
    try:
        await response.write(first)
        async for piece in chunks:
            await response.write(piece)
        await response.write_eof()
    except Exception as exc:
        if request.transport is not None:
            request.transport.abort()
        log.warning("index backup cut after its headers: %s: %s", type(exc).__name__, exc)
    return response


def setup(app: web.Application) -> None:
    app.router.add_get("/api/admin/backup", backup)
