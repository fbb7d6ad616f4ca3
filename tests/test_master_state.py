"""Tests for myyoutube.master.state: liveness, placement, block-report reconciliation."""

from __future__ import annotations

import random

import pytest

from myyoutube.master.reports import Delta
from myyoutube.master.state import (
    ALIVE,
    DEAD,
    MIN_FREE_BYTES,
    REPORT_GRACE_HEARTBEATS,
    SUSPECT,
    UNKNOWN,
    ClusterState,
    IndexView,
    Reconciliation,
    Replica,
)
from myyoutube.protocol import BlockReportChunk

GiB = 1024**3
MiB = 1024**2
DEAD_AFTER_S = 30.0
HEARTBEAT_S = 2.0  # suspect after 3 heartbeats: 6 s
NOW = 1000.0


def make_state(alive=(), suspect=(), dead=(), full=(), now: float = NOW) -> ClusterState:
    """A registry where each named node was last heard from so as to have the given liveness."""
    state = ClusterState(DEAD_AFTER_S, HEARTBEAT_S, started_at=0.0)
    for address in alive:
        state.heard_from(address, now - 1, 10 * GiB, GiB)
    for address in suspect:
        state.heard_from(address, now - 10, 10 * GiB, GiB)
    for address in dead:
        state.heard_from(address, now - 100, 10 * GiB, GiB)
    for address in full:
        state.heard_from(address, now - 1, 10 * GiB, 10 * GiB - MIN_FREE_BYTES + 1)
    return state


def replica(*holders: str, size: int = 100, added_at: float = 0.0) -> Replica:
    return Replica(size=size, sha256="ab" * 32, nodes={address: added_at for address in holders})


# --- liveness -------------------------------------------------------------------------------


def test_liveness_moves_alive_suspect_dead_at_the_thresholds():
    """A node is ALIVE below 3 heartbeats of silence, SUSPECT below dead_after_s, DEAD from then."""
    state = ClusterState(DEAD_AFTER_S, HEARTBEAT_S, started_at=0.0)
    state.heard_from("a", 100.0, GiB, 0)
    assert state.suspect_after_s == 6.0
    assert [state.liveness("a", t) for t in (100.0, 105.999, 106.0, 129.999, 130.0, 1e6)] == [
        ALIVE,
        ALIVE,
        SUSPECT,
        SUSPECT,
        DEAD,
        DEAD,
    ]


def test_hearing_again_makes_a_dead_node_alive():
    """A heartbeat from a DEAD node makes it ALIVE again at once."""
    state = ClusterState(DEAD_AFTER_S, HEARTBEAT_S, started_at=0.0)
    state.heard_from("a", 100.0, GiB, 0)
    assert state.liveness("a", 200.0) == DEAD
    state.heard_from("a", 200.0, GiB, 0)
    assert state.liveness("a", 200.0) == ALIVE


def test_unheard_node_is_unknown_until_dead_after_s_from_start():
    """A node never heard from since start-up is UNKNOWN for dead_after_s, then DEAD."""
    state = ClusterState(DEAD_AFTER_S, HEARTBEAT_S, started_at=50.0)
    assert state.liveness("ghost", 50.0) == UNKNOWN
    assert state.liveness("ghost", 79.9) == UNKNOWN
    assert state.liveness("ghost", 80.0) == DEAD


def test_suspect_window_collapses_when_dead_after_is_short():
    """When dead_after_s is under 3 heartbeats, a node goes straight from ALIVE to DEAD."""
    state = ClusterState(dead_after_s=4.0, heartbeat_s=2.0, started_at=0.0)
    state.heard_from("a", 10.0, GiB, 0)
    assert state.suspect_after_s == 4.0
    assert [state.liveness("a", t) for t in (13.9, 14.0)] == [ALIVE, DEAD]


def test_live_counts_everything_but_dead_and_alive_count_only_alive():
    """live() is True for ALIVE, SUSPECT and UNKNOWN nodes; alive_count counts ALIVE only."""
    state = make_state(alive=["a1", "a2"], suspect=["s"], dead=["d"], now=NOW)
    fresh = ClusterState(DEAD_AFTER_S, HEARTBEAT_S, started_at=NOW - 1)
    assert [state.live(x, NOW) for x in ("a1", "s", "d")] == [True, True, False]
    assert fresh.live("ghost", NOW) is True
    assert state.alive_count(NOW) == 2


