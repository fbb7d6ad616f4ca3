"""A datanode's local socket: its blobs' files, handed to the web front end on its machine.

Theory of operation
-------------------
The web reads blobs held by a datanode on its own machine from the files, with no hop per
range (local_reads.py says why and how it reads them, local_handover.py what both sides
share). This is the datanode's half: a Unix socket in Linux's abstract namespace, named
after the node's TCP port, where each connection is one handover. The web sends
OpenLocalBlob naming this node, with the master's grant; the grant is checked exactly as
for a ReadBlob over the network, and the answer is Ok with this node's advertised address
and the blob's size, carrying read-only descriptors of the blob's file and its checksum
file (SCM_RIGHTS), or Error. The connection is then closed.

Nothing here reads or writes blob bytes: a handover costs two opens in a worker thread.
The socket is served on the event loop, HANDOVER_TIMEOUT_S per request and at most
MAX_LOCAL_HANDOVERS at once, and only for a process of the node's own user (or root); any
other connection is closed unanswered, and the web reads over the network instead. A node
that cannot have the socket (not Linux, or its name taken) serves every read over the
network, as before.
"""

from __future__ import annotations

import array
import asyncio
import logging
import os
import socket
import time
from typing import TYPE_CHECKING

from myyoutube import protocol, read_grants
from myyoutube.datanode.store import StoreError
from myyoutube.local_handover import (
    HANDOVER_TIMEOUT_S,
    MAX_HANDOVER_BYTES,
    SUPPORTED,
    same_user,
    socket_name,
)
from myyoutube.protocol import Error, Ok, OpenLocalBlob
from myyoutube.quietlog import QuietLog

if TYPE_CHECKING:
    from myyoutube.datanode.server import DataNode

log = logging.getLogger(__name__)
quiet = QuietLog(log)

# Handovers served at once. One is a millisecond's work, asked once per blob per web
# front end; more at once than this means something is hammering the socket.
MAX_LOCAL_HANDOVERS = 16

# Connections waiting to be accepted, as listen(2) takes it.
LISTEN_BACKLOG = 64

# How long accepting pauses after it failed (no descriptor left, say): the web reads over
# the network meanwhile, and a node out of descriptors has better uses for the next ones.
ACCEPT_RETRY_S = 1.0


def listen(port: int) -> socket.socket | None:
    """The node's local socket for TCP `port`, or None (logged) if it cannot have one."""
    if not SUPPORTED:
        return None
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(socket_name(port))
        listener.listen(LISTEN_BACKLOG)
    except OSError as exc:
        listener.close()
        log.warning("the web on this machine reads this node over the network: no local socket (%s)", exc)
        return None
    listener.setblocking(False)
    return listener


async def serve_forever(node: DataNode, listener: socket.socket) -> None:
    """Answer handovers on `listener` until cancelled; it is closed then."""
    loop = asyncio.get_running_loop()
    under_way: set[asyncio.Task] = set()
    try:
        while True:
            try:
                connection, _ = await loop.sock_accept(listener)
            except OSError as exc:  # out of descriptors, say: the node's own work goes first
                quiet.warning("the local socket cannot accept just now: %s", exc)
                await asyncio.sleep(ACCEPT_RETRY_S)
                continue
            if len(under_way) >= MAX_LOCAL_HANDOVERS or not _same_user(connection):
                connection.close()
                continue
            task = asyncio.create_task(_hand_over(node, connection))
            under_way.add(task)
            task.add_done_callback(under_way.discard)
    finally:
        listener.close()
        for task in under_way:
            task.cancel()


async def _hand_over(node: DataNode, connection: socket.socket) -> None:
    """One handover: read the request, answer it with the files or a refusal."""
    with connection:
        connection.setblocking(False)
        try:
            # Only the request is timed: the open runs in a worker thread, which a timeout
            # could not stop, and its descriptors must then still be closed (below).
            async with asyncio.timeout(HANDOVER_TIMEOUT_S):
                request = await _request(connection)
            answer, fds = await _files_for(node, request)
            try:
                ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
                # A few hundred bytes into a fresh socket's empty buffer: never blocks.
                connection.sendmsg([protocol.encode(answer)], ancillary)
            finally:
                for fd in fds:
                    os.close(fd)
        except (TimeoutError, OSError, protocol.ProtocolError) as exc:
            log.debug("a local handover failed: %s", exc)


async def _request(connection: socket.socket) -> protocol.Message:
    loop = asyncio.get_running_loop()
    decoder = protocol.FrameDecoder()
    received = 0
    while (request := decoder.next_frame()) is None:
        data = await loop.sock_recv(connection, MAX_HANDOVER_BYTES)
        received += len(data)
        if not data or received > MAX_HANDOVER_BYTES:
            raise protocol.RemoteProtocolError("the request is cut short or too long")
        decoder.feed(data)
    return request


async def _files_for(node: DataNode, request: protocol.Message) -> tuple[protocol.Message, list[int]]:
    """The answer to `request`, and the descriptors that go with it (closed by the caller)."""
    if not isinstance(request, OpenLocalBlob):
        return Error("bad_request", f"{type(request).__name__} is not asked here"), []
    if request.node != node.address:
        # Another host's node on the same port as this one: the web must not take our files.
        return Error("other_node", f"this is {node.address}, not {request.node}"), []
    # The same check as a network read's (server.DataNode._read): the master's grant.
    refused = read_grants.refusal(node.read_keys.keys, request.grant, request.blob_id, time.time())
    if refused is not None:
        return Error("forbidden", refused), []
    try:
        size = node.store.size(request.blob_id)
        fds = await _opened(node, request.blob_id)
    except StoreError as exc:
        return Error(exc.code, str(exc)), []
    return Ok({"address": node.address, "size": size}), list(fds)


async def _opened(node: DataNode, blob_id: str) -> tuple[int, int]:
    """The blob's descriptors, opened in a worker thread; closed there if the handover is
    cancelled meanwhile (the node stopping), as nobody else would."""
    opening = asyncio.ensure_future(asyncio.to_thread(node.store.open_files, blob_id))
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        opening.add_done_callback(_close_opened)
        raise


def _close_opened(opening: asyncio.Future) -> None:
    if not opening.cancelled() and opening.exception() is None:
        for fd in opening.result():
            os.close(fd)


def _same_user(connection: socket.socket) -> bool:
    """Whether the process at the other end runs as our user (or root): the files go only
    to such a process, as the web takes them only from one."""
    try:
        return same_user(connection)
    except OSError:
        return False
