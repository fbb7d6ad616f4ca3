"""Tests for myyoutube.master.reports: full-report assembly, its bounds, and delta sequencing."""

from __future__ import annotations

import time

import pytest

from myyoutube.datanode.state import full_report_chunks
from myyoutube.master.reports import Delta, ReportLedger, delta_of
from myyoutube.protocol import (
    MAX_FRAME_BYTES,
    MAX_META_BYTES,
    MAX_REPORT_BLOBS,
    REPORT_CHUNK_ENTRIES,
    BlockReportChunk,
    FrameDecoder,
    Heartbeat,
    RemoteProtocolError,
    encode,
)


def chunk(seq: int = 1, total: int = 2, blobs=(("a", 1),), final: bool = False) -> BlockReportChunk:
    return BlockReportChunk(seq=seq, total=total, blobs=list(blobs), final=final)


def registered(incarnation: str = "i1") -> ReportLedger:
    ledger = ReportLedger()
    ledger.registered(incarnation, was_dead=False)
    return ledger


# --- a node of 1,000,000 blobs ----------------------------------------------------------------


def test_a_million_blob_full_report_fits_in_frames_far_below_the_cap():
    """A datanode holding 1,000,000 blobs reports them all in frames each under
    MAX_FRAME_BYTES (meta under a sixth of MAX_META_BYTES), and the master assembles the
    decoded chunks into the complete report."""
    blobs = {f"{i:032x}": 10**12 + i for i in range(1_000_000)}  # 13-digit sizes: the widest likely
    ledger, decoder = registered(), FrameDecoder()
    started, largest, frames, assembled = time.monotonic(), 0, 0, None
    for message in full_report_chunks(7, blobs):
        frame = encode(message)
        largest, frames = max(largest, len(frame)), frames + 1
        decoder.feed(frame)
        decoded = decoder.next_frame()
        assert decoded == message
        assembled = ledger.add_chunk(decoded)
    print(f"1,000,000 blobs: {frames} frames, largest {largest} bytes, {time.monotonic() - started:.1f}s")
    assert frames == 1_000_000 // REPORT_CHUNK_ENTRIES
    assert largest < MAX_FRAME_BYTES and largest < MAX_META_BYTES / 6
    assert assembled == blobs
    ledger.full_applied(7)
    assert ledger.applied_seq == 7 and not ledger.asks_full_report


def test_a_quiet_heartbeat_of_a_million_blob_node_is_tiny():
    """A heartbeat with nothing changed is the same few bytes whatever the node holds."""
    beat = Heartbeat(
        capacity_bytes=10**13, used_bytes=10**12, seq=5, base_seq=4, added=[], removed=[], corrupt=[]
    )
    assert len(encode(beat)) < 200


# --- assembly bounds --------------------------------------------------------------------------


def test_chunks_are_assembled_until_the_final_one():
    """Each chunk before the final one returns None; the final one returns every entry."""
    ledger = registered()
    assert ledger.add_chunk(chunk(total=3, blobs=[("a", 1), ("b", 2)])) is None
    assert ledger.add_chunk(chunk(total=3, blobs=[("c", 3)], final=True)) == {"a": 1, "b": 2, "c": 3}
    assert ledger.assembly is None


def test_an_empty_disk_is_one_empty_final_chunk():
    """A node holding nothing reports in one empty, final chunk."""
    chunks = list(full_report_chunks(3, {}))
    assert chunks == [BlockReportChunk(seq=3, total=0, blobs=[], final=True)]
    assert registered().add_chunk(chunks[0]) == {}


def test_report_declaring_more_than_the_maximum_is_refused():
    """A report declaring over MAX_REPORT_BLOBS entries is a protocol error before any is kept."""
    with pytest.raises(RemoteProtocolError, match="over"):
        registered().add_chunk(chunk(total=MAX_REPORT_BLOBS + 1))
    with pytest.raises(RemoteProtocolError):
        registered().add_chunk(chunk(total=-1))


def test_chunk_over_the_entry_limit_is_refused():
    """A chunk of more than REPORT_CHUNK_ENTRIES entries is a protocol error."""
    entries = [(f"{i:032x}", 1) for i in range(REPORT_CHUNK_ENTRIES + 1)]
    with pytest.raises(RemoteProtocolError, match="over"):
        registered().add_chunk(chunk(total=len(entries), blobs=entries))


