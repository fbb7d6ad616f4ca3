"""Tests for myyoutube.master.index: schema migration, blob ownership, what survives a reopen."""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import threading
from pathlib import Path

import pytest

from myyoutube.master import jobs, transcoding
from myyoutube.master.blob_ownership import RETIRED_KEEP_S
from myyoutube.master.index import Index, StoredBlob
from myyoutube.master.schema import SCHEMA_VERSION, IndexTooNew
from myyoutube.master.upload_sessions import Session

OLD_INDEX_SQL = Path(__file__).with_name("data") / "index-v0.sql"
NOW = 1_800_000_000.0
NODES = ["127.0.0.1:7101", "127.0.0.1:7102"]


def old_index(tmp_path: Path) -> Path:
    """An index file exactly as the first release wrote it (user_version 0)."""
    path = tmp_path / "index.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_INDEX_SQL.read_text())
    return path


def commit(index: Index, name: str, blob_id: str) -> None:
    index.ownership.begin_blob(blob_id, NOW)
    video = {"name": name, "blob_id": blob_id, "size": 10, "sha256": "0" * 64, "content_type": "video/mp4"}
    index.commit_video(dict(video, uploaded_at=NOW), [StoredBlob(blob_id, 10, "0" * 64, NODES)], NOW)


def test_old_index_is_migrated_and_keeps_its_videos(tmp_path):
    """An index written by the previous release opens, is migrated to the current schema
    version, and still lists its video with its poster and replicas."""
    path = old_index(tmp_path)
    index = Index(path, NOW)
    assert index.videos["holiday.mp4"]["duration_s"] == 6.0
    assert index.videos["holiday.mp4"]["poster_blob_id"] == "b" * 32
    assert sorted(index.replicas["a" * 32].nodes) == ["127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"]
    assert index.ownership.retired == set()
    # Videos from before accounts belong to the first admin and stay public.
    assert (index.videos["holiday.mp4"]["owner"], index.videos["holiday.mp4"]["visibility"]) == (
        "admin",
        "public",
    )
    assert index.users.accounts == {}
    index.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    reopened = Index(path, NOW)  # a second open migrates nothing and loses nothing
    assert list(reopened.videos) == ["holiday.mp4"]
    reopened.close()


def test_old_index_gets_titles_search_and_sort_keys(tmp_path):
    """Migrating an index of the first release gives its video a title made from the file
    name, an empty description and no views; search and every sort order find it."""
    index = Index(old_index(tmp_path), NOW)
    video = index.videos["holiday.mp4"]
    assert (video["title"], video["description"], video["views"]) == ("holiday", "", 0)
    page = index.catalogue.page("HOLIDAY", "", "", 10)
    assert [v["name"] for v in page.videos] == ["holiday.mp4"] and page.highlights == [[[0, 7]]]
    for sort in ("newest", "oldest", "title", "duration", "views"):
        assert [v["name"] for v in index.catalogue.page("", sort, "", 10).videos] == ["holiday.mp4"]
    commit(index, "holiday_2.mp4", "c" * 32)  # a new upload joins the migrated search index
    assert sorted(v["name"] for v in index.catalogue.page("holiday", "", "", 10).videos) == [
        "holiday.mp4",
        "holiday_2.mp4",
    ]
    index.close()


def test_index_from_a_newer_release_is_refused(tmp_path):
    """An index whose schema is newer than this release is refused rather than damaged."""
    path = tmp_path / "index.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(IndexTooNew, match="newer"):
        Index(path, NOW)


def test_write_pending_at_a_crash_is_retired_on_reopen(tmp_path):
    """A blob begun but neither committed nor abandoned (the master died mid-upload) is
    retired when the index reopens: its copies are known garbage."""
    path = tmp_path / "index.sqlite3"
    index = Index(path, NOW)
    index.ownership.begin_blob("c" * 32, NOW)
    commit(index, "kept.mp4", "d" * 32)
    index.close()
    reopened = Index(path, NOW + 1)
    assert reopened.ownership.retired == {"c" * 32}
    assert "d" * 32 in reopened.replicas and "d" * 32 not in reopened.ownership.retired
    reopened.close()


def test_deleted_and_abandoned_blobs_are_retired_durably(tmp_path):
    """Deleting a video and abandoning an upload both retire the blob ids, across a reopen."""
    path = tmp_path / "index.sqlite3"
    index = Index(path, NOW)
    commit(index, "gone.mp4", "e" * 32)
    index.ownership.begin_blob("f" * 32, NOW)
    index.delete_video("gone.mp4", NOW)
    index.ownership.abandon_blobs(["f" * 32], NOW)
    index.close()
    reopened = Index(path, NOW)
    assert reopened.ownership.retired == {"e" * 32, "f" * 32}
    assert reopened.videos == {} and reopened.replicas == {}
    reopened.close()


def test_purge_retires_only_blobs_the_index_does_not_know(tmp_path):
    """An operator's purge retires unknown ids, never a committed blob."""
    index = Index(tmp_path / "index.sqlite3", NOW)
    commit(index, "live.mp4", "1" * 32)
    assert index.ownership.retire_orphans(["2" * 32, "1" * 32, "2" * 32], NOW) == ["2" * 32]
    assert index.ownership.retired == {"2" * 32}
    index.close()


