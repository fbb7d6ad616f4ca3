"""What the copies a datanode reports mean to the master (pure: no I/O, no clock).

Theory of operation
-------------------
A `Judge` looks at one copy a node says it holds, whether the copy arrives in a full
block report or as an `added` entry of a heartbeat's delta, and decides by the same rules:

* a blob the index does not know is deleted only if the index retired it (a deleted video,
  an aborted upload); otherwise it is an orphan, kept, because the index that does not
  know it may be the one that is wrong (a fresh, lost or restored data directory);
* a listed copy of the wrong size is damaged: forgotten and deleted, repair re-makes it;
* a listed copy beyond `replication` live ones is surplus: holders are ranked the same way
  whoever reports, so exactly the surplus goes, on whichever node it is (`shed`). The rank
  keeps the copies on the nodes that joined longest ago: the surplus is on the node that
  came back most recently, never the copy just made to heal while it was away, so a node
  that flaps loses its own stale copy each time instead of making the cluster rewrite
  and delete fresh ones. A holder not heard from since the master started counts as a
  copy (it may be on its way back) but proves none: while one is among them, no copy is
  judged surplus; its own full report, once it registers, judges again;
* an unlisted copy counts again while its blob lacks copies, and is deleted once it has
  enough on nodes that registered since start-up; a copy still being written
  (`in_flight`) is left alone.

ClusterState (state.py) adds what needs the whole picture: a full report's listed copies
the node no longer holds, a delta's removed and corrupt entries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from myyoutube.master.state import Replica


@dataclass(frozen=True)
class Reconciliation:
    delete: list[str]  # blobs this node should delete
    counts_again: list[str]  # valid copies the index did not list on this node
    forget: list[str]  # blobs the index must stop listing on this node
    orphans: list[str] = field(default_factory=list)  # blobs the index never knew: kept
    shed: list[tuple[str, str]] = field(default_factory=list)  # (node, blob): surplus copies elsewhere
    # Listed here, missing from a full report, but added too recently to call lost: the
    # report may have been taken before the copy landed. Looked at again at later deltas.
    recheck: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class IndexView:
    """What block reports are judged against."""

    replicas: dict[str, Replica]  # blob -> what the index knows of it
    retired: set[str]  # blob ids the index owned and gave up: the only unknown ones it may delete
    in_flight: set[str]  # blobs being written (uploads and repair copies)
    replication: int  # copies wanted of every blob


class LiveNodes(dict):
    """address -> whether it counts as a copy now, each worked out once: a full report
    judges up to MAX_REPORT_BLOBS copies, on a handful of nodes."""

    def __init__(self, live: Callable[[str], bool]) -> None:
        super().__init__()
        self._live = live

    def __missing__(self, address: str) -> bool:
        live = self[address] = self._live(address)
        return live


class Judge:
    """Judges the copies one node reports holding, by the same rules whether they come in
    a full report or a delta, into `decision` (whose lists come out sorted by blob id)."""

    def __init__(
        self,
        address: str,
        index: IndexView,
        live: Callable[[str], bool],
        joined_at: Callable[[str], float | None],
    ) -> None:
        self.address, self.replicas, self.retired = address, index.replicas, index.retired
        self.in_flight, self.replication = index.in_flight, index.replication
        self.live = LiveNodes(live)
        self.joined_at = joined_at
        self.decision = Reconciliation([], [], [])

    def copy(self, blob_id: str, size: int) -> None:
        """What one copy of `size` bytes on the node means."""
        decision, address, replication = self.decision, self.address, self.replication
        replica = self.replicas.get(blob_id)
        if replica is None:
            if blob_id in self.retired:
                decision.delete.append(blob_id)  # deleted video or failed upload
            elif blob_id not in self.in_flight:
                decision.orphans.append(blob_id)  # not ours to judge: kept
            return
        if address in replica.nodes:
            if size != replica.size:
                # A copy of the wrong size is damaged: drop it, repair re-makes it.
                decision.delete.append(blob_id)
                decision.forget.append(blob_id)
            elif len(replica.nodes) > replication:
                self._shed_surplus(blob_id, replica)
        elif blob_id in self.in_flight:
            return  # a repair copy still being written here
        elif size != replica.size or self._proven_copies(replica) >= replication:
            decision.delete.append(blob_id)  # wrong size, or not needed any more
        else:
            decision.counts_again.append(blob_id)

    def _proven_copies(self, replica: Replica) -> int:
        """Listed copies on live nodes that registered since start-up. One not heard from
        yet counts as a copy (it may be on its way back) but is no reason to delete a real
        copy elsewhere: an unlisted copy is kept (counted again) while the others are
        unproven, and any surplus is shed once they have registered."""
        return sum(self.live[a] and self.joined_at(a) is not None for a in replica.nodes)

    def _shed_surplus(self, blob_id: str, replica: Replica) -> None:
        """Surplus, e.g. a node back from the dead after its copies were re-made. Holders
        are ranked the same way for every report so exactly the surplus goes, wherever it
        is: the other holders may not send a full report for hours."""
        holders = [a for a in replica.nodes if self.live[a]]
        joined = {holder: self.joined_at(holder) for holder in holders}
        if len(holders) <= self.replication or None in joined.values():
            # A holder not registered since start-up is no proof of a copy. Ranked first
            # (as if it had joined at start-up), it made registered nodes delete their
            # copies: with replication lowered across a restart (myyoutube-cluster
            # --datanodes 2 after 3), one live copy was left beside one on a node that
            # was not coming back.
            return
        staying = sorted(holders, key=lambda a: (joined[a], a))
        for holder in staying[self.replication :]:
            if holder == self.address:
                self.decision.delete.append(blob_id)
                self.decision.forget.append(blob_id)
            else:
                self.decision.shed.append((holder, blob_id))

    def finished(self) -> Reconciliation:
        decision = self.decision
        for decided in (decision.delete, decision.counts_again, decision.forget, decision.orphans):
            decided.sort()
        decision.shed.sort(key=lambda pair: (pair[1], pair[0]))
        decision.recheck.sort()
        return decision