def test_more_entries_than_declared_are_refused():
    """The master never buffers more entries than the report declared."""
    ledger = registered()
    ledger.add_chunk(chunk(total=2, blobs=[("a", 1)]))
    with pytest.raises(RemoteProtocolError, match="more than"):
        ledger.add_chunk(chunk(total=2, blobs=[("b", 1), ("c", 1)]))


def test_report_ending_short_of_its_total_is_refused():
    """A final chunk that leaves the report short of its declared total is a protocol error."""
    with pytest.raises(RemoteProtocolError, match="ended after 1 of 2"):
        registered().add_chunk(chunk(total=2, final=True))


def test_empty_chunk_before_the_final_one_is_refused():
    """A non-final chunk must carry entries, so a report has at most total + 1 chunks."""
    with pytest.raises(RemoteProtocolError, match="empty"):
        registered().add_chunk(chunk(total=2, blobs=[]))


@pytest.mark.parametrize("seq, total", [(2, 2), (1, 3)])
def test_chunk_of_another_report_inside_one_is_refused(seq, total):
    """Every chunk of a report carries the same seq and total."""
    ledger = registered()
    ledger.add_chunk(chunk(seq=1, total=2))
    with pytest.raises(RemoteProtocolError, match="inside"):
        ledger.add_chunk(chunk(seq=seq, total=total))


def test_full_report_must_follow_the_last_applied_one():
    """A full report numbered no higher than the last applied report is a protocol error."""
    ledger = registered()
    ledger.add_chunk(chunk(seq=4, total=1, final=True))
    ledger.full_applied(4)
    with pytest.raises(RemoteProtocolError, match="after report 4"):
        ledger.add_chunk(chunk(seq=4, total=1, final=True))


def test_heartbeat_in_the_middle_of_a_full_report_is_refused():
    """A node must finish its full report before it sends a delta."""
    ledger = registered()
    ledger.add_chunk(chunk(seq=1, total=2))
    with pytest.raises(RemoteProtocolError, match="middle"):
        ledger.delta_fits(Delta(seq=2, base_seq=0))


def test_a_reconnection_voids_a_report_cut_off_midway():
    """A report cut off by a lost connection is dropped; the next one starts afresh."""
    ledger = registered()
    ledger.add_chunk(chunk(seq=1, total=2))
    ledger.registered("i1", was_dead=False)
    assert ledger.assembly is None and ledger.asks_full_report
    assert ledger.add_chunk(chunk(seq=2, total=1, final=True)) == {"a": 1}


def test_heartbeat_over_a_chunk_of_changes_is_refused():
    """A delta of more than REPORT_CHUNK_ENTRIES ids is a protocol error (the node sends a
    full report instead)."""
    removed = [f"{i:032x}" for i in range(REPORT_CHUNK_ENTRIES)]
    beat = Heartbeat(
        capacity_bytes=1, used_bytes=1, seq=2, base_seq=1, added=[], removed=removed, corrupt=["x"]
    )
    with pytest.raises(RemoteProtocolError, match="changes"):
        delta_of(beat)
    beat = Heartbeat(
        capacity_bytes=1, used_bytes=1, seq=2, base_seq=1, added=[("a", 1)], removed=[], corrupt=["x"]
    )
    assert delta_of(beat) == Delta(seq=2, base_seq=1, added={"a": 1}, removed=[], corrupt=["x"])


# --- sequencing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seq, base_seq, fits",
    [
        (6, 5, True),  # the usual case: based on the last applied report
        (9, 2, True),  # acknowledgements were lost: a longer delta, still correct
        (9, 7, False),  # based on a report this master never applied: a gap
        (5, 4, False),  # a report number that does not advance
    ],
)
def test_delta_fits_only_on_what_was_applied(seq, base_seq, fits):
    """A delta applies iff base_seq <= applied < seq; otherwise a full report is wanted."""
    ledger = registered()
    ledger.add_chunk(chunk(seq=5, total=1, final=True))
    ledger.full_applied(5)
    assert ledger.delta_fits(Delta(seq=seq, base_seq=base_seq)) is fits
    assert ledger.asks_full_report is not fits


def test_new_incarnation_starts_over():
    """A restarted datanode process (new incarnation) has no applied reports: full wanted."""
    ledger = registered("i1")
    ledger.add_chunk(chunk(seq=5, total=1, final=True))
    ledger.full_applied(5)
    ledger.registered("i2", was_dead=False)
    assert (ledger.applied_seq, ledger.has_full, ledger.full_reports) == (0, False, 0)
    assert ledger.asks_full_report
    assert not ledger.delta_fits(Delta(seq=6, base_seq=5))
