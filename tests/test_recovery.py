"""Recovery of a lost master index from the datanodes (issue 15), with real processes:
snapshots and sidecars on real disks, the master SIGKILLed and its data directory deleted."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from harness import ADMIN_PASSWORD, Cluster, mp4_bytes, run_myyoutube, upload, wait_until
from myyoutube.launch import LaunchError, start_role
from myyoutube.master.snapshots import SNAPSHOTS_KEPT
from test_transcoding import record, source_bytes

EXPECT_ALL = ("--expect-datanodes", "3")


async def put(cluster: Cluster, name: str, data: bytes, owner: str = "admin") -> None:
    client = cluster.client().as_user(owner)
    upload = await client.start_upload(name, "video/mp4")
    await upload.write(data)
    await upload.finish()
    client.close()


async def read_all(cluster: Cluster, name: str) -> bytes:
    client = cluster.client()
    data = b"".join([piece async for piece in client.read(name, 0, -1)])
    client.close()
    return data


def sidecars_on_disk(cluster: Cluster) -> list[dict]:
    return [json.loads(path.read_text()) for path in (cluster.root / "datanodes").rglob("*.meta")]


def sidecar_titles(cluster: Cluster) -> dict[str, set[tuple[int, str, str]]]:
    """Video name -> the (version, title, visibility) its sidecars on disk say."""
    seen: dict[str, set[tuple[int, str, str]]] = {}
    for sidecar in sidecars_on_disk(cluster):
        if sidecar["kind"] == "original":
            record = sidecar["record"]
            seen.setdefault(sidecar["name"], set()).add(
                (sidecar["version"], record["title"], record["visibility"])
            )
    return seen


def recover_master(cluster: Cluster, *extra: str) -> None:
    """SIGKILL the master, delete its data directory, start it with --recover."""
    cluster.master.kill()
    shutil.rmtree(cluster.root / "master")
    cluster.master_args += ["--recover", *EXPECT_ALL, *extra]
    cluster.restart_master()


async def datanodes_back(cluster: Cluster) -> None:
    """Wait until every datanode registered with the restarted master again."""
    client = cluster.client()

    async def all_alive() -> bool:
        report = await client.status()
        return sum(node["state"] == "alive" for node in report["datanodes"]) == len(cluster.datanodes)

    await wait_until(all_alive, "datanodes registered again", 20)
    client.close()


def master_log(cluster: Cluster) -> str:
    return (cluster.root / "logs" / "master.log").read_text()


async def test_recover_brings_back_every_video_account_and_late_edit(fresh_cluster):
    """Videos, titles, owners, visibility and accounts stored before a snapshot, and videos
    uploaded and edits made after it (from sidecars), all survive the loss of the master's
    data directory: listed as they were, streamed byte-identical, accounts sign in; the
    summary names the account created after the snapshot as lost."""
    cluster = fresh_cluster(master_args=("--snapshot-interval", "3600"))
    admin = cluster.client()
    await admin.add_user("bob", "bob's password", "uploader")
    videos = {f"clip-{i}.mp4": mp4_bytes(os.urandom(20_000 + i)) for i in range(5)}
    for number, (name, data) in enumerate(videos.items()):
        await put(cluster, name, data, owner="bob" if number % 2 else "admin")
    await admin.update_video("clip-0.mp4", "The first clip", "before the snapshot")
    await admin.set_visibility("clip-1.mp4", "private")
    assert (await admin.status())["last_snapshot_at"] is None
    cluster.master.stop()  # a clean stop takes a snapshot
    cluster.restart_master()
    await datanodes_back(cluster)
    admin = cluster.client()
    assert (await admin.status())["last_snapshot_at"] > 0

    late = {"late-0.mp4": mp4_bytes(os.urandom(25_000)), "late-1.mp4": mp4_bytes(os.urandom(25_001))}
    for name, data in late.items():
        await put(cluster, name, data, owner="bob")
    videos |= late
    await admin.update_video("clip-2.mp4", "Renamed after the snapshot", "late words")
    await admin.set_visibility("clip-3.mp4", "unlisted")
    await admin.add_user("carol", "carol's password", "uploader")
    await put(cluster, "carols.mp4", videos.setdefault("carols.mp4", mp4_bytes(os.urandom(9_000))), "carol")
    before = {video["name"]: video for video in await admin.list()}

    async def sidecars_current() -> bool:
        return (await admin.status())["sidecars_behind"] == 0

    await wait_until(sidecars_current, "every change in the sidecars", 15)
    await wait_until(
        lambda: (
            (2, "Renamed after the snapshot", "public") in sidecar_titles(cluster).get("clip-2.mp4", set())
            and len(sidecar_titles(cluster).get("carols.mp4", ())) == 1
        ),
        "late changes in the sidecars",
        15,
    )

    recover_master(cluster)
    await datanodes_back(cluster)
    admin = cluster.client()
    after = {video["name"]: video for video in await admin.list()}
    assert sorted(after) == sorted(videos)
    for name, video in before.items():
        for key in ("title", "description", "owner", "visibility", "size", "sha256", "uploaded_at"):
            assert after[name][key] == video[key], (name, key)
    assert after["clip-2.mp4"]["title"] == "Renamed after the snapshot"
    assert after["clip-3.mp4"]["visibility"] == "unlisted"
    assert after["clip-1.mp4"]["visibility"] == "private"
    for name, data in videos.items():
        assert await read_all(cluster, name) == data
    assert cluster.sign_in("bob", "bob's password")
    assert cluster.sign_in("admin", ADMIN_PASSWORD)
    log = master_log(cluster)
    assert "8 videos recovered, 5 of them from sidecars newer than the snapshot" in log
    assert "must be created again: carol" in log
    # Nothing was deleted: every node still holds every video and the snapshot.
    assert all(len(files) == len(videos) + 1 for files in cluster.blob_files().values())


async def test_a_video_is_recoverable_the_moment_its_upload_is_committed(fresh_cluster):
    """The master's disk is lost right after an upload's commit was answered, before any
    heartbeat: the sidecars went to the video's holders with the commit, so --recover
    brings it back, byte-identical. Before, they waited for the holders' next heartbeat
    answers, and a video committed in the seconds before the loss was left an orphan."""
    # Heartbeats 30 s apart: the sidecars are on every holder the moment the commit is
    # answered, before any heartbeat answer could have brought them.
    cluster = fresh_cluster(heartbeat_s=30.0, dead_after_s=120.0)
    data = mp4_bytes(os.urandom(40_000))
    await put(cluster, "just-in.mp4", data)
    assert sum(sidecar.get("name") == "just-in.mp4" for sidecar in sidecars_on_disk(cluster)) == 3
    recover_master(cluster)
    await datanodes_back(cluster)
    assert [video["name"] for video in await cluster.client().list()] == ["just-in.mp4"]
    assert await read_all(cluster, "just-in.mp4") == data


async def test_a_torn_newest_snapshot_is_skipped_for_the_previous_one(fresh_cluster):
    """A master killed while writing a snapshot can leave a newer snapshot blob whose bytes
    do not match its sidecar: recovery skips it, loads the previous one, and says so."""
    cluster = fresh_cluster(master_args=("--snapshot-interval", "3600"))
    admin = cluster.client()
    await admin.add_user("dave", "dave's password", "viewer")
    data = mp4_bytes(os.urandom(15_000))
    await put(cluster, "kept.mp4", data)
    cluster.master.stop()
    snapshot = next(s for s in sidecars_on_disk(cluster) if s["kind"] == "index-snapshot")
    torn_copy_of(cluster, snapshot)
    cluster.restart_master()
    await datanodes_back(cluster)
    client = cluster.client()

    async def torn_copy_reported() -> bool:  # the datanode's rescan found the file
        return (await client.status())["orphaned_blobs"] == 1

    await wait_until(torn_copy_reported, "the torn copy reported", 20)

    recover_master(cluster)
    await datanodes_back(cluster)
    assert [v["name"] for v in await cluster.client().list()] == ["kept.mp4"]
    assert await read_all(cluster, "kept.mp4") == data
    assert cluster.sign_in("dave", "dave's password")
    assert "1 newer snapshot was damaged or unreadable and skipped" in master_log(cluster)


def torn_copy_of(cluster: Cluster, snapshot: dict) -> None:
    """On the first datanode, a snapshot blob taken later than `snapshot` holding only the
    first half of its bytes (checksummed, so the datanode serves it), as a write cut short
    and then published would."""
    import google_crc32c

    from myyoutube.datanode.blob_writer import BLOCK_BYTES, CRC

    folder = cluster.folder(cluster.datanodes[0])
    whole = (folder / f"{snapshot['blob_id']}.blob").read_bytes()
    torn = whole[: len(whole) // 2]
    blob_id = "f" * 32
    (folder / f"{blob_id}.blob").write_bytes(torn)
    crcs = b"".join(
        CRC.pack(google_crc32c.value(torn[at : at + BLOCK_BYTES])) for at in range(0, len(torn), BLOCK_BYTES)
    )
    (folder / f"{blob_id}.crc").write_bytes(crcs)
    sidecar = dict(snapshot, blob_id=blob_id, taken_at=snapshot["taken_at"] + 60, size=len(torn))
    (folder / f"{blob_id}.meta").write_text(json.dumps(sidecar))


def myyoutube(cluster: Cluster, *args: str, token: str | None = None) -> subprocess.CompletedProcess:
    """The `myyoutube` command line, signed in as the admin unless another token is given."""
    return run_myyoutube(
        cluster, *args, env={"MYYOUTUBE_TOKEN": cluster.admin_token if token is None else token}
    )


async def test_admin_backup_then_restore_starts_from_the_copy(fresh_cluster, tmp_path: Path):
    """`myyoutube admin backup FILE` saves the index (admins only); a master started with
    --restore FILE on an empty data directory lists the videos and signs in the accounts
    of the copy; --restore over a non-empty data directory is refused with a sentence."""
    cluster = fresh_cluster()
    await cluster.client().add_user("erin", "erin's password", "uploader")
    data = mp4_bytes(os.urandom(12_000))
    await put(cluster, "saved.mp4", data, owner="erin")
    backup = tmp_path / "index-backup.sqlite3"
    refused = myyoutube(
        cluster, "admin", "backup", str(backup), token=cluster.sign_in("erin", "erin's password")
    )
    assert refused.returncode != 0 and "admin" in refused.stderr and not backup.exists()
    saved = myyoutube(cluster, "admin", "backup", str(backup))
    assert saved.returncode == 0, saved.stderr
    assert "--restore" in saved.stdout and backup.stat().st_size > 0

    cluster.master.kill()
    cluster.master_args += ["--restore", str(backup)]
    with pytest.raises(LaunchError, match="needs an empty data directory"):
        cluster.restart_master()
    shutil.rmtree(cluster.root / "master")
    cluster.restart_master()
    await datanodes_back(cluster)
    assert [(v["name"], v["owner"]) for v in await cluster.client().list()] == [("saved.mp4", "erin")]
    assert await read_all(cluster, "saved.mp4") == data
    assert cluster.sign_in("erin", "erin's password")


async def test_snapshots_are_taken_on_schedule_and_only_the_newest_kept(fresh_cluster):
    """With a short --snapshot-interval the master keeps taking snapshots, and the older
    ones are retired: each datanode ends up holding the newest few, not all of them."""
    cluster = fresh_cluster(master_args=("--snapshot-interval", "0.5"))
    await put(cluster, "one.mp4", mp4_bytes(os.urandom(5_000)))

    def snapshots_taken() -> int:
        return master_log(cluster).count(" taken (")

    def is_snapshot(meta: Path) -> bool:
        try:
            return json.loads(meta.read_text())["kind"] == "index-snapshot"
        except FileNotFoundError:  # retired between the listing and the read (a CI run saw it)
            return False

    def snapshots_held() -> list[int]:
        return [sum(map(is_snapshot, cluster.folder(node).glob("*.meta"))) for node in cluster.datanodes]

    await wait_until(lambda: snapshots_taken() >= SNAPSHOTS_KEPT + 3, "several snapshots taken", 30)
    await wait_until(lambda: max(snapshots_held()) <= SNAPSHOTS_KEPT, "old snapshots deleted", 10)
    assert sum(snapshots_held()) >= SNAPSHOTS_KEPT  # the newest are kept, replicated


async def test_master_killed_while_writing_a_snapshot_recovers_from_the_previous_one(fresh_cluster):
    """SIGKILL the master while its stop-time snapshot is being written (the datanodes are
    paused, so the write cannot finish): nothing of it is published, and recovery loads the
    previous snapshot, with the account it holds."""
    cluster = fresh_cluster(master_args=("--snapshot-interval", "3600"))
    await cluster.client().add_user("fay", "fay's password", "viewer")
    data = mp4_bytes(os.urandom(8_000))
    await put(cluster, "before.mp4", data)
    cluster.master.stop()  # snapshot 1
    cluster.restart_master()
    await datanodes_back(cluster)
    for node in cluster.datanodes:
        node.pause()
    os.kill(cluster.master.process.pid, signal.SIGTERM)  # starts the stop-time snapshot
    await wait_until(lambda: master_log(cluster).count("taking an index snapshot") == 2, "snapshot begun", 5)
    await asyncio.sleep(0.5)  # its replicas are being opened on the paused datanodes
    cluster.master.kill()
    for node in cluster.datanodes:
        node.resume()
    assert len([s for s in sidecars_on_disk(cluster) if s["kind"] == "index-snapshot"]) == 3

    recover_master(cluster)
    await datanodes_back(cluster)
    assert [v["name"] for v in await cluster.client().list()] == ["before.mp4"]
    assert await read_all(cluster, "before.mp4") == data
    assert cluster.sign_in("fay", "fay's password")
    assert "newer snapshot" not in master_log(cluster)  # nothing torn was even published


async def test_without_any_snapshot_the_videos_come_back_from_sidecars_alone(fresh_cluster):
    """A master that died before its first snapshot: every video, title and visibility is
    rebuilt from the sidecars; the summary says accounts other than admin are lost."""
    cluster = fresh_cluster(master_args=("--snapshot-interval", "3600"))
    admin = cluster.client()
    videos = {f"only-{i}.mp4": mp4_bytes(os.urandom(7_000 + i)) for i in range(2)}
    for name, data in videos.items():
        await put(cluster, name, data)
    await admin.update_video("only-0.mp4", "Only from its sidecar", "")
    await admin.set_visibility("only-1.mp4", "private")
    await wait_until(
        lambda: (
            sidecar_titles(cluster).get("only-1.mp4", set()) == {(2, "only 1", "private")}
            and {entry[1] for entry in sidecar_titles(cluster).get("only-0.mp4", set())}
            == {"Only from its sidecar"}
        ),
        "the changes in the sidecars",
        15,
    )

    recover_master(cluster)
    await datanodes_back(cluster)
    after = {video["name"]: video for video in await cluster.client().list()}
    assert (after["only-0.mp4"]["title"], after["only-1.mp4"]["visibility"]) == (
        "Only from its sidecar",
        "private",
    )
    for name, data in videos.items():
        assert await read_all(cluster, name) == data
    assert "no intact index snapshot was found" in master_log(cluster)


async def test_renditions_survive_recovery_or_are_made_again(fresh_cluster, http):
    """A rendition's blob carries a sidecar of kind rendition with its height. After the
    loss of the master's disk, a video transcoded before the snapshot is ready again with
    its rendition (HLS plays); one transcoded after it is transcoded again and gets ready."""
    cluster = fresh_cluster(master_args=("--snapshot-interval", "3600"))
    before, after = source_bytes(2.0), source_bytes(3.0)
    assert (await upload(http, cluster, "before.mp4", before))[0] == 201
    await rendition_listed(http, cluster, "before.mp4")
    admin = cluster.client()

    async def sidecars_current() -> bool:
        return (await admin.status())["sidecars_behind"] == 0

    await wait_until(sidecars_current, "the rendition in the sidecars", 15)
    renditions = [s for s in sidecars_on_disk(cluster) if s["kind"] == "rendition"]
    assert renditions and {s["height"] for s in renditions} == {240}
    assert all(s["record"]["renditions"][0]["blob_id"] == s["blob_id"] for s in renditions)
    cluster.master.stop()  # the snapshot holds the rendition and its fragment index
    cluster.restart_master()
    await datanodes_back(cluster)
    assert (await upload(http, cluster, "after.mp4", after))[0] == 201
    await rendition_listed(http, cluster, "after.mp4")
    admin = cluster.client()
    await wait_until(sidecars_current, "the late upload in the sidecars", 15)

    recover_master(cluster)
    await datanodes_back(cluster)
    assert [r["height"] for r in (await record(http, cluster, "before.mp4"))["renditions"]] == [240]
    async with http.get(f"{cluster.url}/hls/before.mp4/240.m3u8", headers=cluster.admin_headers()) as answer:
        assert answer.status == 200
    assert "1 video lost renditions, which transcoding makes again: after.mp4" in master_log(cluster)
    await rendition_listed(http, cluster, "after.mp4")


async def rendition_listed(http, cluster: Cluster, name: str) -> None:
    """Wait until the video lists a rendition (a source browsers play is "ready" before)."""

    async def listed() -> bool:
        return bool((await record(http, cluster, name))["renditions"])

    await wait_until(listed, f"a rendition of {name}", 90)


def test_a_master_stopped_without_datanodes_says_why_no_snapshot_was_taken(tmp_path):
    """A master that stops before any datanode joined (started alone, as `--restore`
    is) logs one WARNING saying how many datanodes a snapshot needs, and no ERROR; it
    used to log 'ERROR index snapshot failed: ... try again once more are up'."""
    log_path = tmp_path / "master.log"
    master = start_role("myyoutube.master", ["--port", "0", "--data-dir", str(tmp_path / "m")], log_path)
    assert master.stop() == 0
    log = log_path.read_text()
    assert "no index snapshot taken: 0 datanodes are up and 2 are needed to store it" in log
    assert " ERROR " not in log
