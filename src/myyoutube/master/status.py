"""What the master tells about itself: counters and the cluster report for /api/status."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from myyoutube.master.server import Master


@dataclass
class Counters:
    uploads: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    active_streams: int = 0
    read_failovers: int = 0
    # Reads the web makes from the datanodes itself (LocateVideo answered); their bytes
    # are not in bytes_out.
    reads_located: int = 0
    repairs: int = 0
    # Connections accepted from the web and datanodes: with pooling it grows with
    # concurrency, not with requests (the report adds those opened to datanodes).
    connections_accepted: int = 0


# What each counter counts, for /metrics' help lines: "bytes_out 0" after hours of
# viewing reads as broken unless one knows the web reads from the datanodes itself.
COUNTER_HELP = {
    "uploads": "Videos uploaded through the master since it started",
    "bytes_in": "Bytes uploaded through the master since it started",
    "bytes_out": "Bytes the master relayed to readers since it started (most reads go from the "
    "datanodes to the web directly: see reads_located)",
    "active_streams": "Reads the master is relaying now",
    "read_failovers": "Reads that failed on a datanode and moved on to another replica "
    "(the master's own, and those the web reported)",
    "reads_located": "Reads the web started from the datanodes itself, with the master's grant",
    "repairs": "Copies made to restore a video's replication since the master started",
    "connections_accepted": "Connections the master accepted (from web front ends and datanodes)",
}


def cluster_report(master: Master, now: float) -> dict:
    """Every datanode with its liveness and space, replication health, and totals."""
    state, index = master.state, master.index
    holders: dict[str, int] = {}
    for replica in index.replicas.values():
        for node in replica.nodes:
            holders[node] = holders.get(node, 0) + 1
    datanodes = [
        {
            "address": node.address,
            "state": state.liveness(node.address, now),
            "last_heartbeat_s_ago": round(now - node.last_seen, 1) if node.registered else None,
            "capacity_bytes": node.capacity_bytes,
            "used_bytes": node.used_bytes,
            "free_bytes": node.free_bytes,
            "replicas": holders.get(node.address, 0),
            "orphans": len(master.control.orphans.get(node.address, ())),
            # Block reports applied from the running datanode process: full ones, and the
            # sequence number of the last report of any kind (it grows with every heartbeat).
            "full_reports": node.reports.full_reports,
            "report_seq": node.reports.applied_seq,
        }
        for node in sorted(state.nodes.values(), key=lambda n: n.address)
    ]
    under = []
    for name, video in sorted(index.videos.items()):
        replica = index.replicas[video["blob_id"]]
        live = sum(state.live(node, now) for node in replica.nodes)
        if live < master.replication:
            under.append(
                {"name": name, "live_replicas": live, "repairing": video["blob_id"] in master.repairs}
            )
    return {
        "datanodes": datanodes,
        "replication": master.replication,
        "videos": len(index.videos),
        "stored_bytes": sum(v["size"] for v in index.videos.values()),
        "under_replicated": under,
        "repairs_running": len(master.repairs),
        # Blobs on datanodes that this index never knew: kept until recovered or purged.
        "orphaned_blobs": len(set().union(*master.control.orphans.values())),
        # Transcode jobs by state, and each datanode's slots as its last heartbeat said.
        "transcoding": master.transcoding.summary(),
        # What a recovery would start from (issue 15): the newest index snapshot kept, and
        # the videos whose changes have not reached all their blobs' sidecars yet.
        "last_snapshot_at": max((taken_at for _, taken_at in index.recovery.snapshots()), default=None),
        "sidecars_behind": index.recovery.behind(),
        "counters": dict(asdict(master.counters), datanode_connections_opened=master.pools.opened),
    }
