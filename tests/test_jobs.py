"""The transcode job rules (master/jobs.py), without sockets or clocks."""

from __future__ import annotations

from myyoutube.master import jobs
from myyoutube.master.jobs import DONE, FAILED, QUEUED, RUNNING

HEARTBEAT_S = 1.0
LEASE_S = 10.0


def rung(height: int) -> dict:
    return {"name": f"{height}p", "width": height * 16 // 9, "height": height}


def queued(video: str = "a.mp4", heights=(240, 360), now: float = 0.0) -> list[jobs.Job]:
    return jobs.new_jobs([f"{video}-{h}" for h in heights], video, [rung(h) for h in heights], now)


def choose(all_jobs, node="n1", slots=1, holders=None, transcoders=("n1", "n2"), now=100.0):
    holders = {video: frozenset(nodes) for video, nodes in (holders or {}).items()}
    return jobs.choose(all_jobs, node, slots, holders, frozenset(transcoders), now, HEARTBEAT_S)


def test_a_node_gets_the_jobs_whose_source_it_holds_lowest_rung_first():
    """Of two videos, the node is given the one whose source it holds, its 240p rung first."""
    all_jobs = queued("far.mp4", now=0.0) + queued("near.mp4", now=50.0)
    holders = {"near.mp4": {"n1"}, "far.mp4": {"n2"}}
    assert [j.job_id for j in choose(all_jobs, holders=holders, slots=1)] == ["near.mp4-240"]
    assert [j.job_id for j in choose(all_jobs, holders=holders, slots=2)] == ["near.mp4-240", "near.mp4-360"]


def test_a_job_waits_for_a_holder_before_a_non_holder_takes_it():
    """A job whose source another transcoding node holds waits LOCAL_PREFERENCE_HEARTBEATS
    for it; after that (or when no transcoder holds it) any node may take it."""
    all_jobs = queued("a.mp4", heights=(240,), now=100.0)
    holders = {"a.mp4": {"n2"}}
    assert choose(all_jobs, holders=holders, now=101.0) == []
    patience = jobs.LOCAL_PREFERENCE_HEARTBEATS * HEARTBEAT_S
    assert len(choose(all_jobs, holders=holders, now=100.0 + patience)) == 1
    assert len(choose(all_jobs, holders=holders, transcoders=("n1",), now=101.0)) == 1


def test_no_free_slot_no_job_and_running_or_backing_off_jobs_are_not_given():
    all_jobs = queued()
    assert choose(all_jobs, slots=0, holders={"a.mp4": {"n1"}}) == []
    leased = jobs.lease(all_jobs[0], "n1", 100.0, LEASE_S)
    waiting = jobs.failed(jobs.lease(all_jobs[1], "n1", 100.0, LEASE_S), "boom", 100.0, HEARTBEAT_S)
    assert choose([leased, waiting], slots=2, holders={"a.mp4": {"n1"}}, now=101.0) == []


def test_a_lease_expires_unless_renewed_and_the_job_goes_back_with_backoff():
    """A running job's lease runs out when no heartbeat renews it; it is queued again and
    waits the first backoff (a failure's backoff doubles with each attempt)."""
    job = jobs.lease(queued()[0], "n1", 0.0, LEASE_S)
    assert job.state == RUNNING and job.attempts == 1 and job.node == "n1"
    assert jobs.expired([job], 5.0) == []
    renewed = jobs.renew(job, 0.5, 8.0, LEASE_S)
    assert renewed.progress == 0.5 and jobs.expired([renewed], 15.0) == []
    assert jobs.expired([renewed], 18.5) == [renewed]
    back = jobs.lost(renewed, "the node died", 18.5, HEARTBEAT_S)
    assert (back.state, back.node, back.failure, back.attempts) == (QUEUED, None, "the node died", 0)
    assert back.not_before == 18.5 + jobs.backoff_s(1, HEARTBEAT_S)
    assert jobs.backoff_s(2, HEARTBEAT_S) == 2 * jobs.backoff_s(1, HEARTBEAT_S)


def test_a_job_its_node_no_longer_reports_is_found_at_once():
    """A node's heartbeat lists every job it runs or failed: a job leased to it and missing
    from that list (the node restarted, or never got the lease) is picked out without
    waiting for its lease; jobs of other nodes, reported ones and queued ones are not."""
    first, second, third = queued(heights=(240, 360, 480))
    mine = jobs.lease(first, "n1", 0.0, LEASE_S)
    reported = jobs.lease(second, "n1", 0.0, LEASE_S)
    elsewhere = jobs.lease(third, "n2", 0.0, LEASE_S)
    active = [mine, reported, elsewhere, queued()[0]]
    assert jobs.unreported(active, "n1", {reported.job_id}) == [mine]
    assert jobs.unreported(active, "n1", {mine.job_id, reported.job_id}) == []
    assert jobs.unreported(active, "n3", set()) == []


def test_losing_the_node_any_number_of_times_never_fails_a_job():
    """A lease that expires (node killed, restarted, cut off) gives its attempt back:
    a job whose node is lost more than MAX_ATTEMPTS times is still queued, after the
    first backoff each time, and a real failure afterwards still counts as the first."""
    job, now = queued()[0], 0.0
    for _ in range(jobs.MAX_ATTEMPTS + 2):
        now = max(now, job.not_before)
        job = jobs.lost(jobs.lease(job, "n1", now, LEASE_S), "gone", now + LEASE_S, HEARTBEAT_S)
        assert (job.state, job.attempts) == (QUEUED, 0)
        assert job.not_before == now + LEASE_S + jobs.backoff_s(1, HEARTBEAT_S)
    now = job.not_before
    job = jobs.failed(jobs.lease(job, "n1", now, LEASE_S), "boom", now, HEARTBEAT_S)
    assert (job.state, job.attempts) == (QUEUED, 1)


def test_a_job_fails_for_good_after_max_attempts_with_the_last_reason():
    job = queued()[0]
    now = 0.0
    for attempt in range(1, jobs.MAX_ATTEMPTS + 1):
        now = max(now, job.not_before)
        job = jobs.failed(jobs.lease(job, "n1", now, LEASE_S), f"reason {attempt}", now, HEARTBEAT_S)
    assert (
        job.state == FAILED
        and job.attempts == jobs.MAX_ATTEMPTS
        and job.failure == f"reason {jobs.MAX_ATTEMPTS}"
    )
    assert choose([job], holders={"a.mp4": {"n1"}}, now=10**9) == []


def test_progress_is_clamped_and_a_restarted_master_gives_running_jobs_a_fresh_lease():
    job = jobs.lease(queued()[0], "n1", 0.0, LEASE_S)
    assert jobs.renew(job, 7.0, 1.0, LEASE_S).progress == 1.0
    assert jobs.renew(job, -1.0, 1.0, LEASE_S).progress == 0.0
    assert jobs.restarted(job, 500.0, LEASE_S).lease_until == 510.0
    assert jobs.restarted(queued()[0], 500.0, LEASE_S) == queued()[0]


def test_what_a_viewer_sees():
    """processing while any job is left, progress counting renditions made and failed jobs
    as whole; ready once none is left with at least one rendition (or nothing was to be
    done); failed, with the reason, when every job failed."""
    first, second = queued()
    assert jobs.seen([], 0) == jobs.Seen("ready", 100, None)
    half = jobs.renew(jobs.lease(first, "n1", 0.0, LEASE_S), 0.5, 1.0, LEASE_S)
    assert jobs.seen([half, second], 0) == jobs.Seen("processing", 25, None)
    assert jobs.finished(half).state == DONE
    assert jobs.seen([second], 1).progress == 50  # the first rung is a rendition now
    broken = [jobs.Job(**{**j.__dict__, "state": FAILED, "failure": "bad"}) for j in (first, second)]
    assert jobs.seen(broken, 0) == jobs.Seen("failed", 0, "bad")
    assert jobs.seen(broken[1:], 1) == jobs.Seen("ready", 100, "bad")
