"""Cutting off uploads and streams that move fewer bytes than a minimum rate.

Theory of operation
-------------------
`enforce_rate` watches one transfer while its body moves: a timer fires at the end of
each window (rates.RateWindow) and reads the transfer's running byte count from a
`progress` callable. A window below the minimum resets the connection (nothing left
queued for it in the kernel either), which makes the
handler's pending read or write fail at once, so its slot is freed; the cut is logged
through quietlog (one line per period in a flood). `progress` returning None means the
transfer is over (an upload's body has all arrived): the watch ends there, so time we
spend afterwards (probing, committing) is never held against the client.

Uploads count the bytes that arrived in the request's payload stream; streams count the
bytes `response.write` accepted, which a viewer that does not read stops within a few
socket buffers (connections.py caps SO_SNDBUF).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from aiohttp import web

from myyoutube.quietlog import QuietLog
from myyoutube.rates import MinimumRate, RateWindow
from myyoutube.web.auth import client_address

quiet = QuietLog(logging.getLogger(__name__))

# Defaults of the web's flags. An upload of a video at 1 KiB/s would take days; an
# attacker trickling bytes to hold a slot sends far less. A stream slower than 8 KiB/s
# (64 kbit/s) is below any video's bitrate: a player reading that slowly is not playing.
# A window of 30 s lets a player fill its buffer and pause, and a slow link breathe.
MIN_UPLOAD_BYTES_PER_S = 1024.0
MIN_STREAM_BYTES_PER_S = 8 * 1024.0
RATE_WINDOW_S = 30.0


@contextmanager
def enforce_rate(
    request: web.Request, minimum: MinimumRate, progress: Callable[[], int | None], what: str
) -> Iterator[None]:
    """While the block runs, cut `request`'s connection if `progress()` (a running byte
    count) falls below `minimum` over a window."""
    watch = _RateWatch(request, minimum, progress, what)
    try:
        yield
    finally:
        watch.stop()


class _RateWatch:
    """The timer of one `enforce_rate` block. Its timer handle holds `judge`, which holds
    the watch and so the handle: a reference cycle, which `stop` breaks. Left to the cyclic
    garbage collector (as a closure that re-armed itself was), one per request with the
    request it holds made the web's collections its longest pauses under load."""

    def __init__(
        self, request: web.Request, minimum: MinimumRate, progress: Callable[[], int | None], what: str
    ) -> None:
        self.request, self.minimum, self.progress, self.what = request, minimum, progress, what
        self.loop = asyncio.get_running_loop()
        self.window = RateWindow(minimum, progress() or 0, self.loop.time())
        self.timer: asyncio.TimerHandle | None = self.loop.call_at(self.window.due_at, self.judge)

    def judge(self) -> None:
        self.timer = None
        total = self.progress()
        if total is None:
            return  # the transfer is over: nothing left to watch
        if not self.window.too_slow(total, self.loop.time()):
            self.timer = self.loop.call_at(self.window.due_at, self.judge)
            return
        quiet.warning(
            "cut off a slow %s from %s: %d bytes in %g s, below the minimum of %g bytes/s",
            self.what,
            client_address(self.request),
            self.window.moved_in_window(total),
            self.minimum.window_s,
            self.minimum.bytes_per_s,
        )
        if self.request.transport is not None:
            _reset(self.request.transport)

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def _reset(transport: asyncio.Transport) -> None:
    """Close with a TCP reset: a plain close would leave what is queued in the kernel's
    send buffer to trickle out to the slow client for as long as it likes."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
