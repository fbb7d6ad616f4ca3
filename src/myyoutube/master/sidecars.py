"""Sidecars: each blob's description of itself, kept current on the datanodes that hold it.

Theory of operation
-------------------
The index is the only place that knows which blob is which video. To survive its loss
(issue 15), every blob carries a small JSON sidecar on each datanode holding it
(datanode/sidecars.py stores it), from which a master can rebuild the catalogue
(rebuild.py). A video part's sidecar is::

    {"blob_id", "kind", "size", "sha256", "name", "version", "record"}

`kind` is a free string ("original", "poster", "rendition" with the rendition's
`height`; other parts may come with fields of their own); `record` is the video's record as the index keeps it
(title, description, owner, visibility, upload time, details, and the blob ids of its
other parts) and `version` its version in the index, bumped by every change to it
(index migration "recovery"). A snapshot of the index is a blob too, with kind `index-snapshot` and its
`taken_at` (snapshots.py).

A sidecar is written with its blob when the writer knows it (a snapshot, a repair copy);
an upload's record is complete only at commit, so the master pushes its sidecars to the
holders right after the commit, before the uploader hears of it (uploads.push_sidecars,
`PutSidecars`). They, and every later change (an edit, a visibility, a new rendition),
also travel in the answers to the holders' heartbeats (`Commands.sidecars`), at most
SIDECARS_PER_COMMANDS per answer: that delivery is the one the index tracks, and a
datanode skips a sidecar it already holds byte for byte. The index records which
videos' sidecars are behind in the change's own transaction (`sidecars_due`), so a
master that dies before delivering delivers after its restart. A sidecar sent in an
answer counts as delivered when the node's next frame arrives (a datanode obeys an answer
before it sends again); a node that went away gets it again when it comes back. The
datanode keeps the highest version, so repeats and reorderings are harmless, and the
content is read from the index when sent, so several quick edits cost one sidecar.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from myyoutube.master.index import Index

# Sidecars per heartbeat answer. Each is at most a few KiB of JSON (a description is at
# most 5,000 characters), so an answer stays far below the frame limits, and a datanode
# writes and fsyncs this many small files between two heartbeats. After a master restart
# with 100,000 videos due on 3 nodes this delivers them in about 20 minutes at the
# default 3 s heartbeat, without slowing a heartbeat down.
SIDECARS_PER_COMMANDS = 256

# ... and at most this many bytes of them (JSON), whatever the records hold: a record is
# at most a few tens of KiB, so an answer stays far below protocol.MAX_META_BYTES (8 MiB).
SIDECAR_COMMANDS_BYTES = 1024 * 1024

ORIGINAL_KIND = "original"  # the file as uploaded: the record's blob_id
POSTER_KIND = "poster"
RENDITION_KIND = "rendition"  # one of the record's renditions, with its height
SNAPSHOT_KIND = "index-snapshot"


def parts_of(video: dict) -> list[tuple[str, str]]:
    """(blob id, kind) of every blob a video's record names, the original first."""
    parts = [(video["blob_id"], ORIGINAL_KIND)]
    if video.get("poster_blob_id"):
        parts.append((video["poster_blob_id"], POSTER_KIND))
    parts += [(rendition["blob_id"], RENDITION_KIND) for rendition in video.get("renditions", ())]
    return parts


def video_sidecar(video: dict, blob_id: str, kind: str, version: int, size: int, sha256: str) -> dict:
    sidecar = {
        "blob_id": blob_id,
        "kind": kind,
        "size": size,
        "sha256": sha256,
        "name": video["name"],
        "version": version,
        "record": dict(video),
    }
    for rendition in video.get("renditions", ()):
        if rendition["blob_id"] == blob_id:
            sidecar["height"] = rendition["height"]
    return sidecar


def snapshot_sidecar(blob_id: str, taken_at: float, size: int, sha256: str) -> dict:
    # A snapshot never changes: version 1 for ever.
    return {
        "blob_id": blob_id,
        "kind": SNAPSHOT_KIND,
        "size": size,
        "sha256": sha256,
        "taken_at": taken_at,
        "version": 1,
    }


