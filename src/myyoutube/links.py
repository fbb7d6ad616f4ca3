"""Links between roles: opening and accepting them, who may ask what, and how many.

Theory of operation
-------------------
A role reaches another with `connect`, and listens with `serve_connections`. With a
certificate directory (tls_contexts.py) every link is mutual TLS: both ends present a
certificate of the cluster's CA and the role it names is checked on both sides, so a web
front end asks only a master (and reads from datanodes only the blobs the master granted
it: read_grants.py), and only a master writes to datanodes. Frames
are then encrypted and integrity-protected, not just authenticated at the start. Without
certificates (a role started by hand on loopback, for development) links are plain TCP
and roles are not checked; service.py refuses that anywhere but on loopback.

Before a peer is authenticated it can cost us little. An accepted socket first passes
admission: at most MAX_HANDSHAKING connections may be in their TLS handshake at once,
MAX_HANDSHAKING_PER_IP of them from one address, and each has HANDSHAKE_TIMEOUT_S to
finish; past a bound the socket is closed at once, never queued. So is a socket accepted
with too few file descriptors left (admission.near_file_limit). No frame is read before
the handshake, so nothing a stranger sends reaches the frame decoder. Authenticated links
are bounded too (`max_connections`); past that bound a new link is closed. Rejections are
logged at most once per REJECTION_LOG_EVERY_S per reason, with a count, so a flood of
strangers cannot flood the log.

A peer whose certificate is revoked (tls_contexts.py: revoked.txt in our --cert-dir) is refused
right after the handshake, on either side, with the reason logged (rate-limited like the
rest). Our own certificate files are looked at for every new link, so a renewed
certificate is presented from the next link on while open links carry on.

Once authenticated, a link carries request after request (`_serve_requests`); a request
whose type its peer's role may not send (`allowed_roles`) is answered with Error
'forbidden' and the link is closed. Every REVOCATION_CHECK_S the listener also closes
the open links whose peer was revoked since it connected: some links live for hours
(a datanode's heartbeats are one long request), so a check at connect time alone would
let a revoked peer stay. Links we opened and keep between requests (pool.py) are checked
by `RevokedPeers` each time one is taken for a request, against the list as read at most
REVOCATION_CHECK_S ago.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping

from myyoutube import certs, protocol, service, tls_contexts
from myyoutube.admission import Admission, fd_headroom, near_file_limit
from myyoutube.protocol import Error, Message
from myyoutube.quietlog import LogLimiter, QuietLog
from myyoutube.stream import FrameReceiver, FrameStream
from myyoutube.tls_contexts import Tls

log = logging.getLogger(__name__)
# Handlers' defects, one line per kind of request per period (see _serve_requests).
defects = QuietLog(log)

# A peer must finish the TLS handshake within this time: a socket that connects and says
# nothing holds one of the few handshake places for at most this long.
HANDSHAKE_TIMEOUT_S = 5.0

# Connections in their handshake at once, overall and from one address. A cluster has a
# handful of peers that reconnect rarely; these bounds are far above that and keep a
# stranger's flood from holding memory or file descriptors (a handshake costs ~100 KiB).
MAX_HANDSHAKING = 64
MAX_HANDSHAKING_PER_IP = 8

# Connections the kernel queues before we accept them.
LISTEN_BACKLOG = 128

# After accept() itself fails (out of file descriptors), wait this long before trying
# again, rather than spinning on an error that only closing connections can clear.
ACCEPT_RETRY_S = 0.1

# One log line per rejection reason per this period, with how many were rejected.
REJECTION_LOG_EVERY_S = 10.0

# How often open links are checked against the revocation list (a few stat() calls and a
# set lookup per link): a revoked peer is cut off within this time.
REVOCATION_CHECK_S = 1.0

# Between two requests a link may idle this long before the server closes it; client pools
# drop idle links well before (pool.POOL_IDLE_S), so a request never races the close.
SERVER_IDLE_S = 120.0

Handler = Callable[[FrameStream, Message], Awaitable[None]]


# Kernel send and receive buffers of every internal socket. Left alone, Linux grows them
# to 4 MiB (send) and 32 MiB (receive) on loopback, and a paused viewer then leaves
# 20-33 MiB read ahead in the cluster; at 256 KiB it is ~3.6 MiB per viewer with the same
# stream throughput (bench/stream_window.py, bench/throughput.py).
SOCKET_BUFFER_BYTES = 256 * 1024


def bound_buffers(sock: socket.socket) -> socket.socket:
    """Cap a socket's kernel buffers (set before connect/listen so TCP's window agrees)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
    return sock


class PeerRefused(ConnectionError):
    """The peer's certificate is valid but names a role we must not talk to."""


async def _connected_socket(host: str, port: int) -> socket.socket:
    loop = asyncio.get_running_loop()
    family, kind, proto, _, address = (await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))[0]
    sock = bound_buffers(socket.socket(family, kind, proto))
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


def _peer_of(transport: asyncio.BaseTransport) -> certs.Peer | None:
    ssl_object = transport.get_extra_info("ssl_object")
    return certs.peer_of(ssl_object.getpeercert(binary_form=True)) if ssl_object else None


