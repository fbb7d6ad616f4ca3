"""Tests for myyoutube.datanode.state: reconnect backoff, scrub pacing and order, rescan
pacing, and the datanode's side of block reports."""

from __future__ import annotations

import pytest

from myyoutube.datanode.state import (
    BACKOFF_FIRST_S,
    BACKOFF_MAX_S,
    FULL_REPORT_INTERVAL_S,
    MAX_PENDING_CHANGES,
    RESCAN_EVERY_HEARTBEATS,
    RESCAN_MAX_SHARE,
    SCRUB_TIMES_HEADER,
    Backoff,
    BlockReports,
    ScrubSchedule,
    full_report_chunks,
    pace_delay_s,
    rescan_delay_s,
)
from myyoutube.protocol import REPORT_CHUNK_ENTRIES, Heartbeat, RemoteProtocolError

DAY = 24 * 3600.0


# --- Backoff --------------------------------------------------------------------------------


def test_backoff_doubles_from_first_delay_up_to_the_cap():
    """Delays go 0.2, 0.4, 0.8, 1.6, 3.2 then stay at BACKOFF_MAX_S."""
    assert (BACKOFF_FIRST_S, BACKOFF_MAX_S) == (0.2, 5.0)
    backoff = Backoff()
    delays = [backoff.next_delay_s() for _ in range(8)]
    assert delays == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0])
    assert backoff.failures == 8


def test_backoff_success_resets_to_first_delay():
    """After succeeded(), the next delay is BACKOFF_FIRST_S again."""
    backoff = Backoff()
    for _ in range(5):
        backoff.next_delay_s()
    backoff.succeeded()
    assert backoff.failures == 0
    assert backoff.next_delay_s() == pytest.approx(BACKOFF_FIRST_S)


def test_backoff_stays_capped_after_many_failures():
    """After a hundred failures the delay is still exactly BACKOFF_MAX_S."""
    backoff = Backoff(failures=100)
    assert backoff.next_delay_s() == BACKOFF_MAX_S


def test_backoff_survives_a_very_long_outage():
    """Even after 2000 consecutive failures the delay is BACKOFF_MAX_S, not an exception."""
    backoff = Backoff(failures=2000)
    assert backoff.next_delay_s() == BACKOFF_MAX_S


# --- pace_delay_s ---------------------------------------------------------------------------


def test_pace_delay_waits_for_bytes_ahead_of_the_rate():
    """1 MB done after 0.25 s at 1 MB/s means waiting 0.75 s more."""
    assert pace_delay_s(1_000_000, started_at=10.0, now=10.25, bytes_per_s=1_000_000) == pytest.approx(0.75)


def test_pace_delay_is_zero_when_behind_the_rate():
    """Being slower than the rate never asks for a wait."""
    assert pace_delay_s(500_000, started_at=10.0, now=12.0, bytes_per_s=1_000_000) == 0.0


def test_pace_delay_is_zero_exactly_on_the_rate():
    """Being exactly on schedule asks for no wait."""
    assert pace_delay_s(2_000_000, started_at=0.0, now=2.0, bytes_per_s=1_000_000) == 0.0


def test_pace_delay_of_nothing_done_is_zero():
    """No bytes done yet means no wait."""
    assert pace_delay_s(0, started_at=5.0, now=5.0, bytes_per_s=10) == 0.0


# --- ScrubSchedule --------------------------------------------------------------------------


def test_scrub_never_verified_blobs_first_in_id_order():
    """Blobs never verified are due at once, lowest id first."""
    schedule = ScrubSchedule()
    schedule.verified("a", 100.0)
    assert schedule.next_blob({"a", "c", "b"}, now=100.0, interval_s=DAY) == "b"
    schedule.verified("b", 101.0)
    assert schedule.next_blob({"a", "c", "b"}, now=101.0, interval_s=DAY) == "c"


