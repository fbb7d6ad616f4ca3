"""Recovery: rebuild a lost index from the datanodes (`myyoutube-master --recover`).

Theory of operation
-------------------
A master started with `--recover` on an empty data directory rebuilds its index before
it serves anything:

1. It listens on its port with a stand-in master over an empty in-memory index that
   answers datanodes only (the web is told to come back later). Datanodes reconnect by
   themselves and send full block reports; an empty index never deletes an unknown blob.
   It waits until `--expect-datanodes` nodes reported, or until no new node registered
   for SETTLE_S (longer than a datanode's longest reconnect backoff), at most
   `--recover-wait` seconds, with progress in the log.
2. It asks every node for its blobs' sidecars (ListSidecars, in bounded batches).
3. It reads the index snapshots, newest first, from their holders, and loads the first
   whose size and sha256 match its sidecar: a torn or damaged one is skipped.
4. rebuild.merge decides the catalogue (snapshot + newer sidecars, minus videos whose
   blobs are gone); the plan is written into the snapshot's file (or a fresh index),
   which is renamed into place as the index.
5. The stand-in stops listening; the real master starts on the same port, the datanodes
   register again, and the log holds one summary of what was and was not recovered.

Writes in progress when the snapshot was taken (`pending_blobs`) are not retired, as a
restart would: they may have been committed after the snapshot. Their blobs are either
named by a sidecar or kept as orphans. Recovery deletes nothing. The index file itself
is read and written by index_files.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import aiofiles

from myyoutube import links, replica_reads, service
from myyoutube.datanode.state import BACKOFF_MAX_S
from myyoutube.formatting import agreeing, counted
from myyoutube.master import index_files, rebuild, transfer
from myyoutube.master.accounts import Accounts
from myyoutube.master.index import Index
from myyoutube.master.schema import IndexTooNew
from myyoutube.master.server import DATANODE_ONLY, MAX_CONNECTIONS, Master
from myyoutube.master.state import ClusterState
from myyoutube.pool import Lease
from myyoutube.protocol import Error, ListSidecars, Message, Register, SidecarBatch
from myyoutube.stream import FrameStream
from myyoutube.tls_contexts import Tls

log = logging.getLogger(__name__)

# Datanodes retry a lost master after at most BACKOFF_MAX_S: once no new node registered
# for longer than that (and a few heartbeats), every running node has.
SETTLE_S = BACKOFF_MAX_S + 2.0
DEFAULT_RECOVER_WAIT_S = 120.0
PROGRESS_EVERY_S = 5.0
POLL_S = 0.1

# How long a datanode may take between two batches of sidecars (each read from its disk).
SIDECAR_BATCH_TIMEOUT_S = 60.0

SNAPSHOT_READ = "recovered-snapshot.part"


class RecoveryFailed(service.StartupError):
    pass


@dataclass(frozen=True)
class Options:
    data_dir: Path
    host: str
    port: int
    tls: Tls | None
    heartbeat_s: float
    dead_after_s: float
    stall_s: float
    wait_s: float
    expect_datanodes: int | None


async def recover(options: Options) -> int:
    """Rebuild DATA_DIR/index.sqlite3; returns the port it listened on (for the master)."""
    index = Index(Path(":memory:"), time.time())
    stand_in = Master(
        index,
        ClusterState(options.dead_after_s, options.heartbeat_s, started_at=time.time()),
        options.tls,
        1,
        1,
        Accounts(index, None, options.data_dir),
        options.stall_s,
    )
    stand_in.control.told_index_empty = True  # it is empty on purpose; the log says why

    async def datanodes_only(connection: FrameStream, request: Message) -> None:
        if isinstance(request, Register):
            await stand_in.handle(connection, request)
        else:
            await connection.write_frame(
                Error("unavailable", "The master is rebuilding its index; try again in a minute.")
            )

    listener = await service.listen(
        lambda: links.serve_connections(
            datanodes_only,
            options.host,
            options.port,
            options.tls,
            MAX_CONNECTIONS,
            {Register: DATANODE_ONLY},
        ),
        options.host,
        options.port,
    )
    await listener.start_serving()
    port = service.bound_port(listener)
    log.info("recovery: waiting for datanodes on port %d", port)
    try:
        held = await _wait_for_reports(stand_in, options)
        await _rebuild(stand_in, held, options.data_dir)
    finally:
        listener.close()
        await listener.wait_closed()
        stand_in.pools.close()
        index.close()
    return port


async def _wait_for_reports(master: Master, options: Options) -> dict[str, list[str]]:
    """Wait for the datanodes' full reports; blob id -> nodes holding it."""
    started = last_change = last_log = time.monotonic()
    known = 0
    while True:
        await asyncio.sleep(POLL_S)
        now = time.monotonic()
        nodes = master.state.nodes
        reported = [address for address, node in nodes.items() if node.reports.has_full]
        if len(nodes) != known:
            known, last_change = len(nodes), now
        enough = options.expect_datanodes is not None and len(reported) >= options.expect_datanodes
        settled = reported and len(reported) == len(nodes) and now - last_change >= SETTLE_S
        if enough or settled:
            break
        if now - started >= options.wait_s:
            if not reported:
                raise RecoveryFailed(
                    f"no datanode reported within {options.wait_s:g}s; start the datanodes "
                    f"(they must be pointed at this master's address) and try again"
                )
            log.warning(
                "recovery: stopped waiting after %gs with %s",
                options.wait_s,
                counted(len(reported), "datanode"),
            )
            break
        if now - last_log >= PROGRESS_EVERY_S:
            last_log = now
            log.info(
                "recovery: %s registered, %d sent their block reports",
                counted(len(nodes), "datanode"),
                len(reported),
            )
    held: dict[str, list[str]] = {}
    for address in reported:
        for blob_id in nodes[address].blobs:
            held.setdefault(blob_id, []).append(address)
    log.info(
        "recovery: %s %s %s",
        counted(len(reported), "datanode"),
        agreeing(len(reported), "holds", "hold"),
        counted(len(held), "distinct blob"),
    )
    return held