def test_heard_from_records_space():
    """heard_from stores capacity and used bytes on the node and marks it registered."""
    state = ClusterState(DEAD_AFTER_S, HEARTBEAT_S, started_at=0.0)
    node = state.heard_from("a", 5.0, 1000, 300)
    assert (node.capacity_bytes, node.used_bytes, node.free_bytes, node.last_seen) == (1000, 300, 700, 5.0)
    assert node.registered is True and state.nodes["a"] is node
    assert state.heard_from("a", 6.0, 100, 300).free_bytes == 0


# --- read order -----------------------------------------------------------------------------


def test_read_order_alive_first_then_suspect_never_dead_or_unknown():
    """read_order lists alive holders (shuffled), then suspect ones, and drops dead and unknown."""
    state = make_state(alive=["a1", "a2", "a3"], suspect=["s1", "s2"], dead=["d"])
    holders = ["s1", "d", "a1", "ghost", "a2", "s2", "a3"]
    orders = set()
    for seed in range(30):
        order = state.read_order(holders, NOW, random.Random(seed))
        assert sorted(order[:3]) == ["a1", "a2", "a3"]
        assert sorted(order[3:]) == ["s1", "s2"]
        orders.add(tuple(order))
    assert len({order[:3] for order in orders}) > 1  # alive ones really are shuffled


def test_read_order_of_only_dead_holders_is_empty():
    """A blob whose holders are all dead has nowhere to be read from."""
    state = make_state(dead=["d1", "d2"])
    assert state.read_order(["d1", "d2"], NOW, random.Random(1)) == []


def test_healthy_first_counts_the_leading_alive_holders_that_have_not_failed_a_read():
    """What a web front end that reuses the answer may spread its reads over: the alive
    holders that did not fail a read lately, which read_order puts first; a suspect one,
    or one that just failed a read, is not among them."""
    state = make_state(alive=["a1", "a2", "a3"], suspect=["s1"])
    state.read_failures.failed("a3", NOW - 1)
    order = state.read_order(["a1", "a2", "a3", "s1"], NOW, random.Random(3))
    assert sorted(order[:2]) == ["a1", "a2"] and order[2:] == ["a3", "s1"]
    assert state.healthy_first(order, NOW) == 2
    assert state.healthy_first(["s1", "a1"], NOW) == 0
    assert state.healthy_first([], NOW) == 0


# --- placement ------------------------------------------------------------------------------


def test_an_upload_waits_for_datanodes_only_right_after_a_start():
    """Right after the master started, fewer live datanodes than an upload wants is worth
    waiting for (those running re-register within moments); once they are back, or once
    dead_after_s has passed (the missing ones are gone), it is not."""
    state = ClusterState(DEAD_AFTER_S, HEARTBEAT_S, started_at=NOW)
    assert state.awaiting_datanodes(3, NOW + 0.5)
    for address in ("a", "b"):
        state.heard_from(address, NOW + 1, 10 * GiB, GiB)
    assert state.awaiting_datanodes(3, NOW + 1) and not state.awaiting_datanodes(2, NOW + 1)
    state.heard_from("c", NOW + 2, 10 * GiB, GiB)
    assert not state.awaiting_datanodes(3, NOW + 2)
    lonely = ClusterState(DEAD_AFTER_S, HEARTBEAT_S, started_at=NOW)
    lonely.heard_from("a", NOW + DEAD_AFTER_S, 10 * GiB, GiB)
    assert not lonely.awaiting_datanodes(3, NOW + DEAD_AFTER_S)


def test_place_picks_distinct_alive_nodes_with_room():
    """place returns distinct ALIVE nodes with at least MIN_FREE_BYTES free, never suspect, dead or full."""
    state = make_state(alive=["a1", "a2", "a3", "a4"], suspect=["s"], dead=["d"], full=["f"])
    seen = set()
    for seed in range(40):
        chosen = state.place(3, NOW, random.Random(seed))
        assert len(chosen) == 3 and len(set(chosen)) == 3
        assert set(chosen) <= {"a1", "a2", "a3", "a4"}
        seen.update(chosen)
    assert seen == {"a1", "a2", "a3", "a4"}


