"""Transcode jobs and renditions in the master's index (SQLite, schema step 5).

Theory of operation
-------------------
Jobs not yet done are few (one per rung of each video still being transcoded, and the
failed ones) and are kept in memory as `jobs.Job` values, loaded once at start-up (a done
job is only a row: its rendition is in the video's record, and a million of them would
cost the master ~200 MB for nothing); every
change is written to SQLite first, in the caller's transaction where it must be atomic
with something else (a video's commit creates its jobs; a rendition's commit ends its
job). Progress is not written: it changes at every heartbeat and is rebuilt by the next
one after a restart. Renditions are listed in each video's in-memory record (height,
width, bandwidth, blob id: a few dozen bytes); their fragment indexes stay on disk and are
read when a playlist is asked for.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable

from myyoutube.master import jobs
from myyoutube.master.jobs import Job

_JOB_COLUMNS = "job_id, video, rung, state, attempts, node, lease_until, not_before, failure, created_at"


class JobStore:
    def __init__(self, db: sqlite3.Connection, transaction: Callable) -> None:
        self._db = db
        self._transaction = transaction
        self.jobs: dict[str, Job] = {}
        self._by_video: dict[str, list[str]] = {}
        query = f"SELECT {_JOB_COLUMNS} FROM transcode_jobs WHERE state != ? ORDER BY created_at"
        for row in db.execute(query, (jobs.DONE,)):
            job_id, video, rung, state, attempts, node, lease_until, not_before, failure, created_at = row
            self._remember(
                Job(
                    job_id,
                    video,
                    json.loads(rung),
                    state,
                    attempts,
                    node,
                    lease_until,
                    not_before,
                    0.0,
                    failure,
                    created_at,
                )
            )

    def _remember(self, job: Job) -> None:
        if job.state == jobs.DONE:
            self._forget(job)
            return
        if job.job_id not in self.jobs:
            self._by_video.setdefault(job.video, []).append(job.job_id)
        self.jobs[job.job_id] = job

    def _forget(self, job: Job) -> None:
        if self.jobs.pop(job.job_id, None) is not None:
            self._by_video[job.video].remove(job.job_id)
            if not self._by_video[job.video]:
                del self._by_video[job.video]

    def of_video(self, name: str) -> list[Job]:
        """The video's jobs not yet done."""
        return [self.jobs[job_id] for job_id in self._by_video.get(name, ())]

    def active(self) -> list[Job]:
        """Jobs still to run or running."""
        return [job for job in self.jobs.values() if job.state in (jobs.QUEUED, jobs.RUNNING)]

    def insert(self, new: Iterable[Job]) -> list[Job]:
        """Inside the caller's transaction: write new jobs (remembered by `remember_all`)."""
        new = list(new)
        self._db.executemany(
            f"INSERT INTO transcode_jobs ({_JOB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [_row(job) for job in new],
        )
        return new

    def remember_all(self, new: Iterable[Job]) -> None:
        for job in new:
            self._remember(job)

    def write(self, job: Job) -> None:
        """Inside the caller's transaction: a job's new state, lease and attempts."""
        self._db.execute(
            "UPDATE transcode_jobs SET state = ?, attempts = ?, node = ?, lease_until = ?,"
            " not_before = ?, failure = ? WHERE job_id = ?",
            (job.state, job.attempts, job.node, job.lease_until, job.not_before, job.failure, job.job_id),
        )

    def save(self, changed: Iterable[Job]) -> None:
        """Write and remember changed jobs in one transaction."""
        changed = list(changed)
        if not changed:
            return
        with self._transaction():
            for job in changed:
                self.write(job)
        self.remember_all(changed)

    def update_in_memory(self, job: Job) -> None:
        """A change not worth a disk write (progress, a renewed lease), or one written in
        the caller's transaction."""
        self._remember(job)

    def forget_video(self, name: str) -> list[Job]:
        """Inside the caller's transaction: drop a video's jobs and renditions rows; the
        jobs it had (running ones are cancelled by the caller)."""
        self._db.execute("DELETE FROM transcode_jobs WHERE video = ?", (name,))
        self._db.execute("DELETE FROM renditions WHERE video = ?", (name,))
        return [self.jobs.pop(job_id) for job_id in self._by_video.pop(name, [])]

    def add(self, new: list[Job]) -> None:
        """Write and remember jobs in one transaction."""
        with self._transaction():
            self.insert(new)
        self.remember_all(new)

    def videos_with_jobs(self) -> set[str]:
        """Names of the videos that ever had a transcode job (done ones included)."""
        return {row[0] for row in self._db.execute("SELECT DISTINCT video FROM transcode_jobs")}

    def fragment_indexes(self, name: str) -> dict[int, str]:
        """height -> fragment index JSON of each finished rendition of video `name`."""
        query = "SELECT height, fragment_index FROM renditions WHERE video = ? ORDER BY height"
        return dict(self._db.execute(query, (name,)).fetchall())


def load_renditions(db: sqlite3.Connection, videos: dict[str, dict]) -> None:
    """Give each video record its `renditions` list (lowest first)."""
    for video in videos.values():
        video["renditions"] = []
    query = "SELECT video, height, width, bandwidth, blob_id FROM renditions ORDER BY video, height"
    for name, height, width, bandwidth, blob_id in db.execute(query):
        if name in videos:
            videos[name]["renditions"].append(rendition_entry(height, width, bandwidth, blob_id))


def rendition_entry(height: int, width: int, bandwidth: int, blob_id: str) -> dict:
    return {"height": height, "width": width, "bandwidth": bandwidth, "blob_id": blob_id}


def _row(job: Job) -> tuple:
    return (
        job.job_id,
        job.video,
        json.dumps(job.rung),
        job.state,
        job.attempts,
        job.node,
        job.lease_until,
        job.not_before,
        job.failure,
        job.created_at,
    )
