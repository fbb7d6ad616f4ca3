"""Tests for myyoutube.master.rebuild: snapshot + sidecars -> the recovered catalogue, and
what is reported lost (pure, no I/O)."""

from __future__ import annotations

from myyoutube.master.rebuild import Plan, Snapshot, merge, snapshot_candidates, summary

T0 = 1_800_000_000.0


def record(name: str, blob: str, title: str = "t", uploaded_at: float = T0, **more) -> dict:
    base = {"name": name, "blob_id": blob, "size": 10, "sha256": "0" * 64, "content_type": "video/mp4"}
    return (
        base
        | {"uploaded_at": uploaded_at, "title": title, "description": "", "owner": "ann"}
        | {
            "visibility": "public",
            "views": 0,
            "poster_blob_id": None,
        }
        | more
    )


def sidecar(rec: dict, version: int, blob: str | None = None, kind: str = "original") -> dict:
    blob = blob or rec["blob_id"]
    return {"blob_id": blob, "kind": kind, "size": 10, "sha256": "0" * 64, "name": rec["name"]} | {
        "version": version,
        "record": rec,
    }


def snapshot(*records: dict, versions: dict | None = None, users=("admin", "ann")) -> Snapshot:
    videos = {r["name"]: r for r in records}
    parts = [r["blob_id"] for r in records] + [x["blob_id"] for r in records for x in r.get("renditions", [])]
    blobs = dict.fromkeys(parts, (10, "0" * 64))
    return Snapshot(T0 + 100, videos, versions or dict.fromkeys(videos, 1), blobs, frozenset(users))


def test_newer_sidecar_versions_win_older_ones_do_not():
    """An edit after the snapshot (higher version) wins; a stale sidecar (lower version)
    loses to the snapshot; the snapshot's view count is kept."""
    cat, dog = record("cat", "a" * 32, "Cat", views=7), record("dog", "b" * 32, "Dog")
    plan = merge(
        snapshot(cat, dog, versions={"cat": 2, "dog": 4}),
        [
            sidecar(record("cat", "a" * 32, "Cat, retitled"), 3),
            sidecar(record("dog", "b" * 32, "Old dog"), 3),
        ],
        {"a" * 32: 1, "b" * 32: 1},
    )
    assert plan.videos["cat"]["title"] == "Cat, retitled" and plan.videos["cat"]["views"] == 7
    assert plan.videos["dog"]["title"] == "Dog"
    assert (plan.from_sidecars, plan.versions) == (["cat"], {"cat": 3, "dog": 4})


def test_videos_uploaded_after_the_snapshot_come_from_sidecars_and_gone_ones_are_dropped():
    """A video only sidecars know is added; a snapshot video whose blob no node holds is
    dropped; a re-upload under the same name (later upload time) wins over its old record."""
    old, gone = record("cat", "a" * 32, "Old cat"), record("gone", "c" * 32)
    new_cat = record("cat", "d" * 32, "New cat", uploaded_at=T0 + 200)
    fresh = record("fresh", "e" * 32, owner="zoe")
    plan = merge(
        snapshot(old, gone, versions={"cat": 9, "gone": 1}),
        [sidecar(new_cat, 1), sidecar(fresh, 1)],
        {
            "d" * 32: 1,
            "e" * 32: 1,
            "a" * 32: 1,
        },
    )
    assert sorted(plan.videos) == ["cat", "fresh"]
    assert plan.videos["cat"]["blob_id"] == "d" * 32
    assert plan.dropped == ["gone"]
    assert plan.owners_unknown == ["zoe"]  # created after the snapshot: reported
    assert plan.unknown_blobs == 1  # the replaced cat's old blob stays an orphan


def test_a_missing_poster_is_dropped_and_malformed_sidecars_are_counted():
    cat = record("cat", "a" * 32, poster_blob_id="p" * 32)
    plan = merge(
        None, [sidecar(cat, 1), {"kind": "original", "name": "x", "version": "1"}, {}], {"a" * 32: 1}
    )
    assert plan.videos["cat"]["poster_blob_id"] is None and plan.posters_lost == ["cat"]
    assert plan.bad_sidecars == 2
    assert plan.from_sidecars == ["cat"]
    text = summary(plan, None, 0, 3)
    assert "no intact index snapshot" in text and "1 poster lost: cat" in text


def test_snapshot_candidates_are_held_ones_newest_first():
    def snap(blob: str, taken_at: float) -> dict:
        return {"blob_id": blob, "kind": "index-snapshot", "taken_at": taken_at, "size": 1, "sha256": ""}

    found = [snap("a", 1.0), snap("b", 3.0), snap("c", 2.0), snap("b", 3.0), snap("gone", 9.0)]
    assert [s["blob_id"] for s in snapshot_candidates(found, {"a": 1, "b": 1, "c": 1})] == ["b", "c", "a"]


