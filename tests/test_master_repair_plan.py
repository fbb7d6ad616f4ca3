"""Tests for myyoutube.master.repair_plan: which under-replicated blobs are copied where."""

from __future__ import annotations

import random

from myyoutube.master.repair_plan import MAX_REPAIRS_PER_NODE, Repair, plan_repairs, repair_signature
from myyoutube.master.state import ClusterState
from test_master_state import DEAD_AFTER_S, HEARTBEAT_S, NOW, GiB, MiB, make_state, replica

# --- plan_repairs -----------------------------------------------------------------------------


def test_repair_copies_from_alive_holder_to_new_alive_node():
    """An under-replicated blob is copied from an alive holder to an alive non-holder with room."""
    state = make_state(alive=["a", "b", "t"], dead=["c"], full=["f"])
    replicas = {"x": replica("a", "b", "c")}
    busy: dict[str, int] = {}
    for seed in range(10):
        busy = {}
        repairs = plan_repairs(state, replicas, 3, NOW, busy, set(), random.Random(seed))
        assert len(repairs) == 1
        assert repairs[0].blob_id == "x" and repairs[0].source in ("a", "b") and repairs[0].target == "t"
        assert busy == {repairs[0].source: 1, "t": 1}


def test_fully_replicated_blob_not_repaired():
    """A blob with `replication` live copies (suspect ones included) gets no repair."""
    state = make_state(alive=["a", "b", "t"], suspect=["s"])
    assert plan_repairs(state, {"x": replica("a", "b", "s")}, 3, NOW, {}, set(), random.Random(0)) == []


def test_repair_skips_a_target_without_room_for_the_whole_blob():
    """A blob larger than a candidate's free space is not copied there (the copy used to
    start, fill the node, fail and start again at every tick, forever); a blob that fits
    is, and the signature moves once the node's room crosses a step, so the blob that did
    not fit is planned again then."""
    state = make_state(alive=["a", "b"])
    state.heard_from("small", NOW - 1, 10 * GiB, 10 * GiB - 69 * MiB)  # 69 MiB free
    big = 80 * MiB
    replicas = {"big": replica("a", "b", size=big), "little": replica("a", "b", size=MiB)}
    repairs = plan_repairs(state, replicas, 3, NOW, {}, set(), random.Random(0))
    assert [(r.blob_id, r.target) for r in repairs] == [("little", "small")]
    before = repair_signature(state, NOW)
    state.heard_from("small", NOW - 1, 10 * GiB, 10 * GiB - 129 * MiB)  # two steps free now
    assert repair_signature(state, NOW) != before
    repairs = plan_repairs(state, {"big": replicas["big"]}, 3, NOW, {}, set(), random.Random(0))
    assert [(r.blob_id, r.target) for r in repairs] == [("big", "small")]


def test_repair_waits_for_a_nodes_old_copy_to_be_reported_deleted():
    """A node told to delete its corrupt copy of a blob gets no new copy of it until a
    report says the old one is gone: the delete order is given again until then, and
    used to delete the fresh copy repair had just made there (seen as a repair, a
    'gone' replica and a second repair of the same blob). The planner looks again once
    the order is done with."""
    state = make_state(alive=["a", "b", "t"])
    state.nodes["t"].blobs["x"] = 100  # t reported x, then found it corrupt
    state.order_deletes("t", ["x"])
    replicas = {"x": replica("a", "b")}
    assert plan_repairs(state, replicas, 3, NOW, {}, set(), random.Random(0)) == []
    assert state.deletes_due("t", 10) == ["x"]
    waiting = repair_signature(state, NOW)
    del state.nodes["t"].blobs["x"]  # t's next report: x removed
    assert state.deletes_due("t", 10) == []
    assert repair_signature(state, NOW) != waiting  # so the planner looks again
    repairs = plan_repairs(state, replicas, 3, NOW, {}, set(), random.Random(0))
    assert [(r.blob_id, r.target) for r in repairs] == [("x", "t")]


def test_fewest_live_copies_repaired_first():
    """When only one copy can start, it goes to the blob with the fewest live copies."""
    state = make_state(alive=["a", "t"], full=["b"], dead=["d1", "d2"])
    replicas = {
        "aaa-two-copies": replica("a", "b", "d1"),
        "zzz-one-copy": replica("a", "d1", "d2"),
    }
    busy = {"t": MAX_REPAIRS_PER_NODE - 1}  # the only target can take one more copy
    repairs = plan_repairs(state, replicas, 3, NOW, busy, set(), random.Random(3))
    assert repairs == [Repair("zzz-one-copy", "a", "t")]
    assert busy == {"t": MAX_REPAIRS_PER_NODE, "a": 1}


