"""Re-replication decisions, as pure functions of (state, replica map, now): no I/O, no clock.

Theory of operation
-------------------
From the datanode registry (state.ClusterState: who is alive, suspect or dead, and each
node's room and deletions due) and the replica map (blob -> nodes holding it),
`plan_repairs` decides which under-replicated blobs to copy where, fewest live copies
first, with a bound on concurrent copies per node so repair never starves viewers.
`repair_signature` is what that plan depends on besides the replica map, so the repair
task (repair.py, which carries the copies out) can skip planning while it is unchanged.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from myyoutube.master.state import ALIVE, ClusterState, Replica

# Repair copies at once per node, outgoing or incoming. HDFS uses 2: enough to heal a dead
# node's data in parallel, little enough that viewers keep most of the disk.
MAX_REPAIRS_PER_NODE = 2


@dataclass(frozen=True)
class Repair:
    blob_id: str
    source: str
    target: str


def repair_signature(state: ClusterState, now: float) -> tuple:
    """What plan_repairs' answer depends on besides the replica map: each node's
    liveness, room (in whole steps) and deletions due (a blob still to be deleted
    on a node is not copied there), and whether start-up's grace is over. Equal
    signatures over an unchanged replica map give the same (empty) plan."""
    in_grace = now - state.started_at < state.dead_after_s
    nodes = tuple(
        sorted(
            (address, state.liveness(address, now), node.room_steps, len(node.to_delete))
            for address, node in state.nodes.items()
        )
    )
    return (in_grace, nodes)


def plan_repairs(
    state: ClusterState,
    replicas: dict[str, Replica],
    replication: int,
    now: float,
    busy: dict[str, int],
    repairing: set[str],
    rng: random.Random,
) -> list[Repair]:
    """Copies to start now: fewest live replicas first, per-node bound respected.

    `busy` counts copies already running per node (as source or target) and is updated
    in place for the copies returned; `repairing` holds blobs already being copied.
    """
    needy = []
    for blob_id, replica in replicas.items():
        holders = [a for a in replica.nodes if state.liveness(a, now) == ALIVE]
        live_copies = sum(state.live(a, now) for a in replica.nodes)
        if blob_id not in repairing and holders and live_copies < replication:
            needy.append((live_copies, blob_id, holders))
    repairs = []
    for _, blob_id, holders in sorted(needy):
        sources = [a for a in holders if busy.get(a, 0) < MAX_REPAIRS_PER_NODE]
        # A target without room for the whole blob would take part of it and refuse
        # the rest, and the copy would be tried again at every tick. One still due to
        # delete its old (corrupt) copy would delete the new one with it: the order
        # is given again until a report says the old copy is gone.
        targets = [
            a
            for a in state.place(len(state.nodes), now, rng, frozenset(replicas[blob_id].nodes))
            if busy.get(a, 0) < MAX_REPAIRS_PER_NODE
            and state.nodes[a].has_room_for(replicas[blob_id].size)
            and blob_id not in state.nodes[a].to_delete
        ]
        if not sources or not targets:
            continue
        repair = Repair(blob_id, rng.choice(sources), targets[0])
        busy[repair.source] = busy.get(repair.source, 0) + 1
        busy[repair.target] = busy.get(repair.target, 0) + 1
        repairs.append(repair)
    return repairs