def test_renditions_come_from_the_snapshot_or_are_made_again():
    """Renditions need the snapshot's fragment indexes: a sidecar's record of the same
    original keeps the snapshot's; a video uploaded after the snapshot, or one missing a
    rendition everywhere, lists none (transcoding makes them all again) and is named."""
    r240, r360 = {"height": 240, "blob_id": "r" * 32}, {"height": 360, "blob_id": "s" * 32}
    edited = record("edited", "a" * 32, "Old", renditions=[r240])
    holes = record("holes", "b" * 32, renditions=[r240 | {"blob_id": "t" * 32}, r360])
    late = record("late", "c" * 32, uploaded_at=T0 + 500, renditions=[r240 | {"blob_id": "u" * 32}])
    found = [
        sidecar(record("edited", "a" * 32, "New", renditions=[r240]), 2),
        sidecar(late, 1),
        sidecar(late, 1, "u" * 32, kind="rendition") | {"height": 240},
    ]
    held = dict.fromkeys(["a" * 32, "b" * 32, "c" * 32, "r" * 32, "s" * 32, "u" * 32], 1)
    plan = merge(snapshot(edited, holes), found, held)
    assert plan.videos["edited"]["title"] == "New" and plan.videos["edited"]["renditions"] == [r240]
    assert plan.videos["holes"]["renditions"] == [] and plan.videos["late"]["renditions"] == []
    assert sorted(plan.renditions_remade) == ["holes", "late"]
    assert "r" * 32 in plan.blobs and "s" * 32 not in plan.blobs


def test_the_summary_puts_each_count_in_its_number():
    """The recovery summary said "1 accounts", "1 videos recovered", "1 videos lost
    renditions" and "1 blobs no record names are kept" after `--recover`; each count now
    takes its noun (and verb) in its number, one or more."""
    cat = record("cat", "a" * 32)
    one = Plan(
        videos={"cat": cat},
        dropped=["gone"],
        posters_lost=["cat"],
        renditions_remade=["cat"],
        unknown_blobs=1,
        bad_sidecars=1,
    )
    text = summary(one, snapshot(cat, users=("admin",)), 1, 1)
    for said in (
        "recovery from 1 datanode: ",
        "(1 account; ",
        "; 1 video recovered, 0 of them",
        "; 1 newer snapshot was damaged or unreadable and skipped",
        "; 1 video had no copy left and was dropped: gone",
        "; 1 poster lost: cat",
        "; 1 video lost renditions, which transcoding makes again: cat",
        "; 1 blob no record names is kept as orphans",
        "; 1 malformed sidecar ignored",
    ):
        assert said in text, (said, text)
    two = Plan(videos={"cat": cat, "dog": cat}, dropped=["a", "b"], unknown_blobs=2)
    text = summary(two, snapshot(cat), 2, 3)
    for said in ("from 3 datanodes", "(2 accounts; ", "; 2 videos recovered", "2 newer snapshots were"):
        assert said in text, (said, text)
    assert "2 videos had no copy left and were dropped" in text and "2 blobs no record names are kept" in text


def test_a_held_snapshot_the_loaded_one_does_not_list_is_counted_as_an_orphan():
    """After `--restore` then `--recover`, the summary said "1 blob ... kept as orphans"
    while /status counted 2: the snapshot taken before the restore, which the restored
    index (and so the snapshot loaded) never listed, was left out of the count as a
    snapshot, yet the recovered index does not list it either. It is counted now, and
    named as a snapshot; the loaded snapshot and those it lists are no orphans."""
    cat = record("cat", "a" * 32)
    before_restore, loaded, listed = "1" * 32, "2" * 32, "3" * 32
    sidecars = [
        {"blob_id": blob, "kind": "index-snapshot", "taken_at": T0, "size": 1, "sha256": ""}
        for blob in (before_restore, loaded, listed)
    ]
    held = dict.fromkeys(["a" * 32, "f" * 32, before_restore, loaded, listed], 1)
    loaded_snapshot = Snapshot(
        T0 + 100, {"cat": cat}, {"cat": 1}, {}, frozenset(), frozenset({loaded, listed})
    )
    plan = merge(loaded_snapshot, [sidecar(cat, 1), *sidecars], held)
    assert (plan.unknown_blobs, plan.unlisted_snapshots) == (2, 1)  # "f"*32 and before_restore
    assert (
        "; 2 blobs no record names are kept as orphans (1 of them an index snapshot this index does not list"
        in summary(plan, loaded_snapshot, 0, 3)
    )
