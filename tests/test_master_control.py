"""The master's control links with datanodes (master/control.py), with real processes."""

from __future__ import annotations

import logging
import os
import shutil
import time

from harness import commit_one_video, holders_of, in_process_master, mp4_bytes, store, wait_until
from myyoutube.datanode.identity import NODE_ID_FILE


async def test_a_node_whose_id_registered_elsewhere_gets_its_replicas_back(fresh_cluster, tmp_path):
    """A copy of a datanode's node id started elsewhere (a cloned disk) takes the node's
    replicas to its address; once it is gone, the original, still running, registers again
    and its replicas count at its own address. Before, the master kept the original's
    link, warned 'does not follow' at each of its heartbeats and never counted its copies."""
    cluster = fresh_cluster(dead_after_s=30.0)
    data = mp4_bytes(os.urandom(100_000))
    await store(cluster, "cloned.mp4", data)
    original = holders_of(cluster, data)[0]
    clone_dir = tmp_path / "clone"
    clone_dir.mkdir()
    shutil.copy(cluster.folder(original) / NODE_ID_FILE, clone_dir / NODE_ID_FILE)
    (clone_dir / f"{'e' * 32}.blob").write_bytes(b"a blob this index never knew")
    clone = cluster.start_datanode(folder=clone_dir)
    client = cluster.client()

    async def at(address: str, field: str) -> int:
        nodes = {node["address"]: node for node in (await client.status())["datanodes"]}
        return nodes.get(address, {}).get(field, 0)

    async def replicas_at(address: str) -> int:
        return await at(address, "replicas")

    await wait_until(lambda: replicas_at(clone.address), "the clone listed with the replica", 10)
    await wait_until(lambda: at(clone.address, "orphans"), "the clone's unknown blob listed", 10)
    clone.stop()
    cluster.datanodes.remove(clone)

    async def back_home() -> bool:
        return await replicas_at(original.address) == 1

    await wait_until(back_home, "the original's replica counted at its own address again", 15)
    # Nothing is kept under the address the node id left (a node given a new address at
    # every restart would leave an entry each time): before, the clone's orphan stayed
    # counted, and its transcode slots listed, for as long as the master ran.
    status = await client.status()
    assert clone.address not in [node["address"] for node in status["datanodes"]]
    assert status["orphaned_blobs"] == 0
    assert clone.address not in status["transcoding"]["slots"]
    log = (cluster.root / "logs" / "master.log").read_text()
    assert log.count("does not follow what this master applied") <= 1
    client.close()


def test_one_orphan_is_said_in_the_singular(tmp_path, caplog):
    """The warning for a datanode holding blobs the index does not know (seen after every
    --restore) said "holds 1 blobs this index does not know; they are kept"."""
    master = in_process_master(tmp_path)
    now = time.time()
    commit_one_video(master, now)
    try:
        with caplog.at_level(logging.WARNING, logger="myyoutube.master.control"):
            master.control._note_orphans("127.0.0.1:1", ["b" * 32])
            master.control._note_orphans("127.0.0.1:2", ["c" * 32, "d" * 32])
        said = [record.getMessage() for record in caplog.records]
        assert said[0].startswith("datanode 127.0.0.1:1 holds 1 blob this index does not know; it is kept.")
        assert said[1].startswith(
            "datanode 127.0.0.1:2 holds 2 blobs this index does not know; they are kept."
        )
    finally:
        master.pools.close()
        master.index.close()
