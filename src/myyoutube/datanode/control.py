"""A datanode's control connection to the master: register, heartbeat, obey.

Theory of operation
-------------------
The datanode opens this connection itself (the master never dials it) and keeps it for
as long as it runs. `register_with_backoff` waits for the master at start-up, however
late it comes; `report_forever` then sends a `Heartbeat` every interval carrying what
changed on the disk since the last report the master acknowledged, or a full block
report in chunks when one is due (state.py's `BlockReports` decides which), and obeys
each answer (`Commands`: blobs to delete, sidecars to store, transcode jobs, the
cluster's heartbeat interval). Between beats it listens for the master closing the
connection, so a restarted master is registered with at once. A broken connection is
opened again with backoff and registration starts over; the changes not yet
acknowledged go in the next report.
`rescan_forever` re-reads the folder now and then, so changes nobody told the store
about (a file deleted by hand, a lost disk) reach the master too, and removes open blobs
no resumable upload holds any more (open_blobs.abandoned_after_s, from the upload expiry
the master sends in its Commands).

server.py serves the master's data connections; these functions take its `DataNode`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import TYPE_CHECKING

from myyoutube import links
from myyoutube import stream as streams
from myyoutube.datanode.open_blobs import abandoned_after_s
from myyoutube.datanode.state import Backoff, full_report_chunks, rescan_delay_s
from myyoutube.datanode.store import StoreError
from myyoutube.formatting import counted, human_duration
from myyoutube.protocol import BlockReportChunk, Commands, Heartbeat, Register
from myyoutube.quietlog import LogLimiter
from myyoutube.stream import FrameStream

if TYPE_CHECKING:
    from myyoutube.datanode.server import DataNode

log = logging.getLogger(__name__)

# While the master is unreachable, say so once a minute, not at every retry.
MASTER_WAIT_LOG_EVERY_S = 60.0


async def connect_master(node: DataNode) -> FrameStream:
    return await links.connect(*node.master, node.tls, expect_role="master")


async def register_once(node: DataNode) -> FrameStream:
    """Connect to the master and register; raises if the master cannot be reached."""
    control = await connect_master(node)
    try:
        register = Register(
            node_id=node.node_id,
            address=node.address,
            capacity_bytes=node.store.capacity_bytes,
            used_bytes=node.store.used_bytes,
            incarnation=node.reports.incarnation,
        )
        await _exchange(node, control, register)
    except BaseException:
        control.abort()
        raise
    log.info("registered with master %s:%d as %s", *node.master, node.address)
    return control


async def register_with_backoff(node: DataNode) -> FrameStream:
    """Register, waiting for the master as long as it takes (it may start after us),
    with backoff between tries and one log line a minute."""
    backoff, quiet = Backoff(), LogLimiter(MASTER_WAIT_LOG_EVERY_S)
    while True:
        try:
            return await register_once(node)
        except (OSError, TimeoutError, streams.RequestFailed, streams.protocol.ProtocolError) as exc:
            tries = quiet.check("waiting", time.monotonic())
            if tries is not None:
                log.warning(
                    "waiting for the master at %s:%d (%s: %s); %s so far",
                    *node.master,
                    type(exc).__name__,
                    exc,
                    counted(backoff.failures + 1, "try", "tries"),
                )
        await asyncio.sleep(backoff.next_delay_s())


async def report_forever(node: DataNode, control: FrameStream | None) -> None:
    """Heartbeat the master for as long as we run, reconnecting when it goes away."""
    backoff = Backoff()
    while True:
        try:
            if control is None:
                control = await register_once(node)
                # Most often the master restarted: it will not resume the old
                # process's chains (a blip of the link costs those resumes too).
                node.chain_writes.drop_parked()
            backoff.succeeded()
            await _heartbeat_until_broken(node, control)
        except (OSError, TimeoutError, streams.RequestFailed, streams.protocol.ProtocolError) as exc:
            log.warning(
                "master %s:%d unreachable (%s); retrying, %s to report",
                *node.master,
                exc,
                counted(node.reports.pending, "change"),
            )
        if control is not None:
            control.abort()
            control = None
        await asyncio.sleep(backoff.next_delay_s())


async def _heartbeat_until_broken(node: DataNode, control: FrameStream) -> None:
    while True:
        if not node.reports.full_due(time.monotonic()):
            await _until_next_beat(node, control)  # a full report asked for goes at once
        if node.reports.full_due(time.monotonic()):
            await _full_report(node, control)
        else:
            beat = node.reports.heartbeat(node.store.capacity_bytes, node.store.used_bytes)
            slots, running, failures = node.transcoder.report()
            beat = dataclasses.replace(
                beat, transcode_slots=slots, transcoding=running, transcode_failures=failures
            )
            await _exchange(node, control, beat)


async def _until_next_beat(node: DataNode, control: FrameStream) -> None:
    """Wait one heartbeat interval, or only until the master closes the connection
    (ConnectionClosed): a master that restarted is registered with at once, not at the
    next beat, so its reads find their holders sooner. The master says nothing unasked
    on this connection, so a frame arriving here is a protocol error."""
    try:
        async with asyncio.timeout(node.heartbeat_s):
            message = await control.read_frame(timeout=None)
    except TimeoutError:
        return
    raise streams.protocol.RemoteProtocolError(f"the master sent {type(message).__name__} unasked")


async def _full_report(node: DataNode, control: FrameStream) -> None:
    # The snapshot is taken between two store changes (no await in between): every
    # change recorded before it is in it, every later one goes in the next delta.
    seq = node.reports.start_full(time.monotonic())
    blobs = node.store.blobs()
    log.info("sending full block report %d (%d blobs)", seq, len(blobs))
    for chunk in full_report_chunks(seq, blobs):
        await _exchange(node, control, chunk)


async def _exchange(
    node: DataNode, control: FrameStream, report: Register | Heartbeat | BlockReportChunk
) -> None:
    await control.write_frame(report)
    await _obey(node, await control.read_expected(Commands))


async def _obey(node: DataNode, commands: Commands) -> None:
    node.reports.acknowledged(commands.acked_seq, commands.full_report)
    if commands.heartbeat_s != node.heartbeat_s:
        # The master's interval is the cluster's: its dead-after is measured against it.
        log.info("heartbeat every %gs, as the master says (was %gs)", commands.heartbeat_s, node.heartbeat_s)
        node.heartbeat_s = commands.heartbeat_s
    node.upload_expiry_s = commands.upload_expiry_s
    node.read_keys.learn(commands.read_key)
    node.transcoder.obey(commands.transcode_jobs, commands.cancel_jobs)
    if commands.sidecars:
        await node.store.update_sidecars(commands.sidecars)
    for blob_id in commands.delete_blobs:
        try:
            await node.store.delete(blob_id)
        except StoreError as exc:
            log.warning("master asked to delete %r: %s", blob_id, exc)
            continue
        log.info("deleted blob %s on the master's word", blob_id)


async def rescan_forever(node: DataNode) -> None:
    """Re-read the disk now and then: the changes this process did not make itself (a
    replica deleted by hand, a lost folder) reach the master as deltas too."""
    took_s = 0.0
    while True:
        await asyncio.sleep(rescan_delay_s(node.heartbeat_s, took_s))
        started = time.monotonic()
        await node.store.rescan_in_thread()
        after_s = abandoned_after_s(node.upload_expiry_s)
        for blob_id in await node.open_blobs.remove_abandoned(time.time(), after_s, node.chain_writes.knows):
            log.warning(
                "removed open blob %s: untouched for %s, no upload holds it", blob_id, human_duration(after_s)
            )
        took_s = time.monotonic() - started
