"""The master's decisions, as pure functions of (state, event, now): no I/O, no clock.

Theory of operation
-------------------
`ClusterState` is the datanode registry: who registered, when each was last heard from,
their space, what their block reports say they hold (reports.py: how full reports and
deltas arrive) and the deletions to order at their next heartbeat. Time is always passed
in as `now`, so liveness is a function: a node is ALIVE until `suspect_after_s` of
silence, SUSPECT (still read from, given no new replicas) until `dead_after_s`, then DEAD
(neither). A node the master has never heard from since it started is UNKNOWN: after a
master restart we neither place on it nor give up on its replicas until it has had
`dead_after_s` to reconnect.

From the registry and the replica map (blob -> nodes holding it) the state decides:

* `place`: which distinct live nodes receive a new blob (random among those with room).
* `reconcile`: what a node's full block report means: each copy judged by the rules of
  reconciliation.py (delete what the index retired or is surplus, here or on another
  holder; count valid copies again; keep orphans, blobs the index never knew), and the
  replicas the index believed in that the disk no longer holds forgotten.
  `reconcile_delta` judges a heartbeat's changes by the same rules in time proportional
  to the change: only a full report or a `removed` entry makes the index forget a replica.
* `blobs_retired`, `deletes_due`: a blob the index gave up is deleted from every node that
  reported it, ordered at each one's heartbeats until a report says it is gone (a delta
  never mentions a blob that did not change on the disk).

Which under-replicated blobs to copy where is decided from the same registry in
repair_plan.py.

The asyncio server feeds events in and carries the decisions out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from myyoutube.master.reconciliation import IndexView, Judge, Reconciliation
from myyoutube.master.reports import Delta, ReportLedger
from myyoutube.protocol import BlockReportChunk
from myyoutube.read_failures import RecentFailures

ALIVE, SUSPECT, DEAD, UNKNOWN = "alive", "suspect", "dead", "unknown"

# A node is suspect after missing this many heartbeats' worth of time (HDFS calls it
# stale): reads prefer other replicas and it gets no new ones, but nothing is re-copied.
SUSPECT_AFTER_HEARTBEATS = 3

# A replica committed or copied this recently may be missing from a block report that was
# taken before it landed; don't call it lost until reports this many heartbeats younger.
REPORT_GRACE_HEARTBEATS = 3

# A node with less free space than this gets no new replicas: an upload's size is not
# known in advance, and a disk filled to the last byte helps nobody.
MIN_FREE_BYTES = 64 * 1024 * 1024


@dataclass
class Node:
    address: str
    last_seen: float
    capacity_bytes: int = 0
    used_bytes: int = 0
    blobs: dict[str, int] = field(default_factory=dict)  # what its reports say it holds
    registered: bool = False  # has spoken to this master since it started
    joined_at: float = 0.0  # its latest registration: surplus copies go from the latest to join
    reports: ReportLedger = field(default_factory=ReportLedger)
    to_delete: dict[str, None] = field(default_factory=dict)  # deletions ordered, oldest first
    recheck: set[str] = field(default_factory=set)  # see Reconciliation.recheck

    @property
    def free_bytes(self) -> int:
        return max(0, self.capacity_bytes - self.used_bytes)

    @property
    def room_steps(self) -> int:
        """Free space in whole MIN_FREE_BYTES: what repair planning judges room by. Coarse
        on purpose: it changes far less often than free_bytes, so the repair signature
        (which holds it) stays put while a node's space only drifts."""
        return self.free_bytes // MIN_FREE_BYTES

    def has_room_for(self, size: int) -> bool:
        """Room for a copy of `size` bytes, free space rounded down to whole steps."""
        return self.room_steps * MIN_FREE_BYTES >= size


@dataclass(frozen=True)
class Replica:
    """What the index knows of a blob: its size and the nodes said to hold it."""

    size: int
    sha256: str
    nodes: dict[str, float]  # node address -> when the copy was added (master clock)


# What `replicas.get` stands in with for a blob the index does not list anywhere.
_UNLISTED = Replica(size=-1, sha256="", nodes={})


# A holder's rank in a read order by its liveness (see ClusterState._read_rank); a node
# in neither state is not read from.
_READ_RANK_BY_LIVENESS = {ALIVE: 0, SUSPECT: 2}
_BEST_READ_RANK = 0


