"""Guards around aiohttp's connection handler: who may connect, and a header-read deadline.

Theory of operation
-------------------
aiohttp has no header-read timeout: a client that sends a request line and then one
header byte every few seconds holds its connection for as long as it likes (slowloris),
and enough of them exhaust the process's file descriptors. Go's answer is
ReadHeaderTimeout (~10 s); this module does the same. Each connection's protocol is
wrapped: a timer starts when the connection opens, and again when the first bytes of a
later request arrive on an idle keep-alive connection; it stops as soon as aiohttp has
parsed a complete request head. A client still sending headers when it fires is cut off
(and counted; logged through quietlog, so a flood makes one line per period). Bodies are not covered here: uploads
and streams have their own idle deadlines.

Before any of that, a new connection must pass the `ConnectionGate`: at most
`--max-connections-per-client` open connections per client address (a trusted reverse
proxy's are exempt: every visitor arrives from its address), and never one that leaves
fewer free file descriptors than admission.fd_headroom. A refused connection is closed
at once, before aiohttp sees it, and the refusals are logged one line per period.

A request aiohttp's parser refuses before any handler runs (a request line or header
past 8 KiB, bytes that are not HTTP, a malformed header, a body longer than its
Content-Length) is answered by the connection's `handle_error`, which aiohttp writes as
text/plain echoing the offending bytes back (200 KB of them, seen here) and logs with a
traceback at ERROR. Each connection's handler answers JSON `{"error": ...}` instead, with
the same status, and such refusals are logged one line per period.

The wrapper reads two attributes of aiohttp's RequestHandler (`_request_count`,
`_current_request`) and overrides its `handle_error`; tests/test_connections.py pins the
behaviour on the installed aiohttp.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from contextlib import suppress
from typing import cast

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, LineTooLong

from myyoutube.admission import Admission, client_key, fd_headroom, near_file_limit
from myyoutube.formatting import counted
from myyoutube.links import SOCKET_BUFFER_BYTES
from myyoutube.quietlog import QuietLog
from myyoutube.web.common import SECURITY_HEADERS

log = logging.getLogger(__name__)
quiet = QuietLog(log)

# Go's net/http users settle on ~10 s: ample for any real client on a slow link.
HEADER_TIMEOUT_S = 10.0


class HeaderDeadlines:
    """Wraps each connection's aiohttp handler with a header-read deadline."""

    def __init__(self, timeout_s: float = HEADER_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self.cut_off = 0

    def expired(self, transport: asyncio.Transport) -> None:
        self.cut_off += 1
        transport.abort()
        quiet.warning(
            "cut off a connection that did not send its request headers within %g s", self.timeout_s
        )


class ConnectionGate:
    """Admits new connections: per client address, and only with file descriptors to spare."""

    def __init__(self, per_client: int, exempt: frozenset[str], file_limit: int) -> None:
        self.places = Admission(total=None, per_ip=per_client)
        self.exempt, self.file_limit = exempt, file_limit
        self.refused = 0

    def admit(self, transport: asyncio.BaseTransport) -> str | None:
        """The peer's address if the connection may proceed (release it when it ends),
        else None: the caller closes it."""
        peer = transport.get_extra_info("peername")
        ip = str(peer[0]) if peer else ""
        sock = transport.get_extra_info("socket")
        if sock is not None and near_file_limit(sock.fileno(), self.file_limit):
            reason = f"fewer than {fd_headroom(self.file_limit)} of {self.file_limit} open files left"
        elif ip not in self.exempt and not self.places.admit(client_key(ip)):
            reason = f"more than {counted(self.places.per_ip, 'connection')} from one address"
        else:
            return ip
        self.refused += 1
        quiet.warning("refused a connection from %s: %s", ip, reason, key=reason)
        return None

    def release(self, ip: str) -> None:
        if ip not in self.exempt:
            self.places.release(client_key(ip))


class GuardedSite(web.TCPSite):
    """aiohttp's TCPSite, with every connection through a gate and under a header-read
    deadline."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        deadlines: HeaderDeadlines,
        gate: ConnectionGate,
        **kwargs,
    ) -> None:
        super().__init__(runner, host, port, **kwargs)
        self._deadlines, self._gate = deadlines, gate

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None, "the runner is set up before its sites start"
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Guarded(_answering_in_json(server()), self._deadlines, self._gate),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )


class _Guarded(asyncio.Protocol):
    def __init__(self, inner, deadlines: HeaderDeadlines, gate: ConnectionGate) -> None:
        self._inner = inner
        self._deadlines, self._gate = deadlines, gate
        self._ip: str | None = None  # set once the gate admitted the connection
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None
        self._requests_seen = 0

    def _arm(self) -> None:
        if self._timer is None and self._transport is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._deadlines.timeout_s, self._fire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        if self._transport is not None:
            self._deadlines.expired(self._transport)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP transport (uvloop's is not an asyncio.Transport subclass, but has abort()).
        self._ip = self._gate.admit(transport)
        if self._ip is None:
            cast(asyncio.Transport, transport).abort()
            return
        self._transport = cast(asyncio.Transport, transport)
        _cap_send_buffer(transport)
        self._arm()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._ip is None:
            return  # refused: aiohttp never saw this connection
        self._inner.data_received(data)
        requests = getattr(self._inner, "_request_count", 0)
        busy = getattr(self._inner, "_current_request", None) is not None or getattr(
            self._inner, "_messages", None
        )
        if requests != self._requests_seen or busy:  # a head was parsed, or a request runs
            self._requests_seen = requests
            self._disarm()
        else:
            self._arm()  # the first bytes of a new request on an idle connection

    def eof_received(self) -> bool | None:
        return None if self._ip is None else self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._ip is None:
            return
        self._gate.release(self._ip)
        self._disarm()
        self._transport = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._ip is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._ip is not None:
            self._inner.resume_writing()


def _cap_send_buffer(transport: asyncio.BaseTransport) -> None:
    """The same cap as inside the cluster (see links.SOCKET_BUFFER_BYTES): a paused player
    must not pull megabytes ahead into its socket's kernel buffer. Once per connection, not
    per response: a player asks a range every few seconds on the same connection."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with suppress(OSError):  # a connection already reset by its client
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)