async def _rebuild(master: Master, held: dict[str, list[str]], data_dir: Path) -> None:
    nodes = sorted({node for holders in held.values() for node in holders})
    found = await asyncio.gather(*(_list_sidecars(master, node) for node in nodes))
    sidecars = [sidecar for listed in found for sidecar in listed]
    log.info("recovery: %s read", counted(len(sidecars), "sidecar"))
    rebuilding = data_dir / index_files.REBUILDING
    try:
        snapshot, used, skipped = await _load_newest_snapshot(master, sidecars, held, rebuilding)
        # Merging and writing take a second per 10,000 videos: off the event loop, which
        # keeps answering the datanodes' heartbeats meanwhile.
        plan = await asyncio.to_thread(_write_index, rebuilding, snapshot, sidecars, held, used)
    except BaseException:
        await asyncio.to_thread(_remove, rebuilding, rebuilding.with_name(SNAPSHOT_READ))
        raise
    log.warning("%s", rebuild.summary(plan, snapshot, skipped, len(nodes)))


def _write_index(
    rebuilding: Path,
    snapshot: rebuild.Snapshot | None,
    sidecars: list[dict],
    held: dict[str, list[str]],
    used: dict | None,
) -> rebuild.Plan:
    """Blocking: merge, write the plan into the snapshot's file (or a fresh index) and
    rename it into place as the index."""
    if snapshot is None:
        Index(rebuilding, time.time()).close()  # a fresh index of the current schema
    plan = rebuild.merge(snapshot, sidecars, held)
    index_files.write_plan(rebuilding, plan, snapshot, held, used, time.time())
    rebuilding.rename(rebuilding.with_name(index_files.INDEX_FILE))
    return plan


async def _list_sidecars(master: Master, node: str) -> list[dict]:
    async def attempt(lease: Lease) -> list[dict]:
        await lease.connection.write_frame(ListSidecars())
        found: list[dict] = []
        while True:
            batch = await lease.connection.read_expected(SidecarBatch, timeout=SIDECAR_BATCH_TIMEOUT_S)
            found += batch.sidecars
            if batch.final:
                lease.done()
                return found

    try:
        return await master.pools[node].call(attempt)
    except transfer.REPLICA_FAILURES as exc:
        log.error("recovery: could not read the sidecars of %s (%s); going on without them", node, exc)
        return []


async def _load_newest_snapshot(
    master: Master, sidecars: list[dict], held: dict[str, list[str]], target: Path
) -> tuple[rebuild.Snapshot | None, dict | None, int]:
    """The newest intact snapshot, copied to `target` and read; (snapshot, its sidecar,
    how many newer ones were skipped)."""
    skipped = 0
    part = target.with_name(SNAPSHOT_READ)
    for sidecar in rebuild.snapshot_candidates(sidecars, held):
        try:
            if await _read_verified(master, sidecar, held[sidecar["blob_id"]], part):
                snapshot = await asyncio.to_thread(_open_snapshot, part, target, sidecar)
                return snapshot, sidecar, skipped
        except (transfer.ReplicationFailed, sqlite3.Error, IndexTooNew) as exc:
            log.warning("recovery: snapshot %s is unusable: %s", sidecar["blob_id"], exc)
        await asyncio.to_thread(_remove, part, target)
        skipped += 1
    return None, None, skipped


async def _read_verified(master: Master, sidecar: dict, holders: list[str], part: Path) -> bool:
    """Copy a snapshot blob from its holders to `part`; whether its sha256 is the sidecar's."""
    digest = hashlib.sha256()
    async with aiofiles.open(part, "wb") as file:

        async def consume(data: bytes) -> None:
            digest.update(data)
            await file.write(data)

        await replica_reads.relay_blob(
            sidecar["blob_id"],
            0,
            sidecar["size"],
            holders,
            master.pools,
            consume,
            lambda *_: None,
            master.stall_s,
        )
    if digest.hexdigest() != sidecar["sha256"]:
        log.warning(
            "recovery: snapshot %s taken at %s is damaged (its sha256 differs); skipped",
            sidecar["blob_id"],
            sidecar["taken_at"],
        )
        return False
    return True


def _open_snapshot(part: Path, target: Path, sidecar: dict) -> rebuild.Snapshot:
    part.rename(target)
    return index_files.read_snapshot(target, sidecar["taken_at"], sidecar["blob_id"])


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