def _identify(stream: FrameStream, transport: asyncio.BaseTransport) -> str:
    """Note the peer's role and serial on `stream`; returns its name."""
    peer = _peer_of(transport)
    stream.peer_role = peer.role if peer else None
    stream.peer_serial = peer.serial if peer else None
    return peer.name if peer else ""


async def connect(
    host: str, port: int, tls: Tls | None, expect_role: str, timeout: float = HANDSHAKE_TIMEOUT_S
) -> FrameStream:
    """Open a link to the `expect_role` at host:port (mutual TLS if `tls`); PeerRefused if
    its certificate names another role."""
    async with asyncio.timeout(timeout):
        sock = await _connected_socket(host, port)
        # Kept by hand: with TLS, uvloop hands back its own SSL protocol, not ours.
        receiver = FrameReceiver()
        try:
            transport, _ = await asyncio.get_running_loop().create_connection(
                lambda: receiver,
                sock=sock,
                ssl=tls.client if tls else None,
                server_hostname=host if tls else None,
            )
        except ssl.SSLError as exc:
            sentence = tls_contexts.mismatch(exc)
            if sentence is None:
                raise
            # "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)" told an
            # operator nothing; this names what to fix.
            raise PeerRefused(f"{host}:{port} {sentence}") from exc
    stream = FrameStream(transport, receiver)
    if tls is not None:
        name = _identify(stream, transport)
        refusal = tls.refusal(stream.peer_serial, name)
        if refusal is not None:
            stream.abort()
            raise PeerRefused(f"{host}:{port} refused: {refusal}")
        if stream.peer_role != expect_role:
            stream.abort()
            raise PeerRefused(
                f"{host}:{port} presented a {stream.peer_role} certificate, not a {expect_role} one"
            )
    return stream


async def serve_connections(
    handler: Handler,
    host: str,
    port: int,
    tls: Tls | None,
    max_connections: int,
    allowed_roles: Mapping[type, frozenset[str]],
    on_accept: Callable[[], None] | None = None,
) -> Listener:
    """Listen on host:port (not yet serving: call start_serving()). Each connection is
    admitted, authenticated, then `handler(stream, request)` runs for each request on it,
    one after another. `allowed_roles` maps a request type to the roles that may send it
    (enforced with TLS); `on_accept` is called per authenticated link (a counter)."""
    quiet = LogLimiter(REJECTION_LOG_EVERY_S)
    links = [0]

    def reject(reason: str, peer: str) -> None:
        count = quiet.check(reason, time.monotonic())
        if count is not None:
            log.warning("refused %d connection(s) (%s), the latest from %s", count, reason, peer)

    async def serve(stream: FrameStream) -> None:
        if links[0] >= max_connections:
            reject(f"more than {max_connections} links", stream.peer)
            stream.abort()
            return
        links[0] += 1
        if on_accept is not None:
            on_accept()
        try:
            await _serve_requests(stream, handler, allowed_roles, reject)
        except asyncio.CancelledError:
            stream.abort()  # the server is shutting down: end quietly
        finally:
            links[0] -= 1
            await stream.close()

    return Listener(host, port, tls, Admission(MAX_HANDSHAKING, MAX_HANDSHAKING_PER_IP), reject, serve)