class SidecarQueue:
    """Which (node, blob) pairs need a video's current sidecar (pure, no I/O).

    `changed` files every holder of a video's blobs; `take` hands one node's entries for
    a heartbeat answer (entries handed earlier and never acknowledged first); `acked`
    says the node's answer was obeyed and returns the videos now delivered everywhere;
    `moved` follows a node to its new address.
    """

    def __init__(self) -> None:
        self._due: dict[str, dict[str, str]] = {}  # node -> blob id -> video name
        self._sent: dict[str, dict[str, str]] = {}  # node -> blob id -> name, awaiting the ack
        self._pairs: dict[str, set[tuple[str, str]]] = {}  # name -> (node, blob) not yet delivered

    def changed(self, name: str, holders: Mapping[str, Iterable[str]]) -> bool:
        """File the video's blobs (blob id -> nodes holding it); True if there is no holder
        to tell (nothing to deliver)."""
        pairs = self._pairs.setdefault(name, set())
        for blob_id, nodes in holders.items():
            for node in nodes:
                self._due.setdefault(node, {})[blob_id] = name
                pairs.add((node, blob_id))
        if not pairs:
            del self._pairs[name]
            return True
        return False

    def take(self, node: str, limit: int) -> list[tuple[str, str]]:
        """Up to `limit` (blob id, video name) entries to send `node` now."""
        due = self._due.setdefault(node, {})
        for blob_id, name in self._sent.pop(node, {}).items():
            due.setdefault(blob_id, name)  # never acknowledged: the answer was lost
        taken = {}
        for blob_id in list(due)[:limit]:
            taken[blob_id] = due.pop(blob_id)
        if not due:
            del self._due[node]
        if taken:
            self._sent[node] = taken
        return list(taken.items())

    def untake(self, node: str, entries: list[tuple[str, str]]) -> None:
        """Entries taken for `node` that did not fit in its answer: due again."""
        sent = self._sent.get(node, {})
        due = self._due.setdefault(node, {})
        for blob_id, name in entries:
            sent.pop(blob_id, None)
            due.setdefault(blob_id, name)

    def moved(self, old: str, new: str) -> None:
        """The node at address `old` registered from `new`, its blobs with it: what was
        due to the old address (or sent there and never acknowledged) is due to the new
        one. Left under the old address it would never be delivered nor forgotten, and
        each video waiting on it would stay behind for as long as the master runs."""
        pending = self._sent.pop(old, {}) | self._due.pop(old, {})
        if not pending:
            return
        due = self._due.setdefault(new, {})
        for blob_id, name in pending.items():
            due.setdefault(blob_id, name)
            pairs = self._pairs.get(name)
            if pairs is not None and (old, blob_id) in pairs:
                pairs.discard((old, blob_id))
                pairs.add((new, blob_id))

    def acked(self, node: str) -> list[str]:
        """`node` obeyed the last answer: the videos whose sidecars every holder has now."""
        finished = []
        still_due = self._due.get(node, {})
        for blob_id, name in self._sent.pop(node, {}).items():
            if blob_id in still_due:
                continue  # changed again since it was sent: the newer one is still due
            pairs = self._pairs.get(name)
            if pairs is None:
                continue
            pairs.discard((node, blob_id))
            if not pairs:
                del self._pairs[name]
                finished.append(name)
        return finished


class SidecarDelivery:
    """The master's sidecars: what is due where, and each blob's sidecar as of now.

    It finds what changed in the index itself (`sidecars_due`, filled by triggers), so no
    code path that changes a record (an edit, a new rendition) has to tell it: before
    each heartbeat answer it looks again if the index changed at all since its last look,
    and files every video whose record version it has not filed yet.
    """

    def __init__(self, index: Index) -> None:
        self.index = index
        self.queue = SidecarQueue()
        self._filed: dict[str, int] = {}  # name -> the record version filed for delivery
        self._changes_seen = -1  # index.recovery.changes() at the last look

    def refresh(self) -> None:
        """File the videos that became due since the last look."""
        changes = self.index.recovery.changes()
        if changes == self._changes_seen:
            return
        self._changes_seen = changes
        for name, version in self.index.recovery.due_versions():
            if self._filed.get(name) != version:
                self._filed[name] = version
                self.changed(name)

    def changed(self, name: str) -> None:
        """The video's record changed (or was committed): every holder gets its sidecars."""
        video = self.index.videos.get(name)
        if video is None:
            self._delivered([name])  # deleted: nothing left to describe
            return
        if self.queue.changed(name, self.holders(video)):
            self._delivered([name])

    def holders(self, video: dict) -> dict[str, list[str]]:
        """Each stored part of `video` (blob id) -> the nodes holding it."""
        return {
            blob_id: list(self.index.replicas[blob_id].nodes)
            for blob_id, _ in parts_of(video)
            if blob_id in self.index.replicas
        }

    def _delivered(self, names: list[str]) -> None:
        """The versions filed for these videos reached every holder. A change made while
        they were on their way leaves the video due (its version moved on), so the next
        refresh files it again; -1 (never filed) matches only a deleted video."""
        self.index.recovery.delivered([(name, self._filed.pop(name, -1)) for name in names])
        self._changes_seen = -1  # look again at the next answer, for a video still due

    def due(self, node: str) -> list[dict]:
        """The sidecars to send `node` in its next heartbeat answer."""
        self.refresh()
        sidecars: list[dict] = []
        size = 0
        taken = self.queue.take(node, SIDECARS_PER_COMMANDS)
        for number, (blob_id, name) in enumerate(taken):
            video = self.index.videos.get(name)
            replica = self.index.replicas.get(blob_id)
            if video is None or replica is None or node not in replica.nodes:
                continue  # deleted or moved meanwhile; acknowledged with the rest
            sidecar = self.for_blob(blob_id)
            if sidecar is None:
                continue
            size += len(json.dumps(sidecar, ensure_ascii=False).encode())
            if sidecars and size > SIDECAR_COMMANDS_BYTES:
                self.queue.untake(node, taken[number:])
                break
            sidecars.append(sidecar)
        return sidecars

    def moved(self, old: str, new: str) -> None:
        self.queue.moved(old, new)

    def acked(self, node: str) -> None:
        finished = self.queue.acked(node)
        if finished:
            self._delivered(finished)

    def for_blob(self, blob_id: str) -> dict | None:
        """The current sidecar of a committed blob (a video's part or a snapshot), if any."""
        replica = self.index.replicas.get(blob_id)
        if replica is None:
            return None
        name = self.index.recovery.video_of_blob(blob_id)
        if name is not None and name in self.index.videos:
            video = self.index.videos[name]
            kind = dict(parts_of(video)).get(blob_id, ORIGINAL_KIND)
            version = self.index.recovery.version(name) or 1
            return video_sidecar(video, blob_id, kind, version, replica.size, replica.sha256)
        for snapshot_id, taken_at in self.index.recovery.snapshots():
            if snapshot_id == blob_id:
                return snapshot_sidecar(blob_id, taken_at, replica.size, replica.sha256)
        return None
