"""Reused authenticated connections to one peer: a bounded pool of idle FrameStreams.

Theory of operation
-------------------
Every request between roles used to open a TCP connection and run the HMAC handshake:
three of each per viewer's range request, thousands of sockets left in TIME_WAIT a minute.
A `ConnectionPool` keeps up to `max_idle` authenticated connections to one peer and hands
one out per request (`lease`). A request that ran to its end (the answer or End frame was
read) gives its connection back; one that failed or was abandoned midway closes it,
because unread frames may still be on their way and the next request would read them.

Why a pool and not multiplexing many requests over one connection: a paused viewer stops
reading, and its relay then stops reading from the master, which must stop reading from
the datanode. With one request per connection, TCP's own flow control does all of that
and a paused viewer blocks nobody else; multiplexing would need per-stream windows of our
own. Connections are cheap next to that (one socket and two small buffers each), and the
pool's bound keeps their number proportional to concurrency, not to requests.

A pooled connection may have died while idle (the peer restarted or idled it out). Such a
connection fails on first use before any answer arrives; `request` then retries once on a
fresh connection (`call`), so the request that found the broken connection does not fail. Only
when the peer answered nothing at all on it: a request a live peer may have acted on is
never sent twice.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from myyoutube import links
from myyoutube.stream import ConnectionClosed, FrameStream
from myyoutube.tls_contexts import Tls

log = logging.getLogger(__name__)

# Idle connections are closed after this long: well under the server's SERVER_IDLE_S, so
# the client, never the server, ends an idle connection and no request races a close.
POOL_IDLE_S = 30.0

# Connections being opened (TLS handshakes) at once per peer: half the server's per-address
# admission bound, so two pools on one host (a web and a test client) fit beside each other.
MAX_CONNECTING = 4

# The most idle connections kept per peer. Enough for the concurrency one role sees in
# bursts (a page of thumbnails, many viewers seeking); beyond it, finished connections
# are closed, so an idle pool never holds more than this many sockets.
DEFAULT_MAX_IDLE = 32


T = TypeVar("T")

# How a connection that died while idle shows itself on first use.
STALE_ERRORS = (ConnectionClosed, ConnectionResetError, BrokenPipeError)


class Lease:
    """One connection for one request; `done()` marks it reusable."""

    def __init__(self, connection: FrameStream, reused: bool) -> None:
        self.connection = connection
        self.reused = reused
        self.clean = False
        self.released = False
        self._frames_at_lease = connection.frames_received

    def done(self) -> None:
        """The request ran to its end: the connection is at a frame boundary."""
        self.clean = True

    def stale(self, exc: BaseException) -> bool:
        """`exc` means this reused connection was dead before the peer answered anything,
        so the request never reached a live peer and may be sent again."""
        return (
            self.reused
            and isinstance(exc, STALE_ERRORS)
            and self.connection.frames_received == self._frames_at_lease
        )


class ConnectionPool:
    def __init__(
        self,
        connect: Callable[[], Awaitable[FrameStream]],
        max_idle: int = DEFAULT_MAX_IDLE,
        revoked: links.RevokedPeers | None = None,
    ) -> None:
        """`connect` opens a new connection; `revoked` (with TLS) says whether an idle one's
        peer was revoked since it connected."""
        self._connect = connect
        self._max_idle = max_idle
        self._revoked = revoked
        # A burst of requests would otherwise open dozens of connections at once, and the
        # server admits only a few handshakes per address (links.MAX_HANDSHAKING_PER_IP).
        self._connecting = asyncio.Semaphore(MAX_CONNECTING)
        self._idle: list[tuple[float, FrameStream]] = []  # (idle since, connection), oldest first
        self._leased = 0  # connections out for a request now
        self.opened = 0  # connections made, for tests and metrics

    def _take_idle(self) -> FrameStream | None:
        now = time.monotonic()
        while self._idle:
            since, connection = self._idle.pop()  # the most recently used: least likely stale
            # One that heard more than keepalives while idle carries the late answer of a
            # request its user gave up on but still gave back as finished (a chain hop once
            # did): the next request would take that answer for its own.
            if now - since < POOL_IDLE_S and connection.is_open and connection.heard_nothing_while_idle():
                refusal = self._revoked.refusal(connection) if self._revoked is not None else None
                if refusal is None:
                    return connection
                log.warning("pooled link to %s closed: %s", connection.peer, refusal)
            connection.abort()
        return None

    async def acquire(self, fresh: bool = False) -> Lease:
        """A connection for one request: an idle one unless `fresh`, else a new one."""
        idle = None if fresh else self._take_idle()
        if idle is not None:
            self._leased += 1
            return Lease(idle, reused=True)
        async with self._connecting:
            connection = await self._connect()
        self.opened += 1
        self._leased += 1
        connection.on_close(functools.partial(self._let_go_closed, connection))
        return Lease(connection, reused=False)

    @property
    def has_idle(self) -> bool:
        """Whether a request would likely go out on a pooled connection, with no connect
        and no handshake first (one found stale then is replaced by a new one)."""
        return bool(self._idle)

    @property
    def unused(self) -> bool:
        """Whether the pool holds no connection, idle or out for a request."""
        return not self._idle and self._leased == 0

    def _let_go_closed(self, connection: FrameStream) -> None:
        """A connection closed (by its peer, which stopped or idled it out, or by us):
        if it waits in the pool, it leaves it now, not when the pool is next used. The pool
        of a peer gone for good (a datanode dead, or moved to another address) is never
        used again, and would hold its closed connections, buffers and all, for as long
        as the process runs."""
        self._idle = [(since, idle) for since, idle in self._idle if idle is not connection]

    def release(self, lease: Lease) -> None:
        """Keep the connection for the next request if `lease.done()` was called and there
        is room; close it otherwise. A lease is released once; a second release (an
        upload's abort after its failed finish) does nothing."""
        if lease.released:
            return
        lease.released = True
        self._leased -= 1
        now = time.monotonic()
        while self._idle and now - self._idle[0][0] >= POOL_IDLE_S:
            self._idle.pop(0)[1].abort()
        if lease.clean and lease.connection.is_open and len(self._idle) < self._max_idle:
            self._idle.append((now, lease.connection))
        else:
            lease.connection.abort()

    async def call(self, attempt: Callable[[Lease], Awaitable[T]]) -> T:
        """Run one request and give the connection back: `attempt` sends it on the lease's
        connection, reads the answer and calls `lease.done()` once the connection is clean
        again."""
        lease, result = await self.start(attempt)
        self.release(lease)
        return result

    async def start(self, attempt: Callable[[Lease], Awaitable[T]]) -> tuple[Lease, T]:
        """Start a request that goes on after `attempt` (a stream): the lease stays with
        the caller, who releases it. A pooled connection found dead before the peer
        answered anything is replaced by a new one and `attempt` runs again."""
        lease = await self.acquire()
        try:
            return lease, await attempt(lease)
        except BaseException as exc:
            self.release(lease)
            if not lease.stale(exc):
                raise
            log.debug("pooled connection to %s was dead; retrying on a new one", lease.connection.peer)
        lease = await self.acquire(fresh=True)
        try:
            return lease, await attempt(lease)
        except BaseException:
            self.release(lease)
            raise

    def close(self) -> None:
        for _, connection in self._idle:
            connection.abort()
        self._idle.clear()


class DatanodePools:
    """One connection pool per datanode address, made on first use.

    A datanode started on a port of its own choosing (`--port 0`) comes back at a new
    address after each restart, so over months the addresses seen are not bounded by the
    datanodes there are: making a pool for a new address first forgets the pools that hold
    no connection (idle or in use), as an empty pool holds nothing worth keeping."""

    def __init__(self, tls: Tls | None, max_idle: int) -> None:
        self._tls = tls
        self._max_idle = max_idle
        self._revoked = links.RevokedPeers(tls) if tls is not None else None
        self._pools: dict[str, ConnectionPool] = {}
        self._opened_by_forgotten = 0  # connections made by pools forgotten since

    def __getitem__(self, node: str) -> ConnectionPool:
        pool = self._pools.get(node)
        if pool is None:
            self._forget_unused()
            host, _, port = node.rpartition(":")
            pool = ConnectionPool(
                lambda: links.connect(host, int(port), self._tls, expect_role="datanode"),
                self._max_idle,
                self._revoked,
            )
            self._pools[node] = pool
        return pool

    def _forget_unused(self) -> None:
        for node, pool in list(self._pools.items()):
            if pool.unused:
                self._opened_by_forgotten += pool.opened
                del self._pools[node]

    def __len__(self) -> int:
        """Pools kept now (one per datanode address in use or with idle connections)."""
        return len(self._pools)

    @property
    def opened(self) -> int:
        """Connections made to datanodes so far."""
        return self._opened_by_forgotten + sum(pool.opened for pool in self._pools.values())

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