def test_place_returns_fewer_when_not_enough_candidates():
    """Asking for more nodes than qualify returns every qualifying node once."""
    state = make_state(alive=["a1", "a2"], dead=["d"])
    assert sorted(state.place(3, NOW, random.Random(5))) == ["a1", "a2"]
    assert make_state(dead=["d"]).place(3, NOW, random.Random(5)) == []


def test_place_honours_exclude():
    """Excluded nodes are never chosen."""
    state = make_state(alive=["a1", "a2", "a3"])
    for seed in range(20):
        assert state.place(3, NOW, random.Random(seed), exclude=frozenset({"a2"})) in (
            ["a1", "a3"],
            ["a3", "a1"],
        )


def test_place_is_deterministic_for_a_seed():
    """The same seed and state give the same placement."""
    state = make_state(alive=[f"n{i}" for i in range(10)])
    assert state.place(3, NOW, random.Random(42)) == state.place(3, NOW, random.Random(42))


def test_place_accepts_node_with_exactly_min_free_bytes():
    """A node with exactly MIN_FREE_BYTES free still qualifies; one byte less does not."""
    state = ClusterState(DEAD_AFTER_S, HEARTBEAT_S, started_at=0.0)
    state.heard_from("edge", NOW, 10 * GiB, 10 * GiB - MIN_FREE_BYTES)
    state.heard_from("over", NOW, 10 * GiB, 10 * GiB - MIN_FREE_BYTES + 1)
    assert state.place(2, NOW, random.Random(0)) == ["edge"]


# --- reconcile --------------------------------------------------------------------------------


def test_retired_blob_deleted_unknown_blob_kept_as_orphan():
    """Only a blob the index retired is deleted; one it never knew is kept and reported as an
    orphan (the index may be the one that lost it); an in-flight upload is neither."""
    state = make_state(alive=["a"])
    report = {"retired": 10, "never-seen": 7, "uploading": 5}
    result = state.reconcile("a", report, IndexView({}, {"retired"}, {"uploading"}, 3), NOW)
    assert result == Reconciliation(delete=["retired"], counts_again=[], forget=[], orphans=["never-seen"])


def test_empty_index_deletes_nothing():
    """A master with an empty index (a lost or mistyped data directory) orders no deletion,
    whatever the datanodes hold."""
    state = make_state(alive=["a"])
    report = {f"{i:032x}": 1000 for i in range(50)}
    result = state.reconcile("a", report, IndexView({}, set(), set(), 3), NOW)
    assert result.delete == [] and result.forget == []
    assert result.orphans == sorted(report)


def test_listed_copy_within_replication_is_kept():
    """A node reporting a blob it is listed for, with no surplus, gets no instruction."""
    state = make_state(alive=["a", "b", "c"])
    replicas = {"x": replica("a", "b", "c")}
    for node in ("a", "b", "c"):
        assert state.reconcile(node, {"x": 100}, IndexView(replicas, set(), set(), 3), NOW) == Reconciliation(
            [], [], []
        )


def test_surplus_copy_goes_from_exactly_one_node():
    """With 4 live listed copies and replication 3, exactly one copy (the same whoever reports) goes."""
    state = make_state(alive=["a", "b", "c", "d"])
    replicas = {"x": replica("c", "a", "d", "b")}
    decisions = {
        node: state.reconcile(node, {"x": 100}, IndexView(replicas, set(), set(), 3), NOW) for node in "abcd"
    }
    assert decisions["d"] == Reconciliation(delete=["x"], counts_again=[], forget=["x"])
    # The others name the same surplus copy, so it goes even if d sends no full report.
    assert all(decisions[node] == Reconciliation([], [], [], shed=[("d", "x")]) for node in "abc")


