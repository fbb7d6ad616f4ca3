"""/metrics in Prometheus text format, from the web front end and the master's report.

Theory of operation
-------------------
The web front end counts what passes through it (uploads, bytes in and out, streams in
progress) in its own long-lived registry. At scrape time it also asks the master for the
cluster report and turns it into gauges in a registry made for that scrape: whether the
master and each datanode are up, space per datanode, videos, under-replicated videos,
repairs running and the master's own counters. A master that does not answer is
`myyoutube_up{role="master"} 0`, not a failed scrape. prometheus-client does the text
format, so names, escaping and types follow the exposition format exactly.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from myyoutube.local_reads import LocalBlobs
from myyoutube.master.status import COUNTER_HELP


class WebMetrics:
    """Counters the web front end updates as requests pass through it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.uploads = Counter(
            "myyoutube_web_uploads", "Uploads committed through this front end", registry=self.registry
        )
        self.upload_bytes = Counter(
            "myyoutube_web_upload_bytes", "Bytes of committed uploads", registry=self.registry
        )
        self.stream_bytes = Counter(
            "myyoutube_web_stream_bytes",
            "Bytes of videos and posters sent to viewers",
            registry=self.registry,
        )
        self.active_streams = Gauge(
            "myyoutube_web_active_streams", "Videos and posters being sent now", registry=self.registry
        )

    def render(self, report: dict | None, local: LocalBlobs | None = None) -> bytes:
        """This process's counters plus gauges from the master's cluster report, and
        how its reads from datanodes on this machine went (`local`, local_reads.py)."""
        text = generate_latest(self.registry) + generate_latest(_cluster_registry(report))
        return text + (generate_latest(_local_reads_registry(local)) if local is not None else b"")


def _local_reads_registry(local: LocalBlobs) -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter(
        "myyoutube_web_local_reads",
        "Reads begun from the files of a datanode on this machine",
        registry=registry,
    ).inc(local.reads)
    Counter(
        "myyoutube_web_local_read_fallbacks",
        "Of those, reads whose rest came over the network (a block not cached, or rotten)",
        registry=registry,
    ).inc(local.fallbacks)
    return registry


def _cluster_registry(report: dict | None) -> CollectorRegistry:
    registry = CollectorRegistry()
    up = Gauge(
        "myyoutube_up", "Whether a role answers (1) or not (0)", ["role", "address"], registry=registry
    )
    up.labels("web", "").set(1)
    up.labels("master", "").set(report is not None)
    if report is None:
        return registry
    used = Gauge(
        "myyoutube_datanode_used_bytes", "Bytes stored on a datanode", ["address"], registry=registry
    )
    free = Gauge(
        "myyoutube_datanode_free_bytes", "Bytes a datanode can still take", ["address"], registry=registry
    )
    held = Gauge("myyoutube_datanode_replicas", "Replicas a datanode holds", ["address"], registry=registry)
    for node in report["datanodes"]:
        up.labels("datanode", node["address"]).set(node["state"] in ("alive", "suspect"))
        used.labels(node["address"]).set(node["used_bytes"])
        free.labels(node["address"]).set(node["free_bytes"])
        held.labels(node["address"]).set(node["replicas"])
    simple = {
        "myyoutube_videos": ("Videos in the index", report["videos"]),
        "myyoutube_stored_bytes": ("Bytes of video in the index (one copy)", report["stored_bytes"]),
        "myyoutube_under_replicated_videos": (
            "Videos with fewer live copies than wanted",
            len(report["under_replicated"]),
        ),
        "myyoutube_replication_queue": ("Repair copies running now", report["repairs_running"]),
    }
    for name, (text, value) in simple.items():
        Gauge(name, text, registry=registry).set(value)
    for name, value in report["counters"].items():
        text = COUNTER_HELP.get(name, f"Master counter {name} since it started")
        Gauge(f"myyoutube_master_{name}", text, registry=registry).set(value)
    return registry
