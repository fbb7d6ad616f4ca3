"""GET/HEAD /stream/{name} and /thumbnail/{name}: stored bytes relayed by range.

Theory of operation
-------------------
A request asks the pure `ranges.decide` what to answer (status, headers, byte ranges),
then relays exactly those byte ranges from the master, chunk by chunk, each `write`
waiting for the viewer's socket to drain. So memory per request is a few chunks whatever
the video's size, and a slow viewer slows the datanode read rather than filling a buffer.
"""

from __future__ import annotations

import asyncio
import secrets
import socket

from aiohttp import web

from myyoutube import ranges
from myyoutube.stream import SOCKET_BUFFER_BYTES
from myyoutube.web.common import LIMITS, MASTER, METRICS, SECURITY_HEADERS, error

# A paused player stops reading; past this the stream is dropped (the player asks for
# its range again on resume). Shorter than the master's own stall timeout, so the web
# front end is the one that ends the relay, cleanly.
VIEWER_STALL_TIMEOUT_S = 90.0


async def stream(request: web.Request) -> web.StreamResponse:
    video = await request.app[MASTER].stat(request.match_info["name"])
    return await _serve(request, video, "video", video["size"], video["sha256"], video["content_type"])


async def thumbnail(request: web.Request) -> web.StreamResponse:
    """The poster, with the same validators, caching and ranges as the video itself."""
    video = await request.app[MASTER].stat(request.match_info["name"])
    if not video.get("has_thumbnail"):
        return error(404, "This video has no poster.")
    return await _serve(
        request, video, "poster", video["thumbnail_size"], video["thumbnail_sha256"], "image/jpeg"
    )


async def _serve(
    request: web.Request, video: dict, part: str, size: int, sha256: str, content_type: str
) -> web.StreamResponse:
    """Answer GET/HEAD of one stored blob as ranges.decide says, relaying its bytes."""
    validators = ranges.Validators(etag=f'"{sha256}"', last_modified=video["uploaded_at"])
    boundary = secrets.token_hex(16)
    decision = ranges.decide(request.method, request.headers, size, content_type, validators, boundary)
    if not decision.ranges:
        return web.Response(status=decision.status, headers=decision.headers)
    counters = request.app[METRICS]
    viewer = request.transport.get_extra_info("socket") if request.transport else None
    if viewer is not None:
        # The same cap as inside the cluster: a paused player must not pull megabytes
        # ahead into this socket's kernel buffer (see stream.SOCKET_BUFFER_BYTES).
        viewer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)
    async with request.app[LIMITS]["streams"].take():
        with counters.active_streams.track_inprogress():
            response = web.StreamResponse(status=decision.status, headers=decision.headers)
            response.headers.update(SECURITY_HEADERS)
            await response.prepare(request)

            async def send(data: bytes) -> None:
                # A viewer that takes nothing for this long is gone; free the stream slot.
                async with asyncio.timeout(VIEWER_STALL_TIMEOUT_S):
                    await response.write(data)
                counters.stream_bytes.inc(len(data))

            for byte_range in decision.ranges:
                if decision.is_multipart:
                    await send(ranges.multipart_part_header(byte_range, size, content_type, boundary))
                async for data in request.app[MASTER].read(
                    video["name"], byte_range.start, byte_range.length, part=part
                ):
                    await send(data)
            if decision.is_multipart:
                await send(ranges.multipart_closing(boundary))
            await response.write_eof()
            return response