@pytest.mark.parametrize("seed", range(8))
def test_surplus_deletion_removes_exactly_the_surplus(seed):
    """For random holder sets, the number of nodes told to delete equals live copies minus replication."""
    rng = random.Random(seed)
    names = [f"node{rng.randrange(10**6):06d}" for _ in range(8)]
    alive, dead = names[:6], names[6:]
    state = make_state(alive=alive, dead=dead)
    holders = rng.sample(names, rng.randint(3, 8))
    replication = rng.randint(1, 3)
    replicas = {"x": replica(*holders)}
    deleting = [
        node
        for node in holders
        if node in alive
        and state.reconcile(node, {"x": 100}, IndexView(replicas, set(), set(), replication), NOW).delete
        == ["x"]
    ]
    live_holders = [node for node in holders if node in alive]
    assert len(deleting) == max(0, len(live_holders) - replication)
    assert set(deleting) == set(sorted(live_holders)[replication:])


def test_dead_holders_do_not_make_a_copy_surplus():
    """A dead listed holder does not count, so a node that would be the 4th copy keeps its copy."""
    state = make_state(alive=["b", "c", "d"], dead=["a"])
    replicas = {"x": replica("a", "b", "c", "d")}
    assert state.reconcile("d", {"x": 100}, IndexView(replicas, set(), set(), 3), NOW) == Reconciliation(
        [], [], []
    )


def test_a_holder_not_heard_from_since_start_up_makes_no_copy_surplus():
    """Replication lowered across a restart (myyoutube-cluster --datanodes 2 after 3): a
    and b registered, c not yet (and maybe never). Ranked first as if it joined at
    start-up, c made a or b delete its copy, leaving one live copy; no copy is judged
    surplus until c registers, and then c's own (latest) copy is the one that goes."""
    state = ClusterState(DEAD_AFTER_S, HEARTBEAT_S, started_at=NOW - 5)
    for address in ("a", "b"):
        state.registered(address, f"{address}-1", NOW - 2, 10 * GiB, GiB)
    view = IndexView({"x": replica("a", "b", "c")}, set(), set(), 2)
    for address in ("a", "b"):
        assert state.reconcile(address, {"x": 100}, view, NOW) == Reconciliation([], [], [])
    state.registered("c", "c-1", NOW, 10 * GiB, GiB)
    assert state.reconcile("c", {"x": 100}, view, NOW).delete == ["x"]
    assert state.reconcile("a", {"x": 100}, view, NOW).shed == [("c", "x")]


def test_unlisted_valid_copy_counts_again_when_under_replicated():
    """An unlisted copy of the right size on a node counts again while the blob lacks copies."""
    state = make_state(alive=["a", "b", "e"], dead=["c"])
    replicas = {"x": replica("a", "b", "c")}
    assert state.reconcile("e", {"x": 100}, IndexView(replicas, set(), set(), 3), NOW) == Reconciliation(
        delete=[], counts_again=["x"], forget=[]
    )


def test_unlisted_copy_deleted_when_blob_has_enough():
    """An unlisted copy of a blob that already has `replication` live copies is deleted, not forgotten."""
    state = make_state(alive=["a", "b", "c", "e"])
    replicas = {"x": replica("a", "b", "c")}
    assert state.reconcile("e", {"x": 100}, IndexView(replicas, set(), set(), 3), NOW) == Reconciliation(
        delete=["x"], counts_again=[], forget=[]
    )


def test_an_unlisted_copy_is_not_deleted_on_the_word_of_unheard_holders():
    """Just after a master restart, the listed holders a, b, c have not registered yet
    (they may never: a cluster shrunk from four datanodes to one); d reports a valid
    unlisted copy. It was deleted, as if a, b and c were proven copies; it now counts
    again, and the surplus goes once the others have registered."""
    state = ClusterState(DEAD_AFTER_S, HEARTBEAT_S, started_at=NOW - 5)
    state.registered("d", "d-1", NOW - 1, 10 * GiB, GiB)
    view = IndexView({"x": replica("a", "b", "c")}, set(), set(), 3)
    assert state.reconcile("d", {"x": 100}, view, NOW) == Reconciliation([], ["x"], [])