def test_repairs_ordered_by_live_copies_then_blob_id():
    """With room for all, repairs come out fewest live copies first, ties by blob id."""
    state = make_state(alive=["a", "b", "t1", "t2", "t3", "t4"], dead=["d"])
    replicas = {
        "b2": replica("a", "b", "d"),
        "a2": replica("a", "b"),
        "c1": replica("b"),
    }
    repairs = plan_repairs(state, replicas, 3, NOW, {}, set(), random.Random(0))
    assert [r.blob_id for r in repairs] == ["c1", "a2", "b2"]


def test_max_repairs_per_node_respected():
    """No node is given more than MAX_REPAIRS_PER_NODE copies, counting ones already running."""
    state = make_state(alive=["src", "t1", "t2", "t3", "t4"])
    replicas = {f"blob{i}": replica("src") for i in range(10)}
    busy = {"t1": MAX_REPAIRS_PER_NODE}
    repairs = plan_repairs(state, replicas, 3, NOW, busy, set(), random.Random(7))
    assert len(repairs) == MAX_REPAIRS_PER_NODE  # the one source is the bottleneck
    assert all(r.source == "src" and r.target in ("t2", "t3", "t4") for r in repairs)
    assert busy["src"] == MAX_REPAIRS_PER_NODE
    assert all(count <= MAX_REPAIRS_PER_NODE for count in busy.values())


def test_per_node_bound_holds_for_random_layouts():
    """Over random layouts, busy counts never exceed the bound and every repair is sound."""
    for seed in range(20):
        rng = random.Random(seed)
        alive = [f"a{i}" for i in range(rng.randint(2, 7))]
        dead = [f"d{i}" for i in range(rng.randint(0, 3))]
        state = make_state(alive=alive, dead=dead)
        replicas = {
            f"blob{i:02d}": replica(*rng.sample(alive + dead, rng.randint(1, min(3, len(alive + dead)))))
            for i in range(15)
        }
        busy = {node: rng.randint(0, MAX_REPAIRS_PER_NODE) for node in alive}
        before = dict(busy)
        repairs = plan_repairs(state, replicas, 3, NOW, busy, set(), rng)
        assert all(count <= MAX_REPAIRS_PER_NODE for count in busy.values())
        for r in repairs:
            assert r.source in replicas[r.blob_id].nodes and r.source in alive
            assert r.target not in replicas[r.blob_id].nodes and r.target in alive
        assert sum(busy.values()) - sum(before.values()) == 2 * len(repairs)
        assert len({r.blob_id for r in repairs}) == len(repairs)


def test_no_repair_without_an_alive_source():
    """A blob whose holders are all dead, suspect or unknown gets no repair."""
    state = make_state(alive=["t1", "t2", "t3"], suspect=["s"], dead=["d"])
    replicas = {"lost": replica("d"), "only-suspect": replica("s"), "only-ghost": replica("ghost")}
    assert plan_repairs(state, replicas, 3, NOW, {}, set(), random.Random(0)) == []


def test_blob_already_repairing_is_skipped():
    """A blob in the `repairing` set gets no second copy started."""
    state = make_state(alive=["a", "t"])
    replicas = {"x": replica("a"), "y": replica("a")}
    repairs = plan_repairs(state, replicas, 3, NOW, {}, {"x"}, random.Random(0))
    assert repairs == [Repair("y", "a", "t")]


def test_no_repair_without_a_target():
    """When every alive node with room already holds the blob, nothing is planned."""
    state = make_state(alive=["a", "b"], full=["f"])
    assert plan_repairs(state, {"x": replica("a", "b")}, 3, NOW, {}, set(), random.Random(0)) == []


def test_repair_signature_changes_exactly_when_a_plan_could():
    """The signature moves when a node's liveness or room changes, or start-up's grace
    ends, and stays put otherwise (the planner then skips its walk over every blob)."""
    state = make_state(alive=["a", "b"])
    first = repair_signature(state, NOW)
    assert repair_signature(state, NOW + 0.5) == first
    assert repair_signature(state, NOW + HEARTBEAT_S * 3) != first  # a and b became suspect
    state.heard_from("a", NOW, 10 * GiB, 10 * GiB)  # a is full now
    assert repair_signature(state, NOW) != first
    fresh = ClusterState(DEAD_AFTER_S, HEARTBEAT_S, started_at=NOW)
    assert repair_signature(fresh, NOW) != repair_signature(fresh, NOW + DEAD_AFTER_S)
