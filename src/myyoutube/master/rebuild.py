"""What a recovering master rebuilds: a snapshot plus sidecars -> the catalogue (pure).

Theory of operation
-------------------
Recovery (recovery.py) gathers three things from the datanodes: which blobs each holds
(their block reports), every blob's sidecar (sidecars.py), and the newest intact index
snapshot (snapshots.py), whose records are read into a `Snapshot`. `merge` decides, with
no I/O, what the catalogue becomes:

* Every video name seen in the snapshot or in a sidecar has candidate records: the
  snapshot's and each sidecar's. The newest wins, ordered by upload time and then by
  version: a re-upload under a deleted video's name is newer whatever the versions, and
  an edit after the snapshot has a higher version. On a tie the snapshot wins (it also
  has the view count).
* A candidate counts only if some datanode holds its video blob: a video deleted after
  the snapshot, or lost on every disk, is dropped (and named in the summary). A poster
  held nowhere is dropped from the record, the video kept.
* A rendition is listed only with its fragment index, which only the snapshot holds: a
  record from a sidecar keeps the snapshot's renditions of the same original. A video
  uploaded after the snapshot, or missing a rendition everywhere, loses its renditions
  and its jobs: the transcode backlog (every video without jobs) makes them again, and
  the summary names the videos missing a rendition.
* A kept video whose owner has no account in the snapshot (created after it) is kept
  and reported, so an admin can create the account again.
* Held blobs that no kept record names and that the loaded snapshot does not list as a
  snapshot (nor is) stay unknown: orphans, kept until an operator purges them, as before
  recovery. Among them may be index snapshots: one taken before a `--restore` (the
  restored index never knew it), or a newer one skipped as damaged; the summary counts
  them as /status does, and says which are snapshots.

Sidecars that do not parse are counted and ignored; a datanode is trusted with the bytes,
not with the shape of what it reports.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from myyoutube.formatting import agreeing, counted
from myyoutube.master.sidecars import SNAPSHOT_KIND, parts_of

# The fields every record must have to be listed, streamed and checked for permissions.
_RECORD_TEXT = ("name", "blob_id", "content_type", "title", "owner", "visibility")


@dataclass(frozen=True)
class Snapshot:
    """The records of a loaded index snapshot."""

    taken_at: float
    videos: dict[str, dict]  # name -> record (as Index.videos holds it)
    versions: dict[str, int]  # name -> record version
    blobs: dict[str, tuple[int, str]]  # blob id -> (size, sha256)
    users: frozenset[str]
    # The index snapshots its index lists, itself included: the ones the recovered index
    # lists too (index_files.write_plan), any other held snapshot staying an orphan.
    snapshots: frozenset[str] = frozenset()


@dataclass
class Plan:
    """The catalogue to write, and what recovery could not bring back."""

    videos: dict[str, dict] = field(default_factory=dict)  # name -> record, kept
    versions: dict[str, int] = field(default_factory=dict)
    from_sidecars: list[str] = field(default_factory=list)  # new or newer than the snapshot
    blobs: dict[str, tuple[int, str]] = field(default_factory=dict)  # every blob the records name
    dropped: list[str] = field(default_factory=list)  # no copy of the video is left
    posters_lost: list[str] = field(default_factory=list)
    renditions_remade: list[str] = field(default_factory=list)  # videos missing some renditions
    owners_unknown: list[str] = field(default_factory=list)
    unknown_blobs: int = 0
    unlisted_snapshots: int = 0  # of the unknown blobs, index snapshots (see Snapshot.snapshots)
    bad_sidecars: int = 0


@dataclass(frozen=True)
class _Candidate:
    record: dict
    version: int
    from_snapshot: bool
    blobs: dict[str, tuple[int, str]]  # what this candidate knows of part sizes

    @property
    def key(self) -> tuple[float, int, bool]:
        return (self.record["uploaded_at"], self.version, self.from_snapshot)


def valid_record(record: object, name: str) -> bool:
    if not isinstance(record, dict) or record.get("name") != name:
        return False
    if not all(isinstance(record.get(key), str) for key in _RECORD_TEXT):
        return False
    numbers = (record.get("uploaded_at"), record.get("size"))
    return all(type(n) in (int, float) for n in numbers) and isinstance(record.get("sha256"), str)


def _video_sidecars(sidecars: Iterable[dict], plan: Plan) -> Iterable[tuple[str, dict]]:
    """(name, sidecar) of every well-formed sidecar of a video's part."""
    for sidecar in sidecars:
        if sidecar.get("kind") == SNAPSHOT_KIND:
            continue
        name = sidecar.get("name")
        if (
            not isinstance(name, str)
            or type(sidecar.get("version")) is not int
            or not valid_record(sidecar.get("record"), name)
            or type(sidecar.get("size")) is not int
            or not isinstance(sidecar.get("sha256"), str)
        ):
            plan.bad_sidecars += 1
            continue
        yield name, sidecar