def test_unlisted_copy_of_wrong_size_deleted():
    """An unlisted copy whose size differs from the index is deleted even when copies are lacking."""
    state = make_state(alive=["a", "e"])
    replicas = {"x": replica("a", size=100)}
    assert state.reconcile("e", {"x": 99}, IndexView(replicas, set(), set(), 3), NOW) == Reconciliation(
        delete=["x"], counts_again=[], forget=[]
    )


def test_in_flight_repair_target_left_alone():
    """A half-written repair copy (wrong size, unlisted, blob in flight) is neither deleted nor counted."""
    state = make_state(alive=["a", "b", "c", "e"])
    replicas = {"x": replica("a", "b", "c", size=100)}
    assert state.reconcile("e", {"x": 40}, IndexView(replicas, set(), {"x"}, 3), NOW) == Reconciliation(
        [], [], []
    )


def test_missing_replica_forgotten_only_after_grace():
    """A listed copy absent from the report is forgotten only when added over REPORT_GRACE_HEARTBEATS heartbeats ago."""
    state = make_state(alive=["a", "b"])
    grace = REPORT_GRACE_HEARTBEATS * HEARTBEAT_S
    assert state.report_grace_s == grace
    replicas = {
        "old": replica("a", "b", added_at=NOW - grace - 0.5),
        "edge": replica("a", "b", added_at=NOW - grace),
        "new": replica("a", "b", added_at=NOW - 1),
        "elsewhere": replica("b", added_at=0.0),
    }
    assert state.reconcile("a", {}, IndexView(replicas, set(), set(), 2), NOW) == Reconciliation(
        delete=[], counts_again=[], forget=["old"], recheck=["edge", "new"]
    )


def test_reconcile_output_is_sorted_by_blob_id():
    """Deletions come out in blob-id order whatever the report's order."""
    state = make_state(alive=["a"])
    report = {"c": 1, "a": 1, "b": 1}
    assert state.reconcile("a", report, IndexView({}, {"a", "b", "c"}, set(), 3), NOW).delete == [
        "a",
        "b",
        "c",
    ]


# --- block-report deltas ----------------------------------------------------------------------


def registered_with_full_report(
    state: ClusterState, address: str, held: dict[str, int], seq: int = 1
) -> None:
    """`address` registers and sends a full report of `held` as report `seq`."""
    state.registered(address, "incarnation-1", NOW, 10 * GiB, GiB)
    chunk = BlockReportChunk(seq=seq, total=len(held), blobs=sorted(held.items()), final=True)
    assert state.add_report_chunk(address, chunk, IndexView({}, set(), set(), 3), NOW) is not None


class CountingReplicas(dict):
    """A replica map that counts how often it is walked whole (as opposed to looked up)."""

    walks = 0

    def items(self):
        self.walks += 1
        return super().items()

    def __iter__(self):
        self.walks += 1
        return super().__iter__()


def test_delta_added_copies_are_judged_by_the_full_report_rules():
    """An added copy counts again if its blob lacks copies, is deleted if retired, is an
    orphan if unknown, and is left alone while its blob is being written."""
    state = make_state(alive=["a", "b", "e"], dead=["c"])
    replicas = {"under": replica("a", "b", "c")}
    delta = Delta(seq=2, base_seq=1, added={"under": 100, "gone": 5, "stranger": 7, "writing": 9})
    decision = state.reconcile_delta("e", delta, IndexView(replicas, {"gone"}, {"writing"}, 3), NOW)
    assert decision == Reconciliation(
        delete=["gone"], counts_again=["under"], forget=[], orphans=["stranger"]
    )


def test_delta_removed_copy_is_forgotten_at_once():
    """A copy the node says it removed is forgotten even if listed a moment ago (no grace:
    the node said so), and a removed copy it was never listed for changes nothing."""
    state = make_state(alive=["a", "b"])
    replicas = {"fresh": replica("a", "b", added_at=NOW - 0.1), "elsewhere": replica("b")}
    delta = Delta(seq=2, base_seq=1, removed=["fresh", "elsewhere", "unknown"])
    assert state.reconcile_delta("a", delta, IndexView(replicas, set(), set(), 2), NOW) == Reconciliation(
        delete=[], counts_again=[], forget=["fresh"]
    )


