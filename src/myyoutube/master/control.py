"""The master's side of a datanode's control connection: registration, heartbeats, block reports.

Theory of operation
-------------------
`Register` opens a datanode's control connection; heartbeats follow on it for as long
as the node lives, and full block reports in chunks when due (see reports.py). Each
frame updates `ClusterState` and is answered with `Commands`: blobs to delete (decided
by `ClusterState.reconcile` for a full report and `reconcile_delta` for a heartbeat's
changes), the last report applied, and whether a full report is wanted. The answer also
carries the node's transcode jobs (transcoding.py) and the sidecars due to it
(sidecars.py).

What a report means is carried out here: replicas that count again or are gone, surplus
copies shed, and the deletions ordered. Blobs the index retired since the last answer
are deleted from every node that reported them. Blobs a node holds that the index never
knew are orphans: remembered per node (shown on /status) and kept until an operator's
`PurgeOrphans` retires them. Decisions live in state.py; this module only carries them out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from myyoutube import protocol
from myyoutube.formatting import agreeing, counted
from myyoutube.master import reports
from myyoutube.master.state import IndexView, Node, Reconciliation
from myyoutube.protocol import BlockReportChunk, Commands, Heartbeat, Ok, PurgeOrphans, Register
from myyoutube.stream import FrameStream

if TYPE_CHECKING:
    from myyoutube.master.server import Master

log = logging.getLogger(__name__)


class Control:
    def __init__(self, master: Master) -> None:
        self.master = master
        self.index = master.index
        self.state = master.state
        self.orphans: dict[str, set[str]] = {}  # node -> blobs it holds that the index never knew
        self.told_index_empty = False  # the one log line saying how to recover was written

    def handlers(self) -> dict[type, Callable[[FrameStream, Any], Awaitable[None]]]:
        return {
            Register: self._control,
            PurgeOrphans: self._purge_orphans,
        }

    async def _control(self, connection: FrameStream, register: Register) -> None:
        address = register.address
        moved_from = self.index.node_moved(register.node_id, address, time.time())
        if moved_from is not None:
            # Same node (same data directory), new address: its replicas moved with it;
            # the old address is nobody now.
            self._forget_address(moved_from, address)
            log.warning(
                "datanode %s moved from %s to %s; its replicas follow it",
                register.node_id,
                moved_from,
                address,
            )
        node = self.state.registered(
            address, register.incarnation, time.time(), register.capacity_bytes, register.used_bytes
        )
        log.info(
            "datanode %s registered (%s)",
            address,
            "full block report wanted" if node.reports.full_wanted else "goes on with its reports",
        )
        new_jobs: list[dict] = []
        cancels: list[str] = []
        while True:
            self._order_retired_deletes()
            await connection.write_frame(
                Commands(
                    delete_blobs=self.state.deletes_due(address, protocol.REPORT_CHUNK_ENTRIES),
                    acked_seq=node.reports.applied_seq,
                    full_report=node.reports.asks_full_report,
                    heartbeat_s=self.state.heartbeat_s,
                    transcode_jobs=new_jobs,
                    cancel_jobs=cancels,
                    sidecars=self.master.sidecars.due(address),
                    upload_expiry_s=self.master.resumable.expiry_s,
                    read_key=self.master.read_key,
                )
            )
            report = await connection.read_expected(
                Heartbeat, BlockReportChunk, timeout=self.state.dead_after_s
            )
            if self._moved_away(address, node, register.node_id):
                await connection.close()  # the node sees the link end at once
                return
            self.master.sidecars.acked(address)  # a datanode obeys an answer before it speaks again
            self._heard(address, report)
            new_jobs, cancels = [], []
            if isinstance(report, Heartbeat):
                new_jobs, cancels = self.master.transcoding.on_heartbeat(address, report, time.time())

    def _forget_address(self, old: str, new: str) -> None:
        """Keep nothing under the address a node left (a node given a new address at every
        restart, as containers are, would leave an entry in each of these every time); the
        sidecars still due to it go to the new one, and its orphans are listed again by its
        full report from there."""
        self.state.forget(old)
        self.orphans.pop(old, None)
        self.master.transcoding.slots.pop(old, None)
        self.master.sidecars.moved(old, new)

    def _moved_away(self, address: str, node: Node, node_id: str) -> bool:
        """Whether this node's id registered from another address since its link opened
        (a copy of its data directory started elsewhere), taking its replicas there. Its
        link is then ended: the node registers again, which brings them back if it is the
        one still running, instead of sending heartbeats the master can no longer apply."""
        if self.state.nodes.get(address) is node:
            return False
        log.warning(
            "datanode %s: its node id %s registered from another address; closing its link "
            "so that it registers again",
            address,
            node_id,
        )
        return True

    def _heard(self, address: str, report: Heartbeat | BlockReportChunk) -> None:
        """Record a heartbeat or a chunk of a full report and act on what it means."""
        now, state = time.time(), self.state
        index = IndexView(
            self.index.replicas, self.index.ownership.retired, self.master.in_flight, self.master.replication
        )
        if isinstance(report, BlockReportChunk):
            decision = state.add_report_chunk(address, report, index, now)
            if decision is not None:
                log.info("datanode %s sent a full report of %d blobs", address, report.total)
                self.orphans.pop(address, None)
                self._reconcile(address, decision)
            return
        state.heard_from(address, now, report.capacity_bytes, report.used_bytes)
        delta = reports.delta_of(report)
        decision = state.apply_delta(address, delta, index, now)
        if decision is None:
            log.warning(
                "datanode %s: report %d does not follow what this master applied; asking for a full report",
                address,
                delta.seq,
            )
            return
        for blob_id in delta.corrupt:
            log.error("datanode %s reports blob %s corrupt; repairing", address, blob_id)
        self.orphans.get(address, set()).difference_update(delta.removed)
        self._reconcile(address, decision)

    def _reconcile(self, address: str, decision: Reconciliation) -> None:
        """Carry out what a block report means for the index and the node's deletions."""
        now = time.time()
        self._note_orphans(address, decision.orphans)
        for blob_id in decision.counts_again:
            self.index.add_replica(blob_id, address, now)
        for blob_id in decision.forget:
            log.warning("replica of %s on %s is gone or surplus", blob_id, address)
            self.index.remove_replica(blob_id, address)
        for holder, blob_id in decision.shed:
            log.info("replica of %s on %s is surplus", blob_id, holder)
            self.index.remove_replica(blob_id, holder)
            self.state.order_deletes(holder, [blob_id])
        self.state.order_deletes(address, decision.delete)

    def _order_retired_deletes(self) -> None:
        """Blobs the index gave up since last time go from every node that reported them."""
        retired = self.index.ownership.take_newly_retired()
        if retired:
            self.state.blobs_retired(retired)
            for orphans in self.orphans.values():
                orphans.difference_update(retired)

    def _note_orphans(self, address: str, orphans: list[str]) -> None:
        """Remember the blobs this node holds that the index never knew (shown on /status,
        purged only on an operator's word), and say once when a node starts holding some."""
        if orphans and not self.index.videos and not self.told_index_empty:
            self.told_index_empty = True
            log.warning(
                "this master's index is empty, but datanode %s holds %s it does not know (others "
                "may too); nothing is deleted. If the data directory was lost, stop this master and "
                "start it with --recover on an empty --data-dir to rebuild the catalogue from the "
                "datanodes (`myyoutube-cluster --recover` for a cluster that command runs), or with "
                "--restore FILE from a backup",
                address,
                counted(len(orphans), "blob"),
            )
        elif orphans and not self.orphans.get(address) and self.index.videos:
            log.warning(
                "datanode %s holds %s this index does not know; %s kept. If this "
                "master's data directory was lost or replaced, restore its index before "
                "uploading; if they are truly garbage, `myyoutube admin purge-orphans` deletes them",
                address,
                counted(len(orphans), "blob"),
                agreeing(len(orphans), "it is", "they are"),
            )
        if orphans:
            self.orphans.setdefault(address, set()).update(orphans)

    async def _purge_orphans(self, connection: FrameStream, request: PurgeOrphans) -> None:
        """An operator's word that the unknown blobs are garbage: retire them, so each
        holder deletes its copy at its next heartbeat."""
        if not await self.master.admin_only(connection, request.user):
            return
        unknown = set().union(*self.orphans.values()) - self.master.in_flight
        purged = self.index.ownership.retire_orphans(sorted(unknown), time.time())
        log.warning("purging %d orphaned blobs at the request of %s", len(purged), request.user)
        await connection.write_frame(Ok({"purged": len(purged)}))
