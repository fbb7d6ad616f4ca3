"""Tests for myyoutube.master.sidecars: which holders still need a video's sidecar, and
what a sidecar says (pure, plus a real index file for versions)."""

from __future__ import annotations

from pathlib import Path

from myyoutube.master import sidecars
from myyoutube.master.index import Index, StoredBlob
from myyoutube.master.sidecars import SidecarDelivery, SidecarQueue

NOW = 1_800_000_000.0
NODES = ["n1", "n2", "n3"]


def test_a_video_is_delivered_once_every_holder_acknowledged():
    """Each holder gets the video's blobs in its next answer; the video counts as
    delivered only after the last holder's next frame."""
    queue = SidecarQueue()
    assert not queue.changed("cat.mp4", {"v": NODES, "p": NODES[:2]})
    assert sorted(queue.take("n1", 10)) == [("p", "cat.mp4"), ("v", "cat.mp4")]
    assert queue.take("n3", 10) == [("v", "cat.mp4")]
    assert queue.acked("n1") == [] and queue.acked("n3") == []
    queue.take("n2", 10)
    assert queue.acked("n2") == ["cat.mp4"]
    assert queue.take("n2", 10) == [] and queue.acked("n2") == []


def test_an_answer_never_acknowledged_is_sent_again():
    """A connection lost between answer and next frame: the entries go in the next answer."""
    queue = SidecarQueue()
    queue.changed("cat.mp4", {"v": ["n1"]})
    assert queue.take("n1", 10) == [("v", "cat.mp4")]
    assert queue.take("n1", 10) == [("v", "cat.mp4")]  # re-registered, no ack in between
    assert queue.acked("n1") == ["cat.mp4"]


def test_a_change_while_in_flight_is_sent_again_and_answers_are_capped():
    """An edit made while the previous sidecar is on its way is not lost; an answer holds
    at most `limit` entries, the rest wait for the next."""
    queue = SidecarQueue()
    queue.changed("cat.mp4", {"v": ["n1"]})
    queue.take("n1", 10)
    queue.changed("cat.mp4", {"v": ["n1"]})
    assert queue.acked("n1") == []
    assert queue.take("n1", 10) == [("v", "cat.mp4")]
    assert queue.acked("n1") == ["cat.mp4"]
    queue.changed("many.mp4", {f"{i:032x}": ["n1"] for i in range(5)})
    assert len(queue.take("n1", 2)) == 2
    queue.acked("n1")
    assert len(queue.take("n1", 10)) == 3
    assert queue.acked("n1") == ["many.mp4"]


def test_entries_that_do_not_fit_an_answer_are_due_again():
    queue = SidecarQueue()
    queue.changed("cat.mp4", {"a": ["n1"], "b": ["n1"]})
    taken = queue.take("n1", 10)
    queue.untake("n1", taken[1:])
    assert queue.acked("n1") == []
    assert queue.take("n1", 10) == taken[1:]
    assert queue.acked("n1") == ["cat.mp4"]


def test_what_was_due_to_a_node_that_moved_goes_to_its_new_address():
    """A node that registers from a new address (its blobs follow it) gets there what was
    due to its old one, sent or not, and the videos are then delivered. Before, those
    entries stayed under the old address for as long as the master ran: never sent, and
    the videos never counted as delivered."""
    queue = SidecarQueue()
    queue.changed("cat.mp4", {"v": ["n1", "n2"], "p": ["n1"]})
    queue.changed("dog.mp4", {"d": ["n1"]})
    assert len(queue.take("n1", 1)) == 1  # one in flight when the node went, two not sent
    queue.take("n2", 10)
    assert queue.acked("n2") == []
    queue.moved("n1", "n1-elsewhere")
    taken = queue.take("n1-elsewhere", 10)
    assert sorted(taken) == [("d", "dog.mp4"), ("p", "cat.mp4"), ("v", "cat.mp4")]
    assert sorted(queue.acked("n1-elsewhere")) == ["cat.mp4", "dog.mp4"]
    assert queue.take("n1", 10) == []


def test_a_video_without_holders_needs_nothing():
    assert SidecarQueue().changed("gone.mp4", {})


def test_sidecars_carry_the_record_and_a_version_that_every_change_bumps(tmp_path: Path, monkeypatch):
    """A committed video's sidecars describe each part with the whole record; an edit or a
    visibility change bumps the version; the index remembers what is due across a reopen."""
    path = tmp_path / "index.sqlite3"
    index = Index(path, NOW)
    for blob_id in ("a" * 32, "b" * 32):
        index.ownership.begin_blob(blob_id, NOW)
    video = {"name": "cat.mp4", "blob_id": "a" * 32, "size": 10, "sha256": "0" * 64}
    video |= {"content_type": "video/mp4", "uploaded_at": NOW, "poster_blob_id": "b" * 32, "owner": "ann"}
    blobs = [StoredBlob("a" * 32, 10, "0" * 64, NODES), StoredBlob("b" * 32, 3, "1" * 64, NODES[:1])]
    index.commit_video(video, blobs, NOW)
    delivery = SidecarDelivery(index)
    assert index.recovery.due() == ["cat.mp4"]
    first = delivery.due("n1")
    assert {(s["kind"], s["version"], s["size"]) for s in first} == {("original", 1, 10), ("poster", 1, 3)}
    assert first[0]["record"]["owner"] == "ann" and first[0]["record"]["poster_blob_id"] == "b" * 32
    index.catalogue.edit("cat.mp4", "A cat", "purring")
    index.set_visibility("cat.mp4", "private")
    assert index.recovery.version("cat.mp4") == 3
    index.close()

    reopened = Index(path, NOW)
    delivery = SidecarDelivery(reopened)
    monkeypatch.setattr(sidecars, "SIDECAR_COMMANDS_BYTES", 10)  # one sidecar per answer
    assert len(delivery.due("n1")) == 1
    delivery.acked("n1")
    for node in NODES:
        sidecar = delivery.due(node)[0]
        assert (sidecar["version"], sidecar["record"]["title"], sidecar["record"]["visibility"]) == (
            3,
            "A cat",
            "private",
        )
        delivery.acked(node)
    assert reopened.recovery.due() == []


def test_a_change_made_while_the_previous_version_is_delivered_is_not_lost(tmp_path: Path):
    """The acknowledgement of version 1 arriving after version 2 was committed (before the
    master looked again) leaves the video due, and version 2 goes in the next answer."""
    index = Index(tmp_path / "index.sqlite3", NOW)
    index.ownership.begin_blob("a" * 32, NOW)
    video = {"name": "cat.mp4", "blob_id": "a" * 32, "size": 10, "sha256": "0" * 64}
    video |= {"content_type": "video/mp4", "uploaded_at": NOW}
    index.commit_video(video, [StoredBlob("a" * 32, 10, "0" * 64, ["n1"])], NOW)
    delivery = SidecarDelivery(index)
    assert delivery.due("n1")[0]["version"] == 1
    index.catalogue.edit("cat.mp4", "Edited meanwhile", "")
    delivery.acked("n1")  # version 1 arrived
    assert index.recovery.due() == ["cat.mp4"]
    again = delivery.due("n1")
    assert [(s["version"], s["record"]["title"]) for s in again] == [(2, "Edited meanwhile")]
    delivery.acked("n1")
    assert index.recovery.due() == []