def test_delta_corrupt_copy_is_forgotten_and_deleted():
    """A corrupt copy of a known blob is forgotten and deleted (repair re-makes it), even if
    the same delta also lists it as added."""
    state = make_state(alive=["a", "b", "e"])
    replicas = {"rotten": replica("a", "b"), "new-rotten": replica("a", "b")}
    delta = Delta(seq=2, base_seq=1, added={"new-rotten": 100}, corrupt=["rotten", "new-rotten"])
    decision = state.reconcile_delta("a", delta, IndexView(replicas, set(), set(), 3), NOW)
    assert decision == Reconciliation(
        delete=["new-rotten", "rotten"], counts_again=[], forget=["new-rotten", "rotten"]
    )


def test_delta_corrupt_unknown_blob_is_kept():
    """A corrupt blob the index never knew is an orphan, kept like any other; a corrupt
    retired one is deleted."""
    state = make_state(alive=["a"])
    delta = Delta(seq=2, base_seq=1, corrupt=["stranger", "retired"])
    decision = state.reconcile_delta("a", delta, IndexView({}, {"retired"}, set(), 3), NOW)
    assert decision == Reconciliation(delete=["retired"], counts_again=[], forget=[], orphans=["stranger"])


def test_empty_index_delta_deletes_nothing():
    """On an empty index, however many blobs a delta adds, nothing is deleted or forgotten."""
    state = make_state(alive=["a"])
    added = {f"{i:032x}": 1000 for i in range(50)}
    decision = state.reconcile_delta(
        "a", Delta(seq=2, base_seq=1, added=added), IndexView({}, set(), set(), 3), NOW
    )
    assert decision.delete == [] and decision.forget == [] and decision.orphans == sorted(added)


def test_delta_never_walks_the_whole_index():
    """Judging a delta looks up only the blobs it names: its cost is the change, not the index."""
    state = make_state(alive=["a", "b", "c"])
    replicas = CountingReplicas({f"{i:032x}": replica("a", "b", "c") for i in range(1000)})
    delta = Delta(seq=2, base_seq=1, added={f"{1:032x}": 100}, removed=[f"{2:032x}"], corrupt=[f"{3:032x}"])
    state.reconcile_delta("a", delta, IndexView(replicas, set(), set(), 3), NOW)
    state.reconcile_delta("a", Delta(seq=3, base_seq=2), IndexView(replicas, set(), set(), 3), NOW)
    assert replicas.walks == 0
    state.reconcile("a", {}, IndexView(replicas, set(), set(), 3), NOW)  # a full report does walk it
    assert replicas.walks == 1


def test_apply_delta_updates_what_the_node_holds():
    """An applied delta adds and removes blobs from the node's reported holdings and moves
    its acknowledged report number."""
    state = ClusterState(DEAD_AFTER_S, HEARTBEAT_S, started_at=0.0)
    registered_with_full_report(state, "a", {"kept": 1, "dropped": 2}, seq=1)
    delta = Delta(seq=2, base_seq=1, added={"new": 3}, removed=["dropped"])
    assert state.apply_delta("a", delta, IndexView({}, set(), set(), 3), NOW) is not None
    node = state.nodes["a"]
    assert node.blobs == {"kept": 1, "new": 3} and node.reports.applied_seq == 2


def test_delta_after_a_gap_asks_for_a_full_report():
    """A delta based on a report this master never applied is not applied: the master asks
    for a full report instead, and the node's holdings stay as they were."""
    state = ClusterState(DEAD_AFTER_S, HEARTBEAT_S, started_at=0.0)
    registered_with_full_report(state, "a", {"kept": 1}, seq=5)
    assert not state.nodes["a"].reports.asks_full_report
    gap = Delta(seq=9, base_seq=7, added={"new": 3})
    assert state.apply_delta("a", gap, IndexView({}, set(), set(), 3), NOW) is None
    node = state.nodes["a"]
    assert node.reports.asks_full_report and node.blobs == {"kept": 1} and node.reports.applied_seq == 5