def test_retired_ids_are_forgotten_after_the_keep_period(tmp_path):
    """Retired ids are kept RETIRED_KEEP_S, then pruned, so the table stays bounded."""
    path = tmp_path / "index.sqlite3"
    index = Index(path, NOW)
    index.ownership.abandon_blobs(["3" * 32], NOW)
    index.ownership.prune_retired(NOW + RETIRED_KEEP_S - 1)
    assert index.ownership.retired == {"3" * 32}
    index.ownership.prune_retired(NOW + RETIRED_KEEP_S + 1)
    assert index.ownership.retired == set()
    index.close()
    assert Index(path, NOW).ownership.retired == set()


def test_owner_and_visibility_survive_a_reopen(tmp_path):
    """A video's owner and visibility are stored with it, and a change of visibility is durable."""
    path = tmp_path / "index.sqlite3"
    index = Index(path, NOW)
    index.ownership.begin_blob("4" * 32, NOW)
    video = {"name": "mine.mp4", "blob_id": "4" * 32, "size": 10, "sha256": "0" * 64}
    video |= {"content_type": "video/mp4", "uploaded_at": NOW, "owner": "olga", "visibility": "private"}
    index.commit_video(video, [StoredBlob("4" * 32, 10, "0" * 64, NODES)], NOW)
    assert index.stored_bytes_of("olga") == 10 and index.stored_bytes_of("admin") == 0
    index.set_visibility("mine.mp4", "unlisted")
    index.close()
    reopened = Index(path, NOW)
    assert (reopened.videos["mine.mp4"]["owner"], reopened.videos["mine.mp4"]["visibility"]) == (
        "olga",
        "unlisted",
    )
    assert "owner" not in json_extra(path, "mine.mp4")
    reopened.close()


def test_stored_bytes_per_owner_follow_commits_deletes_and_a_reopen(tmp_path):
    """What an owner's quota counts is kept as videos come and go (no walk over every
    video per request), and is the same after a reopen."""
    path = tmp_path / "index.sqlite3"
    index = Index(path, NOW)
    for number, (owner, size) in enumerate([("olga", 10), ("olga", 5), ("piet", 7)]):
        blob_id = f"{number:032x}"
        index.ownership.begin_blob(blob_id, NOW)
        video = {"name": f"v{number}.mp4", "blob_id": blob_id, "size": size, "sha256": "0" * 64}
        video |= {"content_type": "video/mp4", "uploaded_at": NOW, "owner": owner}
        index.commit_video(video, [StoredBlob(blob_id, size, "0" * 64, NODES)], NOW)
    assert (index.stored_bytes_of("olga"), index.stored_bytes_of("piet")) == (15, 7)
    index.delete_video("v0.mp4", NOW)
    index.delete_video("v2.mp4", NOW)
    assert (index.stored_bytes_of("olga"), index.stored_bytes_of("piet")) == (5, 0)
    index.close()
    reopened = Index(path, NOW)
    assert (reopened.stored_bytes_of("olga"), reopened.stored_bytes_of("piet")) == (5, 0)
    reopened.close()


def json_extra(path: Path, name: str) -> dict:
    with sqlite3.connect(path) as db:
        return json.loads(db.execute("SELECT extra FROM videos WHERE name = ?", (name,)).fetchone()[0])


def test_jobs_and_renditions_survive_a_reopen_and_go_with_their_video(tmp_path):
    """A video committed with its transcode jobs keeps them across a reopen (an old index
    gets the tables too); a rendition is committed with its job's end and listed with its
    height, width and bandwidth, its fragment index kept on disk; deleting the video drops
    its jobs and rows and retires the original and every rendition blob."""
    path = old_index(tmp_path)
    index = Index(path, NOW)
    new = jobs.new_jobs(
        ["j240", "j360"], "clip.mp4", [{"name": "240p", "width": 320, "height": 240}] * 2, NOW
    )
    index.ownership.begin_blob("c" * 32, NOW)
    video = {
        "name": "clip.mp4",
        "blob_id": "c" * 32,
        "content_type": "video/mp4",
        "uploaded_at": NOW,
        "size": 10,
    }
    index.commit_video(video, [StoredBlob("c" * 32, 10, "0" * 64, NODES)], NOW, new)
    index.jobs.save([jobs.lease(new[0], NODES[0], NOW, 10.0)])
    index.close()

    index = Index(path, NOW)
    assert {j.job_id: (j.state, j.attempts) for j in index.jobs.of_video("clip.mp4")} == {
        "j240": ("running", 1),
        "j360": ("queued", 0),
    }
    fragment_index = json.dumps({"width": 320, "height": 240, "size": 5})
    index.ownership.begin_blob("d" * 32, NOW)
    done = jobs.finished(index.jobs.jobs["j240"])
    index.commit_rendition(done, StoredBlob("d" * 32, 5, "1" * 64, NODES), fragment_index, 99_000, NOW)
    index.close()

    index = Index(path, NOW)
    assert index.videos["clip.mp4"]["renditions"] == [
        {"height": 240, "width": 320, "bandwidth": 99_000, "blob_id": "d" * 32}
    ]
    assert [job.job_id for job in index.jobs.of_video("clip.mp4")] == ["j360"]  # done jobs stay on disk only
    assert index.jobs.fragment_indexes("clip.mp4") == {240: fragment_index}
    index.delete_video("clip.mp4", NOW)
    assert {"c" * 32, "d" * 32} <= index.ownership.retired and index.jobs.of_video("clip.mp4") == []
    index.close()
    index = Index(path, NOW)
    assert index.jobs.jobs == {} and index.jobs.fragment_indexes("clip.mp4") == {}
    index.close()