def test_scrub_nothing_due_until_interval_has_passed():
    """Once every blob is verified, nothing is due until the oldest verification is interval_s old."""
    schedule = ScrubSchedule()
    schedule.verified("a", 100.0)
    schedule.verified("b", 50.0)
    blobs = {"a", "b"}
    assert schedule.next_blob(blobs, now=50.0 + DAY - 1, interval_s=DAY) is None
    assert schedule.next_blob(blobs, now=50.0 + DAY, interval_s=DAY) == "b"
    schedule.verified("b", 50.0 + DAY)
    assert schedule.next_blob(blobs, now=100.0 + DAY - 0.5, interval_s=DAY) is None
    assert schedule.next_blob(blobs, now=100.0 + DAY, interval_s=DAY) == "a"


def test_scrub_picks_the_longest_ago_verified():
    """Among due blobs the one verified longest ago is next."""
    schedule = ScrubSchedule()
    for blob_id, at in {"x": 30.0, "y": 10.0, "z": 20.0}.items():
        schedule.verified(blob_id, at)
    assert schedule.next_blob({"x", "y", "z"}, now=1000.0, interval_s=60.0) == "y"


def test_scrub_forgets_blobs_that_are_gone():
    """A blob no longer stored is dropped from the schedule and never returned."""
    schedule = ScrubSchedule()
    schedule.verified("gone", 0.0)
    schedule.verified("kept", 5.0)
    assert schedule.next_blob({"kept"}, now=1000.0, interval_s=60.0) == "kept"
    assert schedule.verified_at == {"kept": 5.0}


def test_scrub_of_no_blobs_is_none():
    """With no blobs there is nothing to scrub, and old records are cleared."""
    schedule = ScrubSchedule()
    schedule.verified("old", 0.0)
    assert schedule.next_blob(set(), now=1000.0, interval_s=1.0) is None
    assert schedule.verified_at == {}


def test_scrub_schedule_survives_encoding():
    """What a node saves of its schedule is what it reads back at its next start."""
    schedule = ScrubSchedule()
    schedule.verified("a" * 32, 1_700_000_000.25)
    schedule.verified("b" * 32, 1_700_000_123.5)
    again = ScrubSchedule.decode(schedule.encode(), now=1_800_000_000.0)
    assert again.verified_at == schedule.verified_at


def test_scrub_schedule_skips_what_it_cannot_read():
    """A damaged line (a crash mid-write, a stray edit) or another format's file costs only
    those blobs' history (they are due at once), never the node's start."""
    data = (
        SCRUB_TIMES_HEADER.encode()
        + b"\n"
        + b"a" * 32
        + b" 100.5\n"
        + b"b" * 32
        + b" soon\n"
        + b"c" * 32
        + b" nan\n"
        + b"\xff\xfe 7\n"
        + b"d" * 32
    )
    decoded = ScrubSchedule.decode(data, now=1000.0)
    assert decoded.verified_at == {"a" * 32: 100.5, "\ufffd\ufffd": 7.0}
    assert decoded.next_blob({"a" * 32, "b" * 32}, now=1000.0, interval_s=DAY) == "b" * 32
    assert (
        ScrubSchedule.decode(b"myyoutube-scrub-times 2\n" + b"a" * 32 + b" 1.0\n", now=5.0).verified_at == {}
    )
    assert ScrubSchedule.decode(b"", now=5.0).verified_at == {}


def test_scrub_schedule_from_a_clock_set_back_is_due_an_interval_from_now():
    """A verification time later than now (the clock was set back since) counts as now:
    kept as it is, the blob would wait out the clock's jump on top of the interval."""
    schedule = ScrubSchedule()
    schedule.verified("a" * 32, 10_000.0)
    decoded = ScrubSchedule.decode(schedule.encode(), now=500.0)
    assert decoded.next_blob({"a" * 32}, now=500.0 + DAY, interval_s=DAY) == "a" * 32


# --- rescans ----------------------------------------------------------------------------------


def test_rescan_every_few_heartbeats_while_cheap():
    """A quick rescan runs every RESCAN_EVERY_HEARTBEATS heartbeats."""
    assert rescan_delay_s(heartbeat_s=3.0, last_rescan_s=0.01) == RESCAN_EVERY_HEARTBEATS * 3.0


