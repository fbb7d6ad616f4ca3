"""Transcode jobs: who runs which, leases, retries and what a viewer sees (pure).

Theory of operation
-------------------
Every rung of a video's ladder is one job. A job is QUEUED until a datanode with a free
transcode slot heartbeats; it is then leased to that node (RUNNING, `attempts` counted at
each lease) for `lease_s`, and every heartbeat that reports it renews the lease and
updates its progress. It ends DONE when the node stored its rendition (the master commits
the rendition and the job's end in one transaction), or goes back to QUEUED after a
failure with a backoff doubling per attempt, until MAX_ATTEMPTS leases all failed:
FAILED, with the last reason. An expired lease (node dead, restarted, partitioned) puts
the job back too, after the first backoff, but costs it no attempt: the worker runs
apart from its node, so losing the node says nothing about the source, and a cluster
restarted three times during a long transcode must not fail the video for good.
A node's heartbeat lists every job it runs, so a job leased to a node that reports
neither running nor failing it is lost at once (the node restarted, or never received
the lease), without waiting out the lease.

Choosing work follows HDFS's rule for replication commands: prefer the node that holds a
replica of the source (it reads it from its own disk, no network copy). A node that does
not hold it gets the job only once it has waited LOCAL_PREFERENCE_S for a holder, or when
no live transcoding node holds it. Lower rungs go first: the first watchable rendition
comes as early as it can.

Nothing here reads a clock or touches the index; `now` is passed in, and the caller
(master/transcoding.py) persists every change this module decides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
JOB_STATES = (QUEUED, RUNNING, DONE, FAILED)

# A job is given up after this many leases ended without a rendition: a source that
# crashes the transcoder three times will crash it a fourth, and each try costs minutes
# of CPU on a busy node.
MAX_ATTEMPTS = 3

# The wait before the second attempt, in heartbeats; it doubles for each later one. A few
# heartbeats let a node that just died be noticed (and another chosen) first.
RETRY_BACKOFF_HEARTBEATS = 4

# How long a queued job waits for a node that holds its source before any node may take
# it (and fetch the source through the master), in heartbeats: long enough for every
# node to have heartbeat once, short against a transcode's minutes.
LOCAL_PREFERENCE_HEARTBEATS = 3

# What viewers see (the public record's `state`).
PROCESSING, READY, BROKEN = "processing", "ready", "failed"


@dataclass(frozen=True)
class Job:
    """One rung of one video to make."""

    job_id: str
    video: str  # the video's name
    rung: dict  # media.Rung.to_dict()
    state: str
    attempts: int  # leases so far
    node: str | None  # the node holding the lease while RUNNING
    lease_until: float
    not_before: float  # a retried job waits for its backoff
    progress: float  # 0..1 while RUNNING; 1 once DONE
    failure: str | None  # the last attempt's reason
    created_at: float

    @property
    def height(self) -> int:
        return int(self.rung["height"])

    @property
    def short_side(self) -> int:
        return min(int(self.rung["width"]), int(self.rung["height"]))


def new_jobs(job_ids: Iterable[str], video: str, rungs: Iterable[dict], now: float) -> list[Job]:
    """Queued jobs for each of a video's rungs."""
    return [
        Job(job_id, video, rung, QUEUED, 0, None, 0.0, now, 0.0, None, now)
        for job_id, rung in zip(job_ids, rungs, strict=True)
    ]


def lease(job: Job, node: str, now: float, lease_s: float) -> Job:
    return dataclasses.replace(
        job, state=RUNNING, node=node, attempts=job.attempts + 1, lease_until=now + lease_s, progress=0.0
    )


def renew(job: Job, progress: float, now: float, lease_s: float) -> Job:
    """A heartbeat reported the job alive at `progress` (clamped to 0..1)."""
    return dataclasses.replace(job, progress=min(1.0, max(0.0, progress)), lease_until=now + lease_s)


def finished(job: Job) -> Job:
    """The job's rendition is stored."""
    return dataclasses.replace(job, state=DONE, node=None, progress=1.0)


def backoff_s(attempts: int, heartbeat_s: float) -> float:
    """The wait after `attempts` failed leases: RETRY_BACKOFF_HEARTBEATS heartbeats,
    doubled for each attempt after the first."""
    return RETRY_BACKOFF_HEARTBEATS * heartbeat_s * 2 ** max(0, attempts - 1)