def _candidates(
    snapshot: Snapshot | None, sidecars: Iterable[dict], plan: Plan
) -> dict[str, list[_Candidate]]:
    candidates: dict[str, list[_Candidate]] = {}
    sizes: dict[str, tuple[int, str]] = dict(snapshot.blobs) if snapshot else {}
    found: list[tuple[str, dict]] = list(_video_sidecars(sidecars, plan))
    for _, sidecar in found:
        sizes.setdefault(sidecar["blob_id"], (sidecar["size"], sidecar["sha256"]))
    if snapshot is not None:
        for name, record in snapshot.videos.items():
            version = snapshot.versions.get(name, 1)
            candidates.setdefault(name, []).append(_Candidate(record, version, True, sizes))
    for name, sidecar in found:
        candidates.setdefault(name, []).append(
            _Candidate(dict(sidecar["record"]), sidecar["version"], False, sizes)
        )
    return candidates


def merge(snapshot: Snapshot | None, sidecars: Iterable[dict], held: Mapping[str, object]) -> Plan:
    """The catalogue from `snapshot` (None: none was found) and every sidecar found, given
    the blobs some datanode holds (`held`: blob id -> anything)."""
    plan, sidecars = Plan(), list(sidecars)
    for name, candidates in sorted(_candidates(snapshot, sidecars, plan).items()):
        alive = [c for c in candidates if c.record["blob_id"] in held]
        if not alive:
            plan.dropped.append(name)
            continue
        best = max(alive, key=lambda c: c.key)
        record = dict(best.record)
        if snapshot is not None and not best.from_snapshot:
            plan.from_sidecars.append(name)
            before = snapshot.videos.get(name)
            if before is not None and before["blob_id"] == record["blob_id"]:
                record["views"] = max(before.get("views", 0), record.get("views", 0))
        elif snapshot is None:
            plan.from_sidecars.append(name)
        record.setdefault("views", 0)
        record.setdefault("description", "")
        _keep_renditions(record, snapshot, best.from_snapshot, plan)
        _keep_parts(record, best.blobs, held, plan)
        plan.videos[name] = record
        plan.versions[name] = best.version
    owners = {record["owner"] for record in plan.videos.values()}
    if snapshot is not None:
        plan.owners_unknown = sorted(owners - snapshot.users)
    unknown = set(held) - set(plan.blobs) - (snapshot.snapshots if snapshot else frozenset())
    plan.unknown_blobs = len(unknown)
    plan.unlisted_snapshots = len(
        unknown & {s["blob_id"] for s in sidecars if s.get("kind") == SNAPSHOT_KIND}
    )
    return plan


def _keep_renditions(record: dict, snapshot: Snapshot | None, from_snapshot: bool, plan: Plan) -> None:
    """A rendition can be listed only with its fragment index, which the snapshot holds
    and sidecars do not: a record from a sidecar keeps the snapshot's renditions of the
    same original, or none (a video the snapshot never saw has no jobs either, so the
    master's transcode backlog makes them again)."""
    if from_snapshot:
        return
    before = snapshot.videos.get(record["name"]) if snapshot else None
    kept = before.get("renditions", []) if before and before["blob_id"] == record["blob_id"] else []
    if len(kept) < len(record.get("renditions", [])):
        kept = []  # made again, all of them (see _keep_parts)
        plan.renditions_remade.append(record["name"])
    record["renditions"] = list(kept)