def test_delta_before_any_full_report_asks_for_one():
    """A node this master has no full report of (it restarted) is asked for one; its delta waits."""
    state = ClusterState(DEAD_AFTER_S, HEARTBEAT_S, started_at=0.0)
    node = state.registered("a", "incarnation-1", NOW, 10 * GiB, GiB)
    assert node.reports.asks_full_report
    assert (
        state.apply_delta(
            "a", Delta(seq=40, base_seq=39, added={"x": 1}), IndexView({}, set(), set(), 3), NOW
        )
        is None
    )
    assert node.blobs == {}


def test_delta_resent_after_a_lost_acknowledgement_is_applied():
    """A delta based on an older report than the last applied (its acknowledgement was lost
    with the connection) still applies: it repeats the latest state of every blob."""
    state = ClusterState(DEAD_AFTER_S, HEARTBEAT_S, started_at=0.0)
    registered_with_full_report(state, "a", {}, seq=1)
    assert state.apply_delta(
        "a", Delta(seq=2, base_seq=1, added={"x": 1}), IndexView({}, set(), set(), 3), NOW
    )
    state.registered("a", "incarnation-1", NOW, 10 * GiB, GiB)  # reconnected, same process
    resent = Delta(seq=3, base_seq=1, added={"x": 1, "y": 2})
    assert state.apply_delta("a", resent, IndexView({}, set(), set(), 3), NOW) is not None
    assert state.nodes["a"].blobs == {"x": 1, "y": 2} and not state.nodes["a"].reports.asks_full_report


def test_registration_asks_full_report_from_a_new_process_or_one_back_from_the_dead():
    """A reconnection of the same, live process goes on with deltas; a restarted process
    (new incarnation) or one that was dead meanwhile is asked for a full report."""
    state = ClusterState(DEAD_AFTER_S, HEARTBEAT_S, started_at=0.0)
    registered_with_full_report(state, "a", {"x": 1})
    assert not state.registered("a", "incarnation-1", NOW + 1, 10 * GiB, GiB).reports.asks_full_report
    assert state.registered("a", "incarnation-2", NOW + 2, 10 * GiB, GiB).reports.asks_full_report

    registered_with_full_report(state, "b", {"x": 1})
    back = state.registered("b", "incarnation-1", NOW + DEAD_AFTER_S + 1, 10 * GiB, GiB)
    assert back.reports.asks_full_report


def test_full_report_is_reconciled_once_its_last_chunk_is_in():
    """Chunks are only collected until the final one; then the whole report is judged (a
    listed copy missing from it forgotten) and becomes what the node holds."""
    state = make_state(alive=["a", "b"])
    state.registered("a", "incarnation-1", NOW, 10 * GiB, GiB)
    replicas = {"held": replica("a", "b"), "lost": replica("a", "b")}
    first = BlockReportChunk(seq=1, total=2, blobs=[("held", 100)], final=False)
    last = BlockReportChunk(seq=1, total=2, blobs=[("retired", 5)], final=True)
    assert state.add_report_chunk("a", first, IndexView(replicas, {"retired"}, set(), 2), NOW) is None
    assert state.nodes["a"].blobs == {}
    decision = state.add_report_chunk("a", last, IndexView(replicas, {"retired"}, set(), 2), NOW)
    assert decision == Reconciliation(delete=["retired"], counts_again=[], forget=["lost"])
    assert state.nodes["a"].blobs == {"held": 100, "retired": 5}
    assert state.nodes["a"].reports.applied_seq == 1 and not state.nodes["a"].reports.asks_full_report


def test_copy_too_new_for_a_full_report_is_forgotten_by_a_later_delta_unless_it_turns_up():
    """A listed copy missing from a full report taken just after it was added is looked at
    again: forgotten at the first delta after the grace if still missing, kept if a delta
    brought it."""
    state = make_state(alive=["a", "b"])
    replicas = {"late": replica("a", "b", added_at=NOW - 0.1), "lost": replica("a", "b", added_at=NOW - 0.1)}
    state.registered("a", "incarnation-1", NOW, 10 * GiB, GiB)
    full = BlockReportChunk(seq=1, total=0, blobs=[], final=True)
    assert state.add_report_chunk("a", full, IndexView(replicas, set(), set(), 2), NOW).recheck == [
        "late",
        "lost",
    ]
    soon = Delta(seq=2, base_seq=1, added={"late": 100})
    assert state.apply_delta("a", soon, IndexView(replicas, set(), set(), 2), NOW + 0.2).forget == []
    later = NOW + state.report_grace_s + 1
    assert state.apply_delta(
        "a", Delta(seq=3, base_seq=2), IndexView(replicas, set(), set(), 2), later
    ).forget == ["lost"]
    assert state.nodes["a"].recheck == set()


