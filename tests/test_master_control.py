"""The master's control links with datanodes (master/control.py), with real processes."""

from __future__ import annotations

import os
import shutil

from harness import holders_of, mp4_bytes, store, wait_until
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
    clone = cluster.start_datanode(folder=clone_dir)
    client = cluster.client()

    async def replicas_at(address: str) -> int:
        nodes = {node["address"]: node for node in (await client.status())["datanodes"]}
        return nodes.get(address, {}).get("replicas", 0)

    await wait_until(lambda: replicas_at(clone.address), "the clone listed with the replica", 10)
    clone.stop()
    cluster.datanodes.remove(clone)

    async def back_home() -> bool:
        return await replicas_at(original.address) == 1

    await wait_until(back_home, "the original's replica counted at its own address again", 15)
    log = (cluster.root / "logs" / "master.log").read_text()
    assert log.count("does not follow what this master applied") <= 1
    client.close()