def failed(job: Job, reason: str, now: float, heartbeat_s: float) -> Job:
    """An attempt ended without a rendition: queued again after its backoff, or FAILED
    for good after MAX_ATTEMPTS."""
    if job.attempts >= MAX_ATTEMPTS:
        return dataclasses.replace(job, state=FAILED, node=None, failure=reason, progress=0.0)
    return dataclasses.replace(
        job,
        state=QUEUED,
        node=None,
        failure=reason,
        progress=0.0,
        not_before=now + backoff_s(job.attempts, heartbeat_s),
    )


def lost(job: Job, reason: str, now: float, heartbeat_s: float) -> Job:
    """The job's node stopped reporting it (see the module docstring): queued again after
    the first backoff, its attempt given back."""
    return dataclasses.replace(
        job,
        state=QUEUED,
        node=None,
        attempts=max(0, job.attempts - 1),
        failure=reason,
        progress=0.0,
        not_before=now + backoff_s(1, heartbeat_s),
    )


def expired(jobs: Iterable[Job], now: float) -> list[Job]:
    """Running jobs whose lease ran out: their node died or stalled."""
    return [job for job in jobs if job.state == RUNNING and job.lease_until < now]


def unreported(jobs: Iterable[Job], node: str, reported: set[str]) -> list[Job]:
    """Running jobs leased to `node` that its heartbeat did not mention: it lists every job
    it runs or failed since its last one, so these it no longer has (it restarted, or the
    answer that leased them never reached it)."""
    return [job for job in jobs if job.state == RUNNING and job.node == node and job.job_id not in reported]


def restarted(job: Job, now: float, lease_s: float) -> Job:
    """A master starting again gives each running job a fresh lease: its node is likely
    still at it and will report it at its next heartbeat."""
    return dataclasses.replace(job, lease_until=now + lease_s) if job.state == RUNNING else job


def choose(
    jobs: Iterable[Job],
    node: str,
    free_slots: int,
    holders: Mapping[str, frozenset[str]],
    transcoders: frozenset[str],
    now: float,
    heartbeat_s: float,
) -> list[Job]:
    """Which queued jobs to lease to `node` now (at most `free_slots`).

    `holders` maps a video's name to the nodes holding a replica of its source;
    `transcoders` are the live nodes that run jobs. Jobs whose source `node` holds come
    first; another waits LOCAL_PREFERENCE_HEARTBEATS for a holder unless no transcoder
    holds its source. Within each, lower rungs and older jobs first.
    """
    if free_slots <= 0:
        return []
    patience_s = LOCAL_PREFERENCE_HEARTBEATS * heartbeat_s
    local, remote = [], []
    for job in jobs:
        if job.state != QUEUED or job.not_before > now:
            continue
        held_by = holders.get(job.video, frozenset())
        if node in held_by:
            local.append(job)
        elif not (held_by & transcoders) or now - job.not_before >= patience_s:
            remote.append(job)

    def order(job: Job) -> tuple:
        return (job.short_side, job.created_at, job.job_id)

    return (sorted(local, key=order) + sorted(remote, key=order))[:free_slots]


@dataclass(frozen=True)
class Seen:
    """What a viewer sees of a video's transcoding."""

    state: str
    progress: int  # percent, meaningful while processing
    failure: str | None


def seen(jobs: Iterable[Job], renditions: int) -> Seen:
    """A video's state from its jobs not yet done and the number of `renditions` made:
    processing while any job is queued or running (progress counts each rendition and
    failed job as whole, running ones by their progress); then ready if there is a
    rendition or nothing was to be done, failed (with the reason) if every job failed."""
    jobs = list(jobs)
    failure = next((job.failure for job in jobs if job.state == FAILED), None)
    if any(job.state in (QUEUED, RUNNING) for job in jobs):
        done = renditions + sum(1.0 if job.state == FAILED else job.progress for job in jobs)
        return Seen(PROCESSING, min(99, int(100 * done / (renditions + len(jobs)))), failure)
    if failure is not None and not renditions:
        return Seen(BROKEN, 0, failure)
    return Seen(READY, 100, failure)
