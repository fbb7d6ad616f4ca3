"""The master's decisions, as pure functions of (state, event, now): no I/O, no clock.

Theory of operation
-------------------
`ClusterState` is the datanode registry: who registered, when each was last heard from,
their space and their block reports. Time is always passed in as `now`, so liveness is a
function: a node is ALIVE until `suspect_after_s` of silence, SUSPECT (still read from,
given no new replicas) until `dead_after_s`, then DEAD (neither). A node the master has
never heard from since it started is UNKNOWN: after a master restart we neither place on
it nor give up on its replicas until it has had `dead_after_s` to reconnect.

From the registry and the replica map (blob -> nodes holding it) the state decides:

* `place`: which distinct live nodes receive a new blob (random among those with room).
* `reconcile`: what a node's block report means: copies to delete (blobs the index
  retired, surplus copies), copies that count again, replicas the index believed in but
  that are gone, and orphans: blobs the index has never heard of. An orphan is never
  deleted here, because the index that does not know it may be the one that is wrong (a
  fresh, lost or restored data directory); only an operator's purge retires orphans.
* `plan_repairs`: which under-replicated blobs to copy where, fewest live copies first,
  with a bound on concurrent copies per node so repair never starves viewers.

The asyncio server feeds events in and carries the decisions out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

ALIVE, SUSPECT, DEAD, UNKNOWN = "alive", "suspect", "dead", "unknown"

# A node is suspect after missing this many heartbeats' worth of time (HDFS calls it
# stale): reads prefer other replicas and it gets no new ones, but nothing is re-copied.
SUSPECT_AFTER_HEARTBEATS = 3

# Repair copies at once per node, outgoing or incoming. HDFS uses 2: enough to heal a dead
# node's data in parallel, little enough that viewers keep most of the disk.
MAX_REPAIRS_PER_NODE = 2

# A replica committed or copied this recently may be missing from a block report that was
# taken before it landed; don't call it lost until reports this many heartbeats younger.
REPORT_GRACE_HEARTBEATS = 3

# A node a read just failed on (error, stall) is tried last for this long: long enough
# that new viewers stop landing on a partitioned node before it is declared dead, short
# enough that a node back from a blip soon takes its share of reads again.
READ_FAILURE_MEMORY_S = 30.0

# A node with less free space than this gets no new replicas: an upload's size is not
# known in advance, and a disk filled to the last byte helps nobody.
MIN_FREE_BYTES = 64 * 1024 * 1024


@dataclass
class Node:
    address: str
    last_seen: float
    capacity_bytes: int = 0
    used_bytes: int = 0
    blobs: dict[str, int] = field(default_factory=dict)
    registered: bool = False  # has spoken to this master since it started

    @property
    def free_bytes(self) -> int:
        return max(0, self.capacity_bytes - self.used_bytes)


@dataclass(frozen=True)
class Replica:
    """What the index knows of a blob: its size and the nodes said to hold it."""

    size: int
    sha256: str
    nodes: dict[str, float]  # node address -> when the copy was added (master clock)


@dataclass(frozen=True)
class Reconciliation:
    delete: list[str]  # blobs this node should delete
    counts_again: list[str]  # valid copies the index did not list on this node
    forget: list[str]  # blobs the index must stop listing on this node
    orphans: list[str] = field(default_factory=list)  # blobs the index never knew: kept


@dataclass(frozen=True)
class Repair:
    blob_id: str
    source: str
    target: str


class ClusterState:
    def __init__(self, dead_after_s: float, heartbeat_s: float, started_at: float) -> None:
        self.dead_after_s = dead_after_s
        self.suspect_after_s = min(dead_after_s, SUSPECT_AFTER_HEARTBEATS * heartbeat_s)
        self.report_grace_s = REPORT_GRACE_HEARTBEATS * heartbeat_s
        self.started_at = started_at
        self.nodes: dict[str, Node] = {}
        self.read_failed_at: dict[str, float] = {}  # node -> when a read from it last failed

    # --- events -------------------------------------------------------------------------

    def heard_from(
        self, address: str, now: float, capacity_bytes: int, used_bytes: int, blobs: dict[str, int]
    ) -> Node:
        """A Register or Heartbeat arrived from `address`."""
        node = self.nodes.setdefault(address, Node(address, now))
        node.last_seen, node.registered = now, True
        node.capacity_bytes, node.used_bytes, node.blobs = capacity_bytes, used_bytes, blobs
        return node

    # --- liveness -------------------------------------------------------------------------

    def liveness(self, address: str, now: float) -> str:
        node = self.nodes.get(address)
        if node is None or not node.registered:
            # Never heard from since start-up: give it dead_after_s to come back.
            return UNKNOWN if now - self.started_at < self.dead_after_s else DEAD
        silence = now - node.last_seen
        if silence < self.suspect_after_s:
            return ALIVE
        return SUSPECT if silence < self.dead_after_s else DEAD

    def live(self, address: str, now: float) -> bool:
        """Counts as a copy: not declared dead (unknown nodes get the benefit of doubt)."""
        return self.liveness(address, now) != DEAD

    def alive_count(self, now: float) -> int:
        return sum(self.liveness(address, now) == ALIVE for address in self.nodes)

    def read_failed(self, address: str, now: float) -> None:
        """A read from `address` failed or stalled: route new reads elsewhere for a while."""
        self.read_failed_at[address] = now

    def _recently_failed(self, address: str, now: float) -> bool:
        # One entry per node ever failed: bounded by the registry, so never pruned.
        failed_at = self.read_failed_at.get(address)
        return failed_at is not None and now - failed_at < READ_FAILURE_MEMORY_S

    def read_order(self, holders, now: float, rng: random.Random) -> list[str]:
        """Nodes to read a blob from: alive ones that have not failed a read recently
        first (random order, to spread the load), then alive ones that have, then suspect
        ones. Dead and unknown nodes are left out."""
        rank = {ALIVE: 0, SUSPECT: 2}
        usable = [a for a in holders if self.liveness(a, now) in rank]
        rng.shuffle(usable)
        return sorted(usable, key=lambda a: rank[self.liveness(a, now)] + self._recently_failed(a, now))

    def awaiting_holders(self, holders, now: float) -> bool:
        """Some holder has not spoken to this master since it started but may still (the
        master restarted moments ago): worth waiting a little before refusing a read."""
        return any(self.liveness(a, now) == UNKNOWN for a in holders)

    # --- placement ------------------------------------------------------------------------

    def place(
        self, count: int, now: float, rng: random.Random, exclude: frozenset[str] = frozenset()
    ) -> list[str]:
        """Up to `count` distinct alive nodes with room, chosen at random."""
        candidates = sorted(
            address
            for address, node in self.nodes.items()
            if address not in exclude
            and self.liveness(address, now) == ALIVE
            and node.free_bytes >= MIN_FREE_BYTES
        )
        return rng.sample(candidates, min(count, len(candidates)))

    # --- block reports --------------------------------------------------------------------

    def reconcile(
        self,
        address: str,
        report: dict[str, int],
        replicas: dict[str, Replica],
        retired: set[str],
        in_flight: set[str],
        replication: int,
        now: float,
    ) -> Reconciliation:
        """Compare a node's block report with the index (`retired`: blob ids the index
        owned and gave up, the only unknown blobs it may delete)."""
        delete: list[str] = []
        counts_again: list[str] = []
        forget: list[str] = []
        orphans: list[str] = []
        for blob_id, size in sorted(report.items()):
            replica = replicas.get(blob_id)
            if replica is None:
                if blob_id in retired:
                    delete.append(blob_id)  # deleted video or failed upload
                elif blob_id not in in_flight:
                    orphans.append(blob_id)  # not ours to judge: kept
                continue
            live_holders = sorted(a for a in replica.nodes if self.live(a, now))
            if address in replica.nodes:
                # Surplus, e.g. a node back from the dead after its copies were re-made.
                # Rank holders the same way for every report so exactly the surplus goes.
                # A copy of the wrong size is damaged: drop it too, repair re-makes it.
                if address in live_holders[replication:] or size != replica.size:
                    delete.append(blob_id)
                    forget.append(blob_id)
            elif blob_id in in_flight:
                continue  # a repair copy still being written here
            elif size != replica.size or len(live_holders) >= replication:
                delete.append(blob_id)  # wrong size, or not needed any more
            else:
                counts_again.append(blob_id)
        for blob_id, replica in sorted(replicas.items()):
            added_at = replica.nodes.get(address)
            if added_at is not None and blob_id not in report and now - added_at > self.report_grace_s:
                forget.append(blob_id)  # the index believed in a copy the disk does not hold
        return Reconciliation(delete, counts_again, forget, orphans)

    # --- repair ---------------------------------------------------------------------------

    def plan_repairs(
        self,
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
            holders = [a for a in replica.nodes if self.liveness(a, now) == ALIVE]
            live_copies = sum(self.live(a, now) for a in replica.nodes)
            if blob_id not in repairing and holders and live_copies < replication:
                needy.append((live_copies, blob_id, holders))
        repairs = []
        for _, blob_id, holders in sorted(needy):
            sources = [a for a in holders if busy.get(a, 0) < MAX_REPAIRS_PER_NODE]
            targets = [
                a
                for a in self.place(len(self.nodes), now, rng, frozenset(replicas[blob_id].nodes))
                if busy.get(a, 0) < MAX_REPAIRS_PER_NODE
            ]
            if not sources or not targets:
                continue
            repair = Repair(blob_id, rng.choice(sources), targets[0])
            busy[repair.source] = busy.get(repair.source, 0) + 1
            busy[repair.target] = busy.get(repair.target, 0) + 1
            repairs.append(repair)
        return repairs