class ClusterState:
    def __init__(self, dead_after_s: float, heartbeat_s: float, started_at: float) -> None:
        self.dead_after_s = dead_after_s
        self.heartbeat_s = heartbeat_s  # the cluster's interval, told to every datanode
        self.suspect_after_s = min(dead_after_s, SUSPECT_AFTER_HEARTBEATS * heartbeat_s)
        self.report_grace_s = REPORT_GRACE_HEARTBEATS * heartbeat_s
        self.started_at = started_at
        self.nodes: dict[str, Node] = {}
        self.read_failures = RecentFailures()  # nodes to try last for a while

    # --- events -------------------------------------------------------------------------

    def heard_from(self, address: str, now: float, capacity_bytes: int, used_bytes: int) -> Node:
        """A Register or Heartbeat arrived from `address`."""
        node = self.seen(address, now)
        node.capacity_bytes, node.used_bytes = capacity_bytes, used_bytes
        return node

    def seen(self, address: str, now: float) -> Node:
        """Any frame arrived from `address`: it is alive."""
        node = self.nodes.setdefault(address, Node(address, now))
        node.last_seen, node.registered = now, True
        return node

    def registered(
        self, address: str, incarnation: str, now: float, capacity_bytes: int, used_bytes: int
    ) -> Node:
        """A Register arrived: a new control connection from `address`."""
        node = self.nodes.get(address)
        was_dead = node is not None and node.registered and self.liveness(address, now) == DEAD
        node = self.heard_from(address, now, capacity_bytes, used_bytes)
        node.reports.registered(incarnation, was_dead)
        node.joined_at = now
        return node

    def forget(self, address: str) -> None:
        """Nobody is at `address` any more (its node registered from another)."""
        self.nodes.pop(address, None)
        self.read_failures.forget(address)

    def joined_at(self, address: str) -> float | None:
        """When `address` last registered; None for one that has not since start-up."""
        node = self.nodes.get(address)
        return node.joined_at if node is not None and node.registered else None

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
        self.read_failures.failed(address, now)

    def read_order(self, holders, now: float, rng: random.Random) -> list[str]:
        """Nodes to read a blob from: alive ones that have not failed a read recently
        first (random order, to spread the load), then alive ones that have, then suspect
        ones. Dead and unknown nodes are left out."""
        ranks = {address: rank for address in holders if (rank := self._read_rank(address, now)) is not None}
        usable = list(ranks)
        rng.shuffle(usable)
        return sorted(usable, key=ranks.__getitem__)

    def healthy_first(self, ordered: list[str], now: float) -> int:
        """How many of `ordered` (read_order's answer) lead it as equally good: alive and
        not failed a read lately (the best rank). A reader may spread its reads over those."""
        count = 0
        for address in ordered:
            if self._read_rank(address, now) != _BEST_READ_RANK:
                break
            count += 1
        return count

    def _read_rank(self, address: str, now: float) -> int | None:
        """Where a holder goes in a read order, lower first: alive 0, suspect 2, each 1
        more after a recent read failure; None for a node not to read from (dead,
        unknown)."""
        base = _READ_RANK_BY_LIVENESS.get(self.liveness(address, now))
        return None if base is None else base + self.read_failures.recently(address, now)

    def awaiting_holders(self, holders, now: float) -> bool:
        """Some holder has not spoken to this master since it started but may still (the
        master restarted moments ago): worth waiting a little before refusing a read."""
        return any(self.liveness(a, now) == UNKNOWN for a in holders)

    def awaiting_datanodes(self, wanted: int, now: float) -> bool:
        """Fewer than `wanted` datanodes are alive, but the master started moments ago
        (less than dead_after_s, while nodes not heard from yet are UNKNOWN) and those
        running may still be re-registering: worth waiting a little before placing an
        upload on fewer nodes, or refusing it for want of them."""
        return now - self.started_at < self.dead_after_s and self.alive_count(now) < wanted

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
        index: IndexView,
        now: float,
    ) -> Reconciliation:
        """Compare a node's full block report with the index."""
        judge = Judge(address, index, lambda holder: self.live(holder, now), self.joined_at)
        for blob_id, size in report.items():
            judge.copy(blob_id, size)
        decision = judge.decision
        for blob_id, replica in index.replicas.items():
            added_at = replica.nodes.get(address)
            if added_at is None or blob_id in report:
                continue
            if now - added_at > self.report_grace_s:
                decision.forget.append(blob_id)  # the index believed in a copy the disk does not hold
            else:
                decision.recheck.append(blob_id)
        return judge.finished()

    def reconcile_delta(
        self,
        address: str,
        delta: Delta,
        index: IndexView,
        now: float,
    ) -> Reconciliation:
        """Judge what changed on a node's disk, in time proportional to the change."""
        judge = Judge(address, index, lambda holder: self.live(holder, now), self.joined_at)
        decision, corrupt = judge.decision, set(delta.corrupt)
        for blob_id in set(delta.removed):
            if address in index.replicas.get(blob_id, _UNLISTED).nodes:
                decision.forget.append(blob_id)  # the node says so: no grace needed
        for blob_id, size in delta.added.items():
            if blob_id not in corrupt:
                judge.copy(blob_id, size)
        for blob_id in corrupt:
            replica = index.replicas.get(blob_id)
            if replica is not None:
                # Unreadable here: stop reading from it, delete it, repair re-makes it.
                if address in replica.nodes:
                    decision.forget.append(blob_id)
                decision.delete.append(blob_id)
            elif blob_id in index.retired:
                decision.delete.append(blob_id)
            elif blob_id not in index.in_flight:
                decision.orphans.append(blob_id)  # not ours to judge, rotten or not
        return judge.finished()

    def add_report_chunk(
        self,
        address: str,
        chunk: BlockReportChunk,
        index: IndexView,
        now: float,
    ) -> Reconciliation | None:
        """Take a chunk of a node's full report; once it is complete, record it as what
        the node holds and return its reconciliation."""
        node = self.seen(address, now)
        report = node.reports.add_chunk(chunk)
        if report is None:
            return None
        decision = self.reconcile(address, report, index, now)
        node.blobs, node.recheck = report, set(decision.recheck)
        node.reports.full_applied(chunk.seq)
        return decision

    def apply_delta(
        self,
        address: str,
        delta: Delta,
        index: IndexView,
        now: float,
    ) -> Reconciliation | None:
        """Take a heartbeat's delta: its reconciliation, or None if it does not follow
        the reports applied so far (a full report is then asked for instead)."""
        node = self.nodes[address]
        if not node.reports.delta_fits(delta):
            return None
        decision = self.reconcile_delta(address, delta, index, now)
        for blob_id in delta.removed:
            node.blobs.pop(blob_id, None)
        node.blobs.update(delta.added)
        node.reports.delta_applied(delta)
        for blob_id in sorted(node.recheck):
            added_at = index.replicas.get(blob_id, _UNLISTED).nodes.get(address)
            if blob_id in node.blobs or added_at is None:
                node.recheck.discard(blob_id)  # it turned up, or is no longer listed here
            elif now - added_at > self.report_grace_s:
                node.recheck.discard(blob_id)
                if blob_id not in decision.forget:
                    decision.forget.append(blob_id)
        return decision

    # --- deletions --------------------------------------------------------------------------

    def order_deletes(self, address: str, blob_ids) -> None:
        """Queue deletions for `address` (kept across reconnections)."""
        node = self.nodes.get(address)
        if node is not None:
            node.to_delete.update(dict.fromkeys(blob_ids))

    def deletes_due(self, address: str, limit: int) -> list[str]:
        """The deletions to order in the next Commands: up to `limit` queued blobs the node
        still reports holding, oldest first. Each stays queued until a report says it is
        gone, so an order lost with a connection is given again; none are given in the
        middle of a full report, which may predate the deletions."""
        node = self.nodes[address]
        if node.reports.assembly is not None:
            return []
        queue = node.to_delete
        due: list[str] = []
        gone: list[str] = []
        for blob_id in queue:
            if blob_id not in node.blobs:
                gone.append(blob_id)  # as the node reported
            elif len(due) < limit:
                due.append(blob_id)
            else:
                break
        for blob_id in gone:
            del queue[blob_id]
        return due

    def blobs_retired(self, blob_ids) -> None:
        """The index gave these blobs up: every node that reported one deletes it."""
        for node in self.nodes.values():
            held = [blob_id for blob_id in blob_ids if blob_id in node.blobs]
            self.order_deletes(node.address, held)