# --- ordered deletions ------------------------------------------------------------------------


def test_retired_blob_is_deleted_wherever_it_was_reported():
    """A blob the index gives up is ordered deleted on every node that reported holding
    it, and only there."""
    state = ClusterState(DEAD_AFTER_S, HEARTBEAT_S, started_at=0.0)
    registered_with_full_report(state, "a", {"x": 1, "y": 1})
    registered_with_full_report(state, "b", {"x": 1})
    registered_with_full_report(state, "c", {"y": 1})
    state.blobs_retired(["x"])
    assert [state.deletes_due(n, 100) for n in "abc"] == [["x"], ["x"], []]


def test_deletion_is_ordered_again_until_a_report_says_the_blob_is_gone():
    """A deletion order lost with its connection is not lost: it is given in every Commands,
    oldest first and at most `limit` at a time, until a delta reports the blob removed."""
    state = ClusterState(DEAD_AFTER_S, HEARTBEAT_S, started_at=0.0)
    registered_with_full_report(state, "a", {"1": 1, "2": 1, "3": 1})
    state.order_deletes("a", ["3", "1"])
    state.order_deletes("a", ["2", "1"])
    assert state.deletes_due("a", 2) == ["3", "1"]
    assert state.deletes_due("a", 2) == ["3", "1"]  # no report yet: given again
    state.apply_delta("a", Delta(seq=2, base_seq=1, removed=["3", "1"]), IndexView({}, set(), set(), 3), NOW)
    assert state.deletes_due("a", 2) == ["2"]
    state.apply_delta("a", Delta(seq=3, base_seq=2, removed=["2"]), IndexView({}, set(), set(), 3), NOW)
    assert state.deletes_due("a", 2) == [] and state.nodes["a"].to_delete == {}


def test_no_deletion_is_ordered_in_the_middle_of_a_full_report():
    """While a full report is arriving no deletion is given (the report may predate it)."""
    state = ClusterState(DEAD_AFTER_S, HEARTBEAT_S, started_at=0.0)
    registered_with_full_report(state, "a", {"x": 1})
    state.order_deletes("a", ["x"])
    state.add_report_chunk(
        "a",
        BlockReportChunk(seq=2, total=2, blobs=[("x", 1)], final=False),
        IndexView({}, set(), set(), 3),
        NOW,
    )
    assert state.deletes_due("a", 10) == []


def test_surplus_copy_goes_from_the_node_that_came_back_not_the_healed_one():
    """A node away long enough for its copy to be re-made elsewhere comes back: its own
    (stale) copy is the surplus, whichever node reports, and it stays so each time it
    flaps; the copy made to heal ("e", lower in address order) is never the one dropped."""
    state = ClusterState(DEAD_AFTER_S, HEARTBEAT_S, started_at=0.0)
    for address in ("a", "b", "e"):
        state.registered(address, f"{address}-1", NOW - 50, 10 * GiB, GiB)
    replicas = {"x": replica("a", "b", "e", "f")}
    for flap in range(3):  # f returns, again and again
        state.registered("f", f"f-{flap}", NOW + flap, 10 * GiB, GiB)
        for address in ("a", "b", "e"):
            state.heard_from(address, NOW + flap, 10 * GiB, GiB)
        view = IndexView(replicas, set(), set(), 3)
        assert state.reconcile("f", {"x": 100}, view, NOW + flap).delete == ["x"]
        from_e = state.reconcile("e", {"x": 100}, view, NOW + flap)
        assert from_e.delete == [] and from_e.shed == [("f", "x")]
