"""A resumable upload's open blob on its replicas: appends opened, lost replicas replaced,
and the sealing at the end (master/resumable.py runs the sessions).

Theory of operation
-------------------
Every append opens an `AppendBlob` at the session's confirmed offset on each replica
through a transfer.ReplicaFanout (which then relays, paces and confirms it as it does a
plain upload). A replica that cannot be reached or refuses (its node died, its copy is
short or rotten) is replaced by a node the cluster state places, onto which the confirmed
prefix is first copied from a live replica (replica_reads.relay_blob, with failover); the append
then goes on as long as `min_replicas` remain. Sealing asks every replica to publish its
copy as an ordinary blob; each hashes it, and the copies that agree (at least
`min_replicas`) become the video's replicas.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from myyoutube import replica_reads
from myyoutube.master import blob_writers, transfer
from myyoutube.master.index import StoredBlob
from myyoutube.master.upload_sessions import Session
from myyoutube.protocol import AppendBlob, End, SealBlob

if TYPE_CHECKING:
    from myyoutube.master.server import Master

log = logging.getLogger(__name__)

# Sealing hashes the whole blob on every replica (keepalives flow meanwhile); a node
# silent this long while sealing is taken for gone.
SEAL_SILENCE_S = 10.0


def append_fanout(master: Master, session: Session, offset: int, min_replicas: int) -> transfer.ReplicaFanout:
    fanout = transfer.ReplicaFanout(session.blob_id, min_replicas, master.pools, master.stall_s)
    fanout.opening = AppendBlob(blob_id=session.blob_id, offset=offset)
    return fanout


async def open_appends(master: Master, session: Session) -> transfer.ReplicaFanout:
    """Appends open on the session's replicas, a lost one replaced by a new node
    holding a copy of the confirmed prefix; ReplicationFailed if too few remain."""
    fanout = append_fanout(master, session, session.offset, master.min_replicas)
    await fanout.open(session.replicas)
    while len(fanout.replicas) < master.replication:
        exclude = fanout.tried | set(session.former)
        nodes = master.state.place(
            master.replication - len(fanout.replicas), time.time(), master.rng, exclude=exclude
        )
        if not nodes:
            break
        for node in nodes:
            if await _copy_prefix(master, session, node, list(fanout.replicas)):
                await fanout.open([node])
            else:
                fanout.failed[node] = "the confirmed bytes could not be copied to it"
                session.former.append(node)  # it may hold part of a copy: deleted at the end
    if len(fanout.replicas) < master.min_replicas:
        # The nodes that took a copy of the confirmed bytes keep it: deleted at the end.
        session.former = sorted(set(session.former) | (fanout.tried - set(session.replicas)))
        fanout.close()
        raise blob_writers.placement_failure(master, len(fanout.replicas))
    return fanout


async def _copy_prefix(master: Master, session: Session, node: str, sources: list[str]) -> bool:
    """Copy the confirmed bytes onto `node` as an open blob; whether it worked."""
    if session.offset == 0 or not sources:
        return session.offset == 0
    copier = append_fanout(master, session, 0, 1)
    try:
        await copier.open([node])
        copier.check_enough()
        await replica_reads.relay_blob(
            session.blob_id,
            0,
            session.offset,
            sources,
            master.pools,
            copier.write,
            master.read_failed,
            master.stall_s,
        )
        await copier.finish(session.offset, "")
    except (transfer.ReplicationFailed, replica_reads.ConsumerGone, *transfer.REPLICA_FAILURES) as exc:
        copier.close()
        log.warning(
            "upload %s: could not copy %d bytes to %s: %s", session.upload_id, session.offset, node, exc
        )
        return False
    log.info("upload %s: replica replaced, %d bytes copied to %s", session.upload_id, session.offset, node)
    return True


# --- reading back, finishing, ending ----------------------------------------------


async def seal(master: Master, session: Session) -> StoredBlob:
    """Publish the open replicas as a blob; those that agree on its sha256."""
    pools = master.pools

    async def seal_one(node: str) -> End:
        async def attempt(lease) -> End:
            await lease.connection.write_frame(SealBlob(blob_id=session.blob_id, size=session.length))
            answer = await lease.connection.read_expected(End, timeout=SEAL_SILENCE_S)
            lease.done()
            return answer

        return await pools[node].call(attempt)

    answers = await asyncio.gather(*(seal_one(node) for node in session.replicas), return_exceptions=True)
    sealed: dict[str, list[str]] = {}
    for node, answer in zip(session.replicas, answers, strict=True):
        if isinstance(answer, End) and answer.size == session.length:
            sealed.setdefault(answer.sha256, []).append(node)
        elif isinstance(answer, BaseException) and not isinstance(answer, transfer.REPLICA_FAILURES):
            raise answer
        else:
            log.warning("upload %s: replica %s did not seal: %s", session.upload_id, node, answer)
    sha256, nodes = max(sealed.items(), key=lambda item: len(item[1]), default=("", []))
    if len(nodes) < master.min_replicas:
        raise transfer.ReplicationFailed(
            "Too few copies of the upload could be completed; try again shortly."
        )
    return StoredBlob(session.blob_id, session.length, sha256, nodes)