def test_rescan_of_a_big_disk_takes_at_most_its_share_of_the_time():
    """A rescan that took 1 s is not repeated for 1 / RESCAN_MAX_SHARE seconds."""
    assert rescan_delay_s(heartbeat_s=3.0, last_rescan_s=1.0) == pytest.approx(1.0 / RESCAN_MAX_SHARE)


# --- block reports --------------------------------------------------------------------------


def acknowledge_all(reports: BlockReports, full_report: bool = False) -> None:
    reports.acknowledged(reports.seq, full_report)


def started(blobs: dict[str, int] | None = None) -> BlockReports:
    """Reports of a node that sent its first full report and had it acknowledged."""
    reports = BlockReports("incarnation")
    assert reports.full_due(0.0)
    reports.start_full(0.0)
    acknowledge_all(reports)
    return reports


def test_first_report_is_a_full_one_then_deltas():
    """At start-up a full report is due; once acknowledged, heartbeats carry deltas until
    FULL_REPORT_INTERVAL_S after the full report was taken."""
    reports = BlockReports("incarnation")
    assert reports.full_due(0.0)
    assert reports.start_full(10.0) == 1
    assert reports.full_due(11.0)  # sent, not acknowledged yet: cut off, it would go again
    acknowledge_all(reports)
    assert not reports.full_due(11.0)
    assert not reports.full_due(10.0 + FULL_REPORT_INTERVAL_S - 1)
    assert reports.full_due(10.0 + FULL_REPORT_INTERVAL_S)


def test_quiet_heartbeat_carries_nothing():
    """With nothing changed, a heartbeat is empty and based on the last acknowledged report."""
    reports = started()
    assert reports.heartbeat(100, 10) == Heartbeat(
        100, 10, seq=2, base_seq=1, added=[], removed=[], corrupt=[]
    )


def test_changes_are_carried_until_acknowledged():
    """A change goes in every heartbeat until one carrying it is acknowledged, then never again."""
    reports = started()
    reports.changed("new", 5)
    reports.changed("old", None)
    first = reports.heartbeat(100, 10)
    assert (first.added, first.removed, first.base_seq) == ([("new", 5)], ["old"], 1)
    again = reports.heartbeat(100, 10)  # no acknowledgement came (a lost answer)
    assert (again.seq, again.base_seq, again.added, again.removed) == (
        first.seq + 1,
        1,
        [("new", 5)],
        ["old"],
    )
    reports.acknowledged(again.seq, full_report=False)
    assert reports.heartbeat(100, 10).added == [] and reports.pending == 0


def test_change_made_while_a_report_is_in_flight_waits_for_the_next_one():
    """A change recorded after a heartbeat was sent survives that heartbeat's acknowledgement."""
    reports = started()
    reports.changed("a", 1)
    sent = reports.heartbeat(100, 10)
    reports.changed("b", 2)
    reports.acknowledged(sent.seq, full_report=False)
    assert reports.heartbeat(100, 10).added == [("b", 2)]


def test_latest_change_of_a_blob_wins():
    """A blob added then removed before any acknowledgement is reported removed only."""
    reports = started()
    reports.changed("x", 5)
    reports.changed("x", None)
    beat = reports.heartbeat(100, 10)
    assert (beat.added, beat.removed) == ([], ["x"])


def test_full_report_acknowledgement_covers_earlier_changes():
    """Changes recorded before a full report was taken are in it: its acknowledgement clears them."""
    reports = started()
    reports.changed("x", 5)
    seq = reports.start_full(100.0)
    reports.changed("later", 1)
    reports.acknowledged(seq, full_report=False)
    assert reports.full_at == 100.0
    beat = reports.heartbeat(100, 10)
    assert beat.added == [("later", 1)] and beat.base_seq == seq