class Listener:
    """A listening socket with our own accept loop (in the manner of asyncio.Server:
    `sockets`, `start_serving`, `serve_forever`, `close`, `async with`).

    Why not asyncio.start_server: the loop would start reading an accepted socket at once
    (uvloop even after being told to pause), so admission could not come before the first
    byte, and a TLS handshake started later would miss the peer's hello. Here a socket is
    admitted first and only then handed to the loop, with TLS, by connect_accepted_socket.
    """

    def __init__(
        self,
        host: str,
        port: int,
        tls: Tls | None,
        admission: Admission,
        reject: Callable[[str, str], None],
        serve: Callable[[FrameStream], Awaitable[None]],
    ) -> None:
        self._tls, self._admission, self._reject, self._serve = tls, admission, reject, serve
        listener = socket.create_server((host, port), family=_family(host), backlog=LISTEN_BACKLOG)
        listener.setblocking(False)
        self.sockets = [bound_buffers(listener)]  # accepted sockets inherit the buffers
        self._accepting: asyncio.Task | None = None
        self._watching: asyncio.Task | None = None
        self._connections: set[asyncio.Task] = set()
        self._file_limit = service.open_file_limit()
        self._links: dict[FrameStream, str] = {}  # authenticated and open -> the peer's name

    async def start_serving(self) -> None:
        if self._accepting is None:
            loop = asyncio.get_running_loop()
            self._accepting = loop.create_task(self._accept_forever())
            if self._tls is not None:
                self._watching = loop.create_task(self._cut_revoked_links(self._tls))

    async def serve_forever(self) -> None:
        await self.start_serving()
        assert self._accepting is not None
        await self._accepting

    def close(self) -> None:
        for task in (self._accepting, self._watching):
            if task is not None:
                task.cancel()
        for task in self._connections:
            task.cancel()
        self.sockets[0].close()

    async def wait_closed(self) -> None:
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def __aenter__(self) -> Listener:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await self.wait_closed()

    async def _accept_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, address = await loop.sock_accept(self.sockets[0])
            except OSError as exc:  # EMFILE and friends: refuse for a moment, never crash
                self._reject(f"accept failed: {exc.strerror or exc}", "?")
                await asyncio.sleep(ACCEPT_RETRY_S)
                continue
            ip = str(address[0])
            if near_file_limit(conn.fileno(), self._file_limit):
                self._reject(
                    f"fewer than {fd_headroom(self._file_limit)} of {self._file_limit} open files left", ip
                )
                conn.close()
                continue
            if not self._admission.admit(ip):
                self._reject("too many connections in their handshake", ip)
                conn.close()
                continue
            # The loop keeps only weak references to tasks: hold each until it ends.
            task = loop.create_task(self._connection(conn, ip))
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)

    async def _connection(self, conn: socket.socket, ip: str) -> None:
        loop = asyncio.get_running_loop()
        receiver = FrameReceiver()  # kept by hand: with TLS, uvloop returns its own protocol
        try:
            transport, _ = await loop.connect_accepted_socket(
                lambda: receiver,
                conn,
                ssl=self._tls.server if self._tls else None,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S if self._tls else None,
            )
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            reason = type(exc).__name__
            if isinstance(exc, ssl.SSLError) and (sentence := tls_contexts.mismatch(exc)):
                reason = f"the peer {sentence}"  # what to fix, as the other side is told
            self._reject(f"TLS handshake failed: {reason}", ip)
            conn.close()
            return
        finally:
            self._admission.release(ip)
        stream = FrameStream(transport, receiver)
        name = ""
        if self._tls is not None:
            name = _identify(stream, transport)
            refusal = self._tls.refusal(stream.peer_serial, name)
            if refusal is not None:
                self._reject(refusal, ip)
                stream.abort()
                return
        self._links[stream] = name
        try:
            await self._serve(stream)
        finally:
            del self._links[stream]

    async def _cut_revoked_links(self, tls: Tls) -> None:
        """Close open links whose peer's certificate has been revoked since they connected."""
        while True:
            await asyncio.sleep(REVOCATION_CHECK_S)
            revoked = tls.revoked  # the files are looked at once per round, not per link
            for stream, name in list(self._links.items()):
                if stream.peer_serial in revoked:
                    self._reject(f"open link cut: {tls.refusal(stream.peer_serial, name)}", stream.peer)
                    stream.abort()


class RevokedPeers:
    """The revoked serials as of at most REVOCATION_CHECK_S ago, for links kept between
    requests (pools): asked once per request, so the files are looked at once per period
    rather than on every request."""

    def __init__(self, tls: Tls) -> None:
        self._tls = tls
        self._serials = tls.revoked
        self._read_at = time.monotonic()

    def refusal(self, stream: FrameStream) -> str | None:
        """Why the peer of `stream` must not be used any more, or None."""
        now = time.monotonic()
        if now - self._read_at >= REVOCATION_CHECK_S:
            self._serials, self._read_at = self._tls.revoked, now
        if stream.peer_serial not in self._serials:
            return None
        return self._tls.refusal(stream.peer_serial)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


async def _serve_requests(
    stream: FrameStream,
    handler: Handler,
    allowed_roles: Mapping[type, frozenset[str]],
    reject: Callable[[str, str], None],
) -> None:
    """Requests one after another until the peer leaves, idles out or misbehaves."""
    while True:
        try:
            request = await stream.read_frame(timeout=SERVER_IDLE_S)
        except (ConnectionError, TimeoutError) as exc:
            # Between requests this is a pooled connection being let go: routine.
            log.debug("connection from %s closed between requests: %s", stream.peer, exc)
            return
        except protocol.ProtocolError as exc:
            log.info("connection from %s dropped: %s", stream.peer, exc)
            return
        # Deny by default: a request type nobody listed is refused on an authenticated link.
        roles = allowed_roles.get(type(request), frozenset())
        if stream.peer_role is not None and stream.peer_role not in roles:
            reject(f"a {stream.peer_role} may not send {type(request).__name__}", stream.peer)
            await stream.write_frame(
                Error("forbidden", f"a {stream.peer_role} may not send {type(request).__name__}")
            )
            return
        try:
            await handler(stream, request)
        except (protocol.ProtocolError, ConnectionError, TimeoutError) as exc:
            # A bad or vanished peer ends its own connection, never the server.
            log.info("connection from %s ended during %s: %s", stream.peer, type(request).__name__, exc)
            return
        except Exception:
            # A defect of ours: the link ends (the answer may be half sent), the server
            # and its other links go on. Its traceback is logged once per kind of request
            # and period: the request that triggers it may come in a loop and fill the
            # log's disk.
            kind = type(request).__name__
            defects.log(
                logging.ERROR,
                "%s request(s) failed in this server, the latest from %s",
                kind,
                stream.peer,
                key=f"defect:{kind}",
                exc_info=True,
            )
            return
