"""Re-replication: under-replicated blobs are copied to another datanode in the background.

Theory of operation
-------------------
A repair task ticks every REPAIR_TICK_S: `repair_plan.plan_repairs` says which
under-replicated blobs to copy where, and copies run as bounded background tasks. A copy
reads the blob from one holder and writes it to the target through a `ReplicaFanout`
(with the blob's sidecars), and the target counts as a replica once it confirmed size and
sha256. The master's `repairs` (shown on /status) and `repair_load` track the copies
running, its `in_flight` marks each blob as being written. Decisions live in repair_plan.py;
this module only carries them out.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from typing import TYPE_CHECKING

from myyoutube import replica_reads
from myyoutube.master import repair_plan, transfer
from myyoutube.master.repair_plan import Repair

if TYPE_CHECKING:
    from myyoutube.master.server import Master

log = logging.getLogger(__name__)

# How often the repair planner looks for under-replicated blobs.
REPAIR_TICK_S = 1.0


async def repair_forever(master: Master) -> None:
    """Plan repairs every REPAIR_TICK_S. The plan walks every blob (a tenth of a second
    at 100,000), so it is skipped while nothing it depends on changed: the replicas,
    the nodes' liveness and room, and the copies that ended since."""
    looked_at = None
    async with asyncio.TaskGroup() as copies:
        while True:
            await asyncio.sleep(REPAIR_TICK_S)
            now = time.time()
            situation = (
                master.index.replica_changes,
                master.repairs_ended,
                repair_plan.repair_signature(master.state, now),
            )
            if situation == looked_at:
                continue
            plan = repair_plan.plan_repairs(
                master.state,
                master.index.replicas,
                master.replication,
                now,
                master.repair_load,
                set(master.repairs),
                master.rng,
            )
            # Copies this plan could not start yet (per-node bounds) become possible only
            # when a copy ends, which changes the situation: no need to look before.
            looked_at = situation
            for repair in plan:
                master.repairs[repair.blob_id] = repair
                master.in_flight.add(repair.blob_id)
                copies.create_task(_copy(master, repair))


async def copy_blob(
    master: Master,
    blob_id: str,
    sources: list[str],
    target: str,
    size: int,
    sha256: str,
    sidecar: dict | None,
) -> list[str]:
    """Copy a blob from one of `sources` to `target`, relayed through the master; the
    node that stored it. ReplicationFailed or ConsumerGone (the partial copy aborted)
    if it could not be made. Repairs and the write pipeline's top-ups both copy so."""
    fanout = transfer.ReplicaFanout(blob_id, 1, master.pools, master.stall_s, sidecar)
    try:
        await fanout.open([target])
        fanout.check_enough()
        await replica_reads.relay_blob(
            blob_id, 0, size, sources, master.pools, fanout.write, master.read_failed, master.stall_s
        )
        return await fanout.finish(size, sha256)
    except (transfer.ReplicationFailed, replica_reads.ConsumerGone):
        await fanout.abort()
        raise


async def _copy(master: Master, repair: Repair) -> None:
    started = time.monotonic()
    try:
        replica = master.index.replicas.get(repair.blob_id)
        if replica is None:
            return  # deleted meanwhile
        sidecar = master.sidecars.for_blob(repair.blob_id)
        try:
            stored = await copy_blob(
                master, repair.blob_id, [repair.source], repair.target, replica.size, replica.sha256, sidecar
            )
        except (transfer.ReplicationFailed, replica_reads.ConsumerGone) as exc:
            log.warning(
                "repair copy of %s %s -> %s failed: %s", repair.blob_id, repair.source, repair.target, exc
            )
            return
        if repair.blob_id in master.index.replicas:
            try:
                master.index.add_replica(repair.blob_id, stored[0], time.time())
            except sqlite3.Error as exc:
                # The index cannot be written (its disk full): the copy stays on its node,
                # whose next report counts it. The error must not end the repair task,
                # which would take the master down with it.
                log.warning(
                    "could not record the repair copy of %s on %s: %s", repair.blob_id, stored[0], exc
                )
                return
            master.counters.repairs += 1
            log.info(
                "re-replicated %s from %s to %s in %.2fs",
                repair.blob_id,
                repair.source,
                repair.target,
                time.monotonic() - started,
            )
    finally:
        master.repairs_ended += 1
        del master.repairs[repair.blob_id]
        master.in_flight.discard(repair.blob_id)
        for node in (repair.source, repair.target):
            master.repair_load[node] -= 1
