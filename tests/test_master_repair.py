"""Tests for myyoutube.master.repair with a master and datanodes served in the test's own
process (repairs across real processes are in test_faults.py)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import time

from harness import fill_disk, in_process_master, small_disk
from myyoutube import links
from myyoutube.datanode.server import ALLOWED_ROLES, DataNode
from myyoutube.datanode.store import BlobStore
from myyoutube.master import repair
from myyoutube.master.index import StoredBlob
from myyoutube.master.repair_plan import Repair

BLOB = "c" * 32
DATA = os.urandom(300_000)


@contextlib.asynccontextmanager
async def served_datanode(folder):
    """A datanode on a store in `folder`, served on loopback; (its address, its store)."""
    store = BlobStore(folder, None)
    server = await links.serve_connections(
        DataNode(store, ("127.0.0.1", 1), "", "d" * 32, None, 1.0, 1, 3600.0).handle_request,
        "127.0.0.1",
        0,
        None,
        16,
        ALLOWED_ROLES,
    )
    await server.start_serving()
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}", store
    finally:
        server.close()
        await server.wait_closed()


async def test_a_copy_the_full_index_cannot_record_leaves_the_master_running(tmp_path, caplog):
    """A repair copy made while the master's own disk is full cannot be recorded in the
    index: it is logged, the copy stays on its node (whose next report counts it) and the
    repair's bookkeeping is let go, so repairs go on. Before, the error ended the repair
    task, and the master with it."""
    disk = tmp_path / "master"
    with small_disk(disk, "1m"):
        async with (
            served_datanode(tmp_path / "source") as (source, held),
            served_datanode(tmp_path / "target") as (target, copied),
        ):
            writer = held.open_writer(BLOB)
            await writer.write(DATA)
            await writer.finish()
            master = in_process_master(disk, datanodes=0)
            for node in (source, target):
                master.state.registered(node, "incarnation", time.time(), 2**40, 0)
            sha256 = hashlib.sha256(DATA).hexdigest()
            video = {"name": "v.mp4", "blob_id": BLOB, "size": len(DATA), "sha256": sha256}
            master.index.commit_video(
                dict(video, content_type="video/mp4", uploaded_at=time.time()),
                [StoredBlob(BLOB, len(DATA), sha256, [source])],
                time.time(),
            )
            try:
                copy = Repair(BLOB, source, target)
                master.repairs[BLOB], master.repair_load = copy, {source: 1, target: 1}
                fill_disk(disk / "filler")
                await repair._copy(master, copy)
                assert "could not record the repair copy" in caplog.text
                assert copied.blobs() == {BLOB: len(DATA)}
                assert master.repairs == {} and master.repair_load == {source: 0, target: 0}
            finally:
                master.pools.close()
                master.index.close()
