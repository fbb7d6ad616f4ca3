"""One append to a resumable upload: a PATCH's bytes relayed to the session's replicas.

Theory of operation
-------------------
master/resumable.py looks the session up, takes its lock and checks the offset; then
every `AppendUpload`:

1. opens an append at the session's confirmed offset on each of its replicas
   (`AppendBlob`: a node cuts off any bytes past the offset that were never confirmed);
2. replaces each replica that cannot be reached or refuses by a new node, onto which the
   confirmed prefix is first copied from a live replica (a node lost between appends;
   open_replicas.py);
3. relays the uploader's chunks to all of them (transfer.ReplicaFanout), and at End
   waits for every replica to fsync and confirm the new length;
4. hands the new offset and the replicas that confirmed it back, for resumable.py to
   write to the index with a new expiry before it tells the uploader. So the offset
   anyone is told is held by at least `min_replicas` nodes on disk, and survives the
   master, the web front end or a node.

An append cut short (the uploader's connection broke) confirms what arrived: the web ends
it with the byte count it relayed. A master or web that dies mid-append confirms nothing
new; the next append cuts the replicas back to the confirmed offset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from myyoutube import protocol
from myyoutube.master import open_replicas, transfer, uploads
from myyoutube.master.upload_sessions import Session, SessionTable
from myyoutube.protocol import Chunk, End, Error, Ok
from myyoutube.stream import FrameStream

if TYPE_CHECKING:
    from myyoutube.master.server import Master


async def append(
    master: Master, table: SessionTable, connection: FrameStream, session: Session
) -> tuple[int, list[str]] | None:
    """Relay one append, with the session's lock held and the uploader at its offset: the
    new offset and the nodes that confirmed it, or None after answering the failure."""
    try:
        fanout = await open_replicas.open_appends(master, session)
    except transfer.ReplicationFailed as exc:
        table.save(session)  # the nodes open_appends gave up on are former replicas now
        await connection.write_frame(Error(exc.code, str(exc)))
        return None
    try:
        await connection.write_frame(Ok({}))
        received = await _relay(master, connection, fanout, session)
        confirmed = await fanout.finish(session.offset + received, "")
    except (transfer.ReplicationFailed, TooLong) as exc:
        _failed(table, session, fanout)
        await connection.write_frame(Error(exc.code, str(exc)))
        await uploads.drain(connection)
        return None
    except BaseException:
        _failed(table, session, fanout)  # the uploader or the master's link went
        raise
    return session.offset + received, confirmed


def _failed(table: SessionTable, session: Session, fanout: transfer.ReplicaFanout) -> None:
    """An append that confirmed nothing new: close it. The nodes it brought in to
    replace lost replicas hold a copy of the confirmed bytes, yet are not the session's
    replicas: recorded as former ones (durably), so the session's end deletes their
    copies. Nobody else would: a datanode keeps an open blob for ABANDONED_AFTER_S."""
    brought_in = fanout.tried - set(session.replicas) - set(session.former)
    fanout.close()
    if brought_in:
        session.former = sorted(set(session.former) | brought_in)
        table.save(session)


async def _relay(
    master: Master, connection: FrameStream, fanout: transfer.ReplicaFanout, session: Session
) -> int:
    """Relay chunks until End; the byte count (End must say the same)."""
    received = 0
    while True:
        message = await connection.read_expected(Chunk, End, timeout=uploads.UPLOAD_STALL_TIMEOUT_S)
        if isinstance(message, End):
            break
        received += len(message.data)
        if session.offset + received > session.length:
            raise TooLong(f"The upload is {session.length} bytes long; these bytes go past its end.")
        master.counters.bytes_in += len(message.data)
        await fanout.write(message.data)
    if message.size != received:
        raise protocol.RemoteProtocolError(f"append ended at {message.size} bytes, got {received}")
    return received


class TooLong(Exception):
    code = "too_long"