def test_corrupt_blob_is_reported_until_a_delta_carrying_it_is_acknowledged():
    """A corrupt blob goes in deltas, not full reports: a full report's acknowledgement does
    not clear it, a delta's does, and deleting the blob drops it."""
    reports = started()
    reports.found_corrupt("rotten")
    reports.found_corrupt("deleted-soon")
    acknowledge_all(reports)  # nothing carried it yet
    reports.start_full(5.0)
    acknowledge_all(reports)
    beat = reports.heartbeat(100, 10)
    assert beat.corrupt == ["deleted-soon", "rotten"]
    reports.changed("deleted-soon", None)  # the master had it deleted
    acknowledge_all(reports)
    beat = reports.heartbeat(100, 10)
    assert (beat.corrupt, beat.removed) == ([], ["deleted-soon"])
    acknowledge_all(reports)
    assert reports.pending == 0


def test_too_many_changes_fall_back_to_a_full_report():
    """Past MAX_PENDING_CHANGES the changes are dropped and a full report is due instead."""
    reports = started()
    for i in range(MAX_PENDING_CHANGES):
        reports.changed(f"{i:032x}", 1)
    assert not reports.full_due(1.0)
    reports.changed("one-too-many", 1)
    assert reports.full_due(1.0) and reports.pending == 0


def test_every_heartbeat_fits_one_chunk():
    """Pending changes plus corrupt blobs in one heartbeat never exceed REPORT_CHUNK_ENTRIES."""
    reports = started()
    for i in range(MAX_PENDING_CHANGES):
        reports.changed(f"{i:032x}", 1)
    for i in range(REPORT_CHUNK_ENTRIES):
        reports.found_corrupt(f"c{i:031x}")
    beat = reports.heartbeat(100, 10)
    assert len(beat.added) + len(beat.removed) + len(beat.corrupt) == REPORT_CHUNK_ENTRIES
    acknowledge_all(reports)
    assert len(reports.heartbeat(100, 10).corrupt) == MAX_PENDING_CHANGES  # the rest, next time


def test_master_asking_for_a_full_report_makes_one_due():
    """Commands with full_report set make the next report a full one."""
    reports = started()
    reports.acknowledged(reports.acked, full_report=True)
    assert reports.full_due(1.0)


def test_full_report_cut_off_goes_again_unless_the_master_had_applied_it():
    """A full report whose acknowledgement never came is sent again, unless the master's
    answer to the next Register acknowledges it after all."""
    reports = started()
    seq = reports.start_full(50.0)
    assert reports.full_due(51.0)  # the connection broke: still due
    reports.acknowledged(seq, full_report=False)  # the new master connection says it has it
    assert not reports.full_due(51.0)


def test_acknowledging_a_report_never_sent_is_a_protocol_error():
    """A master acknowledging a report number beyond the last sent is refused."""
    reports = started()
    with pytest.raises(RemoteProtocolError, match="acknowledged report 9"):
        reports.acknowledged(9, full_report=False)


def test_acknowledgements_never_go_back():
    """An older acknowledgement (a restarted master says 0) keeps what is pending."""
    reports = started()
    reports.changed("x", 1)
    reports.heartbeat(100, 10)
    reports.acknowledged(0, full_report=True)
    assert reports.acked == 1 and reports.pending == 1 and reports.full_due(0.0)


def test_full_report_chunks_cover_every_blob_once():
    """A snapshot is split into chunks of at most REPORT_CHUNK_ENTRIES, only the last final,
    every one declaring the same seq and total."""
    blobs = {f"{i:032x}": i for i in range(2 * REPORT_CHUNK_ENTRIES + 5)}
    chunks = list(full_report_chunks(4, blobs))
    assert [len(c.blobs) for c in chunks] == [REPORT_CHUNK_ENTRIES, REPORT_CHUNK_ENTRIES, 5]
    assert [c.final for c in chunks] == [False, False, True]
    assert {(c.seq, c.total) for c in chunks} == {(4, len(blobs))}
    assert dict(entry for c in chunks for entry in c.blobs) == blobs


def test_full_report_of_an_exact_number_of_chunks_ends_on_a_full_chunk():
    """When the blobs fill whole chunks, the last full chunk is final (no empty tail)."""
    blobs = {f"{i:032x}": i for i in range(REPORT_CHUNK_ENTRIES)}
    assert [c.final for c in full_report_chunks(1, blobs)] == [True]
