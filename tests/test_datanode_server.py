"""A datanode's request handling (datanode/server.py), with real processes and a real disk."""

from __future__ import annotations

import os

from harness import holders_of, mp4_bytes, read_only_mount, store, wait_until


async def test_a_read_only_disk_is_one_log_line_and_the_upload_goes_on(fresh_cluster):
    """A datanode whose folder turned read-only answers a resumable upload's append with
    the reason (one WARNING line naming the folder), not a traceback ('Task exception was
    never retrieved') and a dropped link; the upload still completes on the others."""
    cluster = fresh_cluster()  # three datanodes: every upload has a replica on each
    broken = cluster.datanodes[0]
    client = cluster.client()
    data = mp4_bytes(os.urandom(50_000))
    with read_only_mount(cluster.folder(broken)):
        session = await client.create_upload("read-only.mp4", len(data))
        upload = await client.append_upload(session["id"], 0)
        await upload.write(data)
        assert (await upload.finish())["offset"] == len(data)
    logs = sorted((cluster.root / "logs").glob("datanode-*.log"))
    broken_log = next(log for log in logs if f"as 127.0.0.1:{broken.port}" in log.read_text())
    await wait_until(lambda: "Read-only file system" in broken_log.read_text(), "the refusal logged", 5)
    text = broken_log.read_text()
    assert "Traceback" not in text and "never retrieved" not in text
    assert f"cannot use {cluster.folder(broken)}: Read-only file system" in text
    client.close()


async def test_a_replica_that_lost_its_checksums_is_remade_once_a_read_finds_it(fresh_cluster):
    """A replica whose .crc file is gone fails every read ('gone from this node's disk')
    though its node still lists it: the first read that finds it has it reported and
    re-made from a good copy. It used to stay counted as a good copy, failing reads and
    repairs that picked it as their source, until the scrubber's next pass a day later."""
    cluster = fresh_cluster()
    data = mp4_bytes(os.urandom(300_000))
    await store(cluster, "unreadable.mp4", data)
    holder = holders_of(cluster, data)[0]
    crc = next(cluster.folder(holder).glob("*.blob")).with_suffix(".crc")
    crc.unlink()
    client = cluster.client()
    for _ in range(30):  # each read starts at a random replica: soon one is this one
        assert b"".join([piece async for piece in client.read("unreadable.mp4", 0, len(data))]) == data
        if crc.exists():
            break
    await wait_until(crc.exists, "the replica re-made with its checksums", 10)
    client.close()
