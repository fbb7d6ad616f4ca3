"""The master through its own protocol: storage round trips, commit rules, durability."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from harness import Cluster, fill_disk, in_process_master, read_only_mount, small_disk, wait_until
from myyoutube.client import RequestFailed
from myyoutube.master.blob_ownership import RETIRED_KEEP_S


async def store(client, name: str, data: bytes, content_type: str = "video/mp4") -> dict:
    upload = await client.start_upload(name, content_type)
    await upload.write(data)
    return await upload.finish()


async def read_all(client, name: str, offset: int, length: int) -> bytes:
    return b"".join([piece async for piece in client.read(name, offset, length)])


@pytest.mark.parametrize("size", [1, 2, 256 * 1024 - 1, 256 * 1024, 256 * 1024 + 1, 3_000_001])
async def test_any_size_round_trips_byte_identical(cluster, size):
    """Blobs of 1 byte, around a chunk boundary and a few MB read back exactly."""
    client = cluster.client()
    data = os.urandom(size)
    video = await store(client, f"roundtrip-{size}.mp4", data)
    assert video["size"] == size
    assert await read_all(client, f"roundtrip-{size}.mp4", 0, size) == data
    assert await read_all(client, f"roundtrip-{size}.mp4", size // 2, size - size // 2) == data[size // 2 :]


async def test_a_video_is_listed_only_once_committed(cluster):
    """While an upload is still sending, the name is not listed; after finish() it is."""
    client = cluster.client()
    upload = await client.start_upload("in-progress.mp4", "video/mp4")
    await upload.write(os.urandom(100_000))
    assert "in-progress.mp4" not in [v["name"] for v in await client.list()]
    await upload.finish()
    assert "in-progress.mp4" in [v["name"] for v in await client.list()]


async def test_abandoned_upload_leaves_nothing_behind(cluster):
    """An upload whose sender vanishes is not listed and leaves no file on any datanode."""
    client = cluster.client()
    before = cluster.blob_files()
    upload = await client.start_upload("abandoned.mp4", "video/mp4")
    await upload.write(os.urandom(600_000))
    upload.abort()
    await wait_until(lambda: cluster.stray_files() == [], "partial files removed", 10)
    assert cluster.blob_files() == before
    assert "abandoned.mp4" not in [v["name"] for v in await client.list()]
    with pytest.raises(RequestFailed) as refused:
        await client.stat("abandoned.mp4")
    assert refused.value.code == "not_found"


async def test_concurrent_uploads_of_one_name_exactly_one_wins(cluster):
    """Two uploads racing for one name: one commits, the other is refused as 'exists'."""
    client = cluster.client()

    async def attempt(data: bytes):
        try:
            return await store(client, "race.mp4", data)
        except RequestFailed as exc:
            return exc.code

    outcomes = await asyncio.gather(attempt(b"a" * 300_000), attempt(b"b" * 300_000))
    assert sorted(map(type, outcomes), key=str) == sorted([dict, str], key=str)
    assert "exists" in outcomes
    winner = next(o for o in outcomes if isinstance(o, dict))
    stored = await read_all(client, "race.mp4", 0, winner["size"])
    assert stored in (b"a" * 300_000, b"b" * 300_000)


async def test_names_are_normalized_so_nfc_and_nfd_are_one_video(cluster):
    """'é' composed and decomposed name one video: the second upload is refused as taken."""
    client = cluster.client()
    await store(client, "caf\u00e9.mp4", b"x")
    with pytest.raises(RequestFailed) as refused:
        await store(client, "cafe\u0301.mp4", b"y")
    assert refused.value.code == "exists"


async def test_master_restart_keeps_every_committed_video(fresh_cluster):
    """A master stopped and started on the same data dir lists and serves every video,
    and removes the copy of the index that a backup running when a master was killed left
    there (each as large as the index; they used to stay for good)."""
    cluster = fresh_cluster()
    data = {f"keep-{i}.mp4": os.urandom(50_000 + i) for i in range(3)}
    for name, content in data.items():
        await store(cluster.client(), name, content)
    cluster.master.stop()
    left = cluster.root / "master" / f"backup-{'f' * 32}.part"  # as backup.py names them
    left.write_bytes(b"the first pages of an index copy")
    cluster.restart_master()
    assert not left.exists()
    client = cluster.client()
    assert sorted(v["name"] for v in await client.list()) == sorted(data)
    # Datanodes reconnect by themselves; reads work once they re-registered.
    await wait_until(lambda: _all_alive(client, 3), "datanodes re-registered", 15)
    for name, content in data.items():
        assert await read_all(client, name, 0, len(content)) == content


async def _all_alive(client, count: int) -> bool:
    status = await client.status()
    return sum(node["state"] == "alive" for node in status["datanodes"]) == count


async def test_an_upload_lost_to_read_only_disks_is_not_called_out_of_space(fresh_cluster):
    """When nodes with plenty of room fail to store an upload (two of three disks turned
    read-only), the upload is refused as unavailable, to try again later, not as 'The
    storage is out of space ... Free some space' (507), which sent operators after space
    they had; nothing is committed. The master's stop-time snapshot, refused the same way,
    is logged in a sentence of its own."""
    cluster = fresh_cluster()
    client = cluster.client()
    broken = [cluster.folder(node) for node in cluster.datanodes[:2]]
    with read_only_mount(*broken), pytest.raises(RequestFailed) as refused:
        await store(client, "nowhere.mp4", os.urandom(300_000))
    assert refused.value.code == "unavailable"
    assert "out of space" not in refused.value.message
    assert "of the 3 datanodes with room could store the video and 2 are needed" in refused.value.message
    assert await client.list() == []
    client.close()
    with read_only_mount(*broken):
        cluster.master.stop()  # its stop-time index snapshot fails the same way
    log = (cluster.root / "logs" / "master.log").read_text()
    # It used to repeat the upload's sentence: "could store the video ... (the master's log says why)".
    assert "index snapshot failed: fewer than 2 datanodes could store it (the warnings above" in log
    assert "index snapshot failed: Only" not in log


async def test_a_full_index_disk_refuses_uploads_in_a_sentence_and_one_log_line(tmp_path):
    """When the master's own disk fills up, an upload is refused with no_space and a
    sentence saying so, the log has one line for it (not a traceback per request, as
    'Task exception was never retrieved'), and the master keeps serving what it has."""
    with small_disk(tmp_path / "master", "700k"):
        cluster = Cluster(tmp_path).start()
        try:
            client = cluster.client()
            stored = 0
            with pytest.raises(RequestFailed) as refused:
                for stored in range(1000):  # each upload's rows take room, until none is left
                    await store(client, f"filler-{stored}.mp4", os.urandom(2000))
            assert refused.value.code == "no_space"
            assert refused.value.message == (
                "The master's disk is full; nothing can be stored until space is freed."
            )
            assert len(await client.list()) >= stored > 0  # what was stored before stays listed
            client.close()
        finally:
            cluster.stop()
        log = (tmp_path / "logs" / "master.log").read_text()
        assert "Traceback" not in log
        assert log.count("cannot use the index for PutVideo: database or disk is full") == 1


async def test_pruning_an_index_whose_disk_is_full_is_tried_again_later(tmp_path, caplog):
    """The hourly pruning of retired blob ids meets a full disk: it logs a line and is
    done once there is room, and the master runs on. Before, the error ended the task,
    and the master with it."""
    disk = tmp_path / "master"
    with small_disk(disk, "1m"):
        master = in_process_master(disk)
        try:
            master.index.ownership.abandon_blobs(["b" * 32], time.time() - RETIRED_KEEP_S - 60)
            fill_disk(disk / "filler")
            master.prune(time.time())
            assert "could not prune the index: database or disk is full" in caplog.text
            (disk / "filler").unlink()
            master.prune(time.time())
            assert "b" * 32 not in master.index.ownership.retired
        finally:
            master.index.close()