class _JsonErrorHandler(web.RequestHandler):
    """aiohttp's connection handler, answering the requests its parser refuses in JSON
    (see the module docstring); nothing else differs, not even the slots."""

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp: a response is on its way already
            raise ConnectionError("a response was sent already; the connection is dropped")
        if status >= 500:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
        else:
            kind = type(exc).__name__ if exc is not None else str(status)
            quiet.info("refused a malformed request from %s: %s", request.remote, kind, key=kind)
        response = web.json_response({"error": protocol_error_sentence(status, exc)}, status=status)
        response.headers.update(SECURITY_HEADERS)
        response.force_close()
        return response


def _answering_in_json(handler: web.RequestHandler) -> web.RequestHandler:
    """`handler` (made by aiohttp with the runner's settings) as a _JsonErrorHandler: the
    subclass adds no state, so the object only changes class."""
    handler.__class__ = _JsonErrorHandler
    return handler


def protocol_error_sentence(status: int, exc: BaseException | None) -> str:
    """What to tell a client whose request aiohttp refused before our handlers saw it."""
    if isinstance(exc, LineTooLong):
        return "A line of the request (its address or one of its headers) is longer than 8 KiB."
    if isinstance(exc, BadHttpMethod):
        return "This is not an HTTP request this server understands."
    if status < 500:  # aiohttp refuses every malformed request with 400
        return "The request is not well-formed HTTP/1.1; it was refused before it was read."
    return "Something went wrong on our side; it has been logged."