def test_videos_stored_before_transcoding_get_their_jobs_from_a_bounded_backlog(tmp_path):
    """The videos an older release stored (picture size known) form a backlog, oldest
    first; they are queued only while fewer than BACKLOG_ACTIVE_JOBS jobs are active, and
    once they have jobs they are no longer in the backlog."""
    index = Index(old_index(tmp_path), NOW)
    backlog = transcoding.untranscoded(index)
    assert list(backlog) == ["holiday.mp4"]
    busy = jobs.new_jobs(
        [f"{n:032x}" for n in range(transcoding.BACKLOG_ACTIVE_JOBS)],
        "holiday.mp4",
        [{"name": "240p", "width": 426, "height": 240}] * transcoding.BACKLOG_ACTIVE_JOBS,
        NOW,
    )
    index.jobs.remember_all(busy)  # as if that many jobs were waiting (in memory only)
    assert transcoding.queue_from_backlog(index, backlog, NOW) == 0 and list(backlog) == ["holiday.mp4"]
    index.jobs.save([jobs.finished(job) for job in busy])
    assert transcoding.queue_from_backlog(index, backlog, NOW) == 2 and not backlog  # 640x360: 240p, 360p
    assert [job.rung["name"] for job in index.jobs.of_video("holiday.mp4")] == ["240p", "360p"]
    assert not transcoding.untranscoded(index)
    index.close()


def test_upload_session_and_its_pending_blob_survive_a_reopen(tmp_path):
    """A resumable upload's session (offset, replicas, expiry) is durable, and its pending
    blob is not retired at reopen as an interrupted plain write is: the upload goes on
    after a master restart. An old index gains the table when it migrates."""
    path = old_index(tmp_path)
    index = Index(path, NOW)
    index.ownership.begin_blob("e" * 32, NOW)
    session = Session(
        "a" * 32, "e" * 32, "big.mp4", "admin", "public", "Big", 1000, 0, NODES, [], NOW, NOW + 60
    )
    index.upload_sessions.add(session)
    session.offset, session.replicas, session.former = 400, NODES[:1], NODES[1:]
    index.upload_sessions.save(session)
    index.close()
    reopened = Index(path, NOW + 1)
    kept = reopened.upload_sessions.sessions["a" * 32]
    assert (kept.offset, kept.replicas, kept.former, kept.name) == (400, NODES[:1], NODES[1:], "big.mp4")
    assert "e" * 32 not in reopened.ownership.retired
    reopened.upload_sessions.remove("a" * 32)
    reopened.close()
    assert Index(path, NOW + 2).upload_sessions.sessions == {}


def test_old_index_gets_record_versions_and_every_sidecar_due(tmp_path):
    """The recovery migration: videos stored before sidecars existed start at version 1 and are all
    due for sidecars, so an upgraded cluster describes its old blobs too."""
    index = Index(old_index(tmp_path), NOW)
    assert index.recovery.due() == sorted(index.videos)
    assert set(index.recovery.versions().values()) == {1}
    assert index.recovery.video_of_blob("b" * 32) == "holiday.mp4"  # its poster


async def test_durable_writes_fsync_the_log_in_a_worker_thread(tmp_path, monkeypatch):
    """index.durably commits a transaction and fsyncs the write-ahead log before it
    returns, from a worker thread (the event loop goes on relaying reads meanwhile); the
    write survives a reopen; a write that fails is neither committed nor fsynced, and its
    error comes out."""
    fsynced = []
    fdatasync = os.fdatasync

    def watched(fd: int) -> None:  # the real call, recording which file and which thread
        fsynced.append(
            (os.readlink(f"/proc/self/fd/{fd}"), threading.current_thread() is threading.main_thread())
        )
        fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", watched)  # SQLite's own fsyncs do not pass here
    path = tmp_path / "index.sqlite3"
    index = Index(path, NOW)
    await index.durably(functools.partial(index.ownership.begin_blob, "a" * 32, NOW))
    assert fsynced == [(f"{path}-wal", False)]
    with pytest.raises(sqlite3.IntegrityError):
        await index.durably(functools.partial(index.ownership.begin_blob, "a" * 32, NOW))  # begun twice
    assert len(fsynced) == 1
    reopened = Index(path, NOW + 1)
    assert "a" * 32 in reopened.ownership.retired  # the begun write was on disk: the next master owns it
