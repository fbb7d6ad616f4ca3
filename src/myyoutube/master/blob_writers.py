"""The writers of a new blob, opened on its replicas: placement, a chain re-formed without
the nodes that failed to join it, and a fan-out when no chain can hold enough.

Theory of operation
-------------------
A new blob (an upload's video or poster, a rendition, an index snapshot) is written by a
`Writer`: a `pipeline.ChainWriter` (the default: each byte leaves the master once) or,
with `--writes fanout`, a `transfer.ReplicaFanout`. `new_fanout` makes one, its blob id
recorded as the index's own before any byte is written; `open_replicas` offers it
`replication` nodes the cluster state places, replacing refusals while live nodes are
left. A chain that lost nodes while it formed is formed again without them; one that
still holds fewer than min_replicas because nodes failed to join it (datanodes that
cannot reach each other) is given up for a fan-out before the first byte. Too few nodes
to offer at all is `placement_failure`, a sentence saying which: too few running, out of
space, or too few of those with room took the bytes. `abort_fanouts` drops every
writer of a failed write that was not committed.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from typing import TYPE_CHECKING

from myyoutube.chain_acks import formed_short
from myyoutube.formatting import agreeing, counted
from myyoutube.master import pipeline, transfer
from myyoutube.master.registrations import datanodes_registered

if TYPE_CHECKING:
    from myyoutube.master.server import Master

log = logging.getLogger(__name__)

# How a blob's bytes reach its replicas: a chain (the default), or fan-out with --writes fanout.
Writer = transfer.ReplicaFanout | pipeline.ChainWriter


async def new_fanout(master: Master, fanouts: list, chain: bool | None = None) -> Writer:
    """A new blob's writer (a chain unless `chain` or the master says otherwise). Its id
    is recorded as the index's own before any byte is written, so copies left by a crash
    are known to be deletable."""
    fanout: Writer
    if master.write_pipeline if chain is None else chain:
        top_up = functools.partial(pipeline.copy_to_more, master)
        fanout = pipeline.ChainWriter(
            uuid.uuid4().hex, master.min_replicas, master.pools, master.stall_s, top_up
        )
    else:
        fanout = transfer.ReplicaFanout(uuid.uuid4().hex, master.min_replicas, master.pools, master.stall_s)
    master.in_flight.add(fanout.blob_id)
    fanouts.append(fanout)  # aborted with the others, should the record fail to be written
    await master.index.durably(
        functools.partial(master.index.ownership.begin_blob, fanout.blob_id, time.time())
    )
    return fanout


async def abort_fanouts(master: Master, fanouts: list[Writer]) -> None:
    # A blob already committed is never aborted: a cancellation (the master stopping) can
    # reach an upload after its commit's transaction, as the worker thread running it
    # finishes or while the sidecars go out, and deleting its copies then would lose a
    # video the index holds.
    fanouts = [f for f in fanouts if not master.index.ownership.is_committed(f.blob_id)]
    # Retired first: a copy the direct deletes below miss (a node down right now) is
    # deleted when that node next reports it.
    master.index.ownership.abandon_blobs([f.blob_id for f in fanouts], time.time())
    for fanout in fanouts:
        await fanout.abort()


async def open_replicas(master: Master, fanout: Writer, fanouts: list[Writer] | None = None) -> Writer:
    """Open `replication` replicas; a node that refuses (full, broken disk, gone) is
    replaced by another live one while any is left; the writer to use. Given the upload's
    writers (`fanouts`), a chain that lost nodes while it formed is formed again without
    them (see _chain_came_short), and one that could not form over min_replicas nodes
    (datanodes that cannot reach each other) is given up for a fan-out."""
    await datanodes_registered(master)
    await _place(master, fanout)
    failed: set[str] = set()
    while fanouts and _chain_came_short(master, fanout):
        failed.update(fanout.failed)
        log.warning(
            "blob %s: a chain formed over %d of %s (%s); forming a new one without the failed",
            fanout.blob_id,
            len(fanout.replicas),
            counted(master.replication, "datanode"),
            fanout.failed,
        )
        fanout = await _start_over(master, fanout, fanouts, chain=True)
        await _place(master, fanout, frozenset(failed))
    if _chain_lost_too_many(master, fanout, failed) and fanouts:
        log.warning(
            "blob %s: a chain formed over %s only (%s); fanning out instead. If datanodes "
            "cannot reach each other's advertised addresses, run the master with --writes fanout",
            fanout.blob_id,
            counted(len(fanout.replicas), "datanode"),
            {
                node: fanout.failed.get(node, "failed to join an earlier chain")
                for node in failed | fanout.failed.keys()
            },
        )
        # Every live node is offered again: a node a chain lost may only be out of the
        # other datanodes' reach, and the master, writing to each itself, may reach it.
        fanout = await _start_over(master, fanout, fanouts, chain=False)
        await _place(master, fanout)
    if len(fanout.replicas) < master.min_replicas:
        raise placement_failure(master, len(fanout.replicas))
    return fanout


def _chain_lost_too_many(master: Master, fanout: Writer, failed_before: set[str]) -> bool:
    """Whether a chain writer holds fewer than min_replicas nodes because nodes failed to
    join it, this chain's or earlier ones' of the upload (`failed_before`). Too few nodes
    to offer at all (too few running, or with room) is not that: a fan-out over the same
    nodes would come as short, and the placement failure says why."""
    return (
        isinstance(fanout, pipeline.ChainWriter)
        and len(fanout.replicas) < master.min_replicas
        and bool(fanout.failed or failed_before)
    )


def _chain_came_short(master: Master, fanout: Writer) -> bool:
    """chain_acks.formed_short for a chain writer; a fan-out replaces refusals itself."""
    if not isinstance(fanout, pipeline.ChainWriter):
        return False
    return formed_short(fanout.chain, fanout.offered, fanout.failed, master.replication)


async def _start_over(master: Master, old: Writer, fanouts: list[Writer], chain: bool) -> Writer:
    """A writer of a new blob in place of `old`, before any byte of it was written (a
    chain, or a fan-out). A fresh blob id keeps the two writes apart; `old`'s nodes would
    park their copies for a resume that never comes and keep them for PARKED_KEEP_S, so
    they are deleted now (a node cuts and parks a write still running before it deletes)."""
    master.index.ownership.abandon_blobs([old.blob_id], time.time())
    await old.abort()
    master.in_flight.discard(old.blob_id)
    fanouts.remove(old)
    return await new_fanout(master, fanouts, chain=chain)


async def _place(master: Master, fanout: Writer, avoid: frozenset[str] = frozenset()) -> None:
    """Offer `fanout` nodes until it has `replication` replicas or no live node is left
    that it has not tried and that is not in `avoid`."""
    while len(fanout.replicas) < master.replication:
        nodes = master.state.place(
            master.replication - len(fanout.replicas), time.time(), master.rng, exclude=fanout.tried | avoid
        )
        if not nodes:
            break
        await fanout.open(nodes)


def placement_failure(master: Master, placed: int) -> transfer.ReplicationFailed:
    now = time.time()
    alive = master.state.alive_count(now)
    with_room = len(master.state.place(alive, now, master.rng))
    if with_room >= master.min_replicas:
        # Enough nodes have room, yet too few took the bytes (a disk turned read-only,
        # a node lost midway): not a matter of space. The reasons, which name nodes and
        # folders, are in the master's log, not in a visitor's error.
        return transfer.ReplicationFailed(
            f"Only {placed} of the {counted(with_room, 'datanode')} with room could store the video and "
            f"{transfer.needed(master.min_replicas)}; try again shortly (the master's log says why)."
        )
    if alive >= master.min_replicas:
        return transfer.ReplicationFailed(
            f"The storage is out of space: {with_room} of {counted(alive, 'datanode')} "
            f"{agreeing(with_room, 'has', 'have')} room and {transfer.needed(master.min_replicas)}. "
            "Free some space or add a datanode.",
            code="no_space",
        )
    return transfer.ReplicationFailed(
        f"Only {counted(alive, 'datanode')} {agreeing(alive, 'is', 'are')} running and "
        f"{transfer.needed(master.min_replicas)} to store a video safely; try again once more are up."
    )
