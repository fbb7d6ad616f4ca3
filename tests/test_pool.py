"""Tests for myyoutube.pool: reused connections, stale ones replaced, abandoned ones closed.

A real served listener on 127.0.0.1 in this process (stream.serve_connections), no mocks.
"""

from __future__ import annotations

import asyncio
import gc
import weakref

from myyoutube import links, protocol
from myyoutube.pool import ConnectionPool, DatanodePools, Lease
from myyoutube.protocol import Chunk, Keepalive, Ok
from myyoutube.stream import FrameStream

HOST = "127.0.0.1"


class Echo:
    """A served handler that answers each request with itself and remembers every
    server-side connection, so a test can cut them."""

    def __init__(self) -> None:
        self.connections: list[FrameStream] = []

    async def __call__(self, conn: FrameStream, request: protocol.Message) -> None:
        if conn not in self.connections:
            self.connections.append(conn)
        await conn.write_frame(request)


async def served(handler) -> tuple[links.Listener, ConnectionPool]:
    server = await links.serve_connections(handler, HOST, 0, None, 16, {})
    await server.start_serving()
    port = server.sockets[0].getsockname()[1]
    return server, ConnectionPool(lambda: links.connect(HOST, port, None, "master"), max_idle=2)


async def ask(pool: ConnectionPool, n: int) -> protocol.Message:
    async def attempt(lease: Lease) -> protocol.Message:
        await lease.connection.write_frame(Ok({"n": n}))
        answer = await lease.connection.read_frame(timeout=3)
        lease.done()
        return answer

    return await pool.call(attempt)


async def test_sequential_requests_reuse_one_connection():
    """Fifty requests one after another open one connection (one handshake), not fifty."""
    handler = Echo()
    server, pool = await served(handler)
    try:
        for n in range(50):
            assert await ask(pool, n) == Ok({"n": n})
        assert pool.opened == 1 and len(handler.connections) == 1
    finally:
        pool.close()
        server.close()


async def test_connection_closed_by_the_server_while_idle_is_replaced_transparently():
    """The server drops an idle pooled connection; the next request still succeeds, on a
    new connection, without the caller seeing an error."""
    handler = Echo()
    server, pool = await served(handler)
    try:
        assert await ask(pool, 1) == Ok({"n": 1})
        handler.connections[0].abort()
        await asyncio.sleep(0.1)  # the close reaches the client's socket
        assert await ask(pool, 2) == Ok({"n": 2})
        assert pool.opened == 2
    finally:
        pool.close()
        server.close()


async def test_abandoned_request_closes_its_connection():
    """A request given up midway (its answer unread) never hands its connection to the
    next request, which would otherwise read the stale answer."""
    server, pool = await served(Echo())
    try:
        lease = await pool.acquire()
        await lease.connection.write_frame(Chunk(b"left unread"))
        pool.release(lease)  # not done(): closed, not pooled
        assert await ask(pool, 3) == Ok({"n": 3})
        assert pool.opened == 2
    finally:
        pool.close()
        server.close()


class AnswersThenSends(Echo):
    """Answers each request, then sends `extra` on the same connection: a late answer (a
    peer that woke after its client had given up on it and sent what it still owed), or
    a keepalive (a peer's ticker may send one just after its answer)."""

    def __init__(self, extra: protocol.Message) -> None:
        super().__init__()
        self.extra = extra

    async def __call__(self, conn: FrameStream, request: protocol.Message) -> None:
        await super().__call__(conn, request)
        await conn.write_frame(self.extra)


async def test_a_connection_that_received_frames_while_idle_is_not_reused():
    """A pooled connection on which a frame arrived after its request ended (a late
    answer) is closed, not handed to the next request, which would read that frame as
    its own answer."""
    server, pool = await served(AnswersThenSends(Ok({"late": True})))
    try:
        assert await ask(pool, 1) == Ok({"n": 1})
        await asyncio.sleep(0.2)  # the late answer reaches the idle connection
        assert await ask(pool, 2) == Ok({"n": 2})
        assert pool.opened == 2
    finally:
        pool.close()
        server.close()


async def test_a_keepalive_heard_while_idle_does_not_retire_a_connection():
    """A keepalive that arrives after the answer says nothing about the request: the
    connection is reused, and the next request reads its own answer."""
    server, pool = await served(AnswersThenSends(Keepalive()))
    try:
        for n in range(5):
            assert await ask(pool, n) == Ok({"n": n})
            await asyncio.sleep(0.05)  # the keepalive reaches the idle connection
        assert pool.opened == 1
    finally:
        pool.close()
        server.close()


async def test_idle_connections_are_bounded():
    """Past max_idle, finished connections are closed rather than kept."""
    server, pool = await served(Echo())
    try:
        leases = [await pool.acquire() for _ in range(5)]
        for lease in leases:
            lease.done()
            pool.release(lease)
        assert sum(lease.connection.is_open for lease in leases) == 2
    finally:
        pool.close()
        server.close()


async def test_idle_connections_the_peer_closed_are_let_go_at_once():
    """Idle connections their peer closed (it stopped, or idled them out) are let go as
    they close, not when the pool is next used: the pool of a peer gone for good (a
    datanode dead or moved elsewhere) holds nothing. Before, it kept its closed
    connections, buffers and all, for as long as the process ran."""
    handler = Echo()
    server, pool = await served(handler)
    try:
        leases = [await pool.acquire() for _ in range(2)]
        for lease in leases:
            lease.done()
            pool.release(lease)
        pooled = [weakref.ref(lease.connection) for lease in leases]
        del leases, lease
        server.close()
        await server.wait_closed()  # the peer's side of every connection is closed
        await asyncio.sleep(0.1)  # the closes reach the client's sockets
        gc.collect()
        assert [connection() for connection in pooled] == [None, None]
    finally:
        pool.close()


async def test_pools_of_addresses_no_longer_used_are_forgotten():
    """A datanode on a port of its own choosing comes back at a new address after each
    restart: the master's table of pools keeps those in use or holding idle connections,
    and forgets the empty ones when a new address comes, while still counting the
    connections they opened."""
    servers = [await links.serve_connections(Echo(), HOST, 0, None, 16, {}) for _ in range(3)]
    for server in servers:
        await server.start_serving()
    nodes = [f"{HOST}:{server.sockets[0].getsockname()[1]}" for server in servers]
    pools = DatanodePools(None, max_idle=2)
    try:
        kept = await pools[nodes[0]].acquire()  # out for a request all along
        for node in nodes[1:]:
            assert await ask(pools[node], 1) == Ok({"n": 1})
        assert len(pools) == 3  # each holds an idle connection
        pools[nodes[2]].close()  # its idle connection closed: now empty
        pools["127.0.0.1:9"]  # a new address (nothing is asked of it)
        assert len(pools) == 3  # nodes[2]'s pool went; nodes[0]'s is in use, nodes[1]'s idle
        assert pools.opened == 3
        kept.done()
        pools[nodes[0]].release(kept)
        pools[nodes[0]].release(kept)  # a second release changes nothing
        first, second = await pools[nodes[0]].acquire(), await pools[nodes[0]].acquire()
        assert (first.reused, second.reused) == (True, False)  # kept idle once, not twice
    finally:
        pools.close()
        for server in servers:
            server.close()