def _keep_parts(
    record: dict, sizes: Mapping[str, tuple[int, str]], held: Mapping[str, object], plan: Plan
) -> None:
    """Record the sizes of the video's parts; a poster or rendition no one holds is dropped."""
    plan.blobs[record["blob_id"]] = (record["size"], record["sha256"])
    poster = record.get("poster_blob_id")
    if poster and (poster not in held or poster not in sizes):
        record["poster_blob_id"] = None
        plan.posters_lost.append(record["name"])
    renditions = record.get("renditions", [])
    if record["name"] not in plan.renditions_remade and any(
        r["blob_id"] not in held or r["blob_id"] not in sizes for r in renditions
    ):
        # Its jobs go too (write_plan): the transcode backlog makes every rung again,
        # rather than a ladder with holes. The renditions still held become orphans.
        record["renditions"] = []
        plan.renditions_remade.append(record["name"])
    for blob_id, _ in parts_of(record)[1:]:
        plan.blobs[blob_id] = sizes[blob_id]


def snapshot_candidates(sidecars: Iterable[dict], held: Mapping[str, object]) -> list[dict]:
    """The snapshot sidecars of blobs some node holds, newest first, one per blob."""
    found: dict[str, dict] = {}
    for sidecar in sidecars:
        if (
            sidecar.get("kind") == SNAPSHOT_KIND
            and sidecar.get("blob_id") in held
            and type(sidecar.get("taken_at")) in (int, float)
            and type(sidecar.get("size")) is int
            and isinstance(sidecar.get("sha256"), str)
        ):
            found.setdefault(sidecar["blob_id"], sidecar)
    return sorted(found.values(), key=lambda s: (s["taken_at"], s["blob_id"]), reverse=True)


def summary(plan: Plan, snapshot: Snapshot | None, skipped_snapshots: int, nodes: int) -> str:
    """One paragraph for the log: what was recovered and what could not be."""
    if snapshot is None:
        base = (
            "no intact index snapshot was found: accounts other than admin, sessions and view counts are lost"
        )
    else:
        base = (
            f"index snapshot of {_clock(snapshot.taken_at)} loaded ({counted(len(snapshot.users), 'account')}; "
            f"sessions opened and views counted since then are lost)"
        )
    parts = [
        f"recovery from {counted(nodes, 'datanode')}: {base}",
        f"{counted(len(plan.videos), 'video')} recovered, {len(plan.from_sidecars)} of them from sidecars "
        "newer than the snapshot",
    ]
    if skipped_snapshots:
        parts.append(
            f"{counted(skipped_snapshots, 'newer snapshot')} {agreeing(skipped_snapshots, 'was', 'were')} "
            "damaged or unreadable and skipped"
        )
    if plan.dropped:
        parts.append(
            f"{counted(len(plan.dropped), 'video')} had no copy left and "
            f"{agreeing(len(plan.dropped), 'was', 'were')} dropped: {_names(plan.dropped)}"
        )
    if plan.posters_lost:
        parts.append(f"{counted(len(plan.posters_lost), 'poster')} lost: {_names(plan.posters_lost)}")
    if plan.renditions_remade:
        parts.append(
            f"{counted(len(plan.renditions_remade), 'video')} lost renditions, which transcoding makes again: "
            f"{_names(plan.renditions_remade)}"
        )
    if plan.owners_unknown:
        parts.append(
            f"accounts created after the snapshot are lost; these own videos and must be created again: "
            f"{_names(plan.owners_unknown)}"
        )
    if plan.unknown_blobs:
        snapshots = (
            f" ({plan.unlisted_snapshots} of them "
            f"{agreeing(plan.unlisted_snapshots, 'an index snapshot', 'index snapshots')} this index "
            "does not list: taken before a --restore, or damaged)"
            if plan.unlisted_snapshots
            else ""
        )
        parts.append(
            f"{counted(plan.unknown_blobs, 'blob')} no record names "
            f"{agreeing(plan.unknown_blobs, 'is', 'are')} kept as orphans{snapshots}"
        )
    if plan.bad_sidecars:
        parts.append(f"{counted(plan.bad_sidecars, 'malformed sidecar')} ignored")
    return "; ".join(parts)


# The summary names at most this many videos or accounts per kind: one log line.
SUMMARY_NAMES_MAX = 20


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:SUMMARY_NAMES_MAX])
    return shown + (f" and {len(names) - SUMMARY_NAMES_MAX} more" if len(names) > SUMMARY_NAMES_MAX else "")


def _clock(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
