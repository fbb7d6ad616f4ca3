"""The master's side of transcoding: jobs out in heartbeats, renditions in, what viewers see.

Theory of operation
-------------------
A video committed with its size known gets one job per rung of its ladder (created in
the commit's transaction, `jobs_for`). Each datanode heartbeat says how many transcode
slots the node has, which of its jobs are still running (with their progress) and which
failed; `on_heartbeat` applies that to the jobs (pure rules in jobs.py), puts back jobs
whose lease ran out, and leases queued jobs to the node's free slots, preferring the
sources it holds. The answer (`Commands.transcode_jobs`, `cancel_jobs`) hands the node
its new jobs and tells it to stop any it reports that is no longer its own (the video
was deleted, or the lease expired and went elsewhere).

A node running a job asks on connections of its own for the source and brings the
finished rendition back (rendition_transfers.py).

The public record gets the fields viewers and the player read: `state`, `progress`,
`failure`, `renditions` (complete ones, lowest first), `playable_original`, and `parts`:
the size, sha256 and content type of each stored part the web serves (`original`, each
rendition by height, `poster`, and `video`: what /stream plays).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING

from myyoutube import media
from myyoutube.formatting import counted
from myyoutube.master import jobs
from myyoutube.master.index import Index
from myyoutube.master.jobs import Job
from myyoutube.protocol import Heartbeat

if TYPE_CHECKING:
    from myyoutube.master.server import Master

log = logging.getLogger(__name__)

# A failure reason from a datanode is shown on the watch page: one line, this long at most.
MAX_FAILURE_CHARS = 300

# Containers and video codecs Chromium, Firefox and Safari all play as they are, with the
# 8-bit 4:2:0 pictures their decoders take (field notes: HEVC shows no picture, AVI and
# MPEG-TS fail). A video without known details is taken as playable if its container is.
BROWSER_CONTAINERS = frozenset({"video/mp4", "video/webm", "video/quicktime"})
BROWSER_VIDEO_CODECS = frozenset({"h264", "vp8", "vp9", "av1"})
BROWSER_PIXEL_FORMATS = frozenset({"yuv420p", "yuvj420p"})

# Videos stored before this release are queued while fewer jobs than this wait or run: a
# few per transcoding node, so the backlog keeps every slot busy without ever holding a
# whole library's jobs in memory.
BACKLOG_ACTIVE_JOBS = 64


def playable_original(video: dict) -> bool:
    """Whether browsers play the original as it is."""
    codec, pixels = video.get("codec"), video.get("pixel_format")
    return (
        video.get("content_type") in BROWSER_CONTAINERS
        and (codec is None or codec in BROWSER_VIDEO_CODECS)
        and (pixels is None or pixels in BROWSER_PIXEL_FORMATS)
    )


def jobs_for(video: dict, now: float) -> list[Job]:
    """The transcode jobs of a video about to be committed: one per rung of its ladder,
    none if its picture size is unknown (nothing to size the rungs from)."""
    width, height = video.get("width"), video.get("height")
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        return []
    rungs = [rung.to_dict() for rung in media.ladder(width, height, video.get("frame_rate"))]
    return jobs.new_jobs([uuid.uuid4().hex for _ in rungs], video["name"], rungs, now)


def untranscoded(index: Index) -> deque[str]:
    """The videos that never had a transcode job (stored before this release), oldest
    first: the backlog an upgraded cluster works through in the background."""
    had_jobs = index.jobs.videos_with_jobs()
    waiting = [video for name, video in index.videos.items() if name not in had_jobs]
    return deque(video["name"] for video in sorted(waiting, key=lambda v: v["uploaded_at"]))


def queue_from_backlog(index: Index, backlog: deque[str], now: float) -> int:
    """Queue the next backlog videos' jobs while fewer than BACKLOG_ACTIVE_JOBS jobs are
    waiting or running, so an old library never floods the master's memory or its
    per-heartbeat scan. Returns how many jobs were queued."""
    room = BACKLOG_ACTIVE_JOBS - len(index.jobs.active())
    new: list[Job] = []
    while backlog and len(new) < room:
        video = index.videos.get(backlog.popleft())
        new += jobs_for(video, now) if video is not None else []
    if new:
        index.jobs.add(new)
    return len(new)


def public_fields(video: dict, video_jobs: list[Job], parts: dict[str, dict]) -> dict:
    """The transcoding fields of a video's public record (see the module docstring)."""
    seen = jobs.seen(video_jobs, len(video.get("renditions", [])))
    renditions = [{k: r[k] for k in ("height", "width", "bandwidth")} for r in video.get("renditions", [])]
    return {
        "state": seen.state,
        "progress": seen.progress,
        "failure": seen.failure,
        "renditions": renditions,
        "playable_original": playable_original(video),
        "parts": parts,
    }


def part_blob(video: dict, part: str, processing: bool = False) -> str | None:
    """The blob id behind one of a video's parts: 'original', 'poster', a rendition's
    height, or 'video' (what /stream plays); None if it has none.

    'video' is the best rendition made so far; but while the video is still `processing`
    an original browsers play stays 'video' until the last rendition is in, so that a
    progressive viewer sees its bytes change once, not at every rung.
    """
    renditions = video.get("renditions", [])
    if part == "video":
        keep_original = not renditions or (processing and playable_original(video))
        return video["blob_id"] if keep_original else renditions[-1]["blob_id"]
    if part == "original":
        return video["blob_id"]
    if part == "poster":
        return video.get("poster_blob_id")
    return next((r["blob_id"] for r in renditions if str(r["height"]) == part), None)


class Transcoding:
    def __init__(self, master: Master) -> None:
        self.master = master
        self.index = master.index
        self.slots: dict[str, int] = {}  # node -> its --transcode-slots, from its heartbeats
        now = time.time()
        for job in self.index.jobs.active():
            self.index.jobs.update_in_memory(jobs.restarted(job, now, self.lease_s))
        # Videos stored before transcoding existed, queued a few at a time (see on_heartbeat).
        self.backlog = untranscoded(self.index)
        if self.backlog:
            log.info(
                "%s stored before transcoding existed will get their renditions",
                counted(len(self.backlog), "video"),
            )

    @property
    def lease_s(self) -> float:
        # A node silent this long is dead to the master; its jobs go elsewhere as well.
        return self.master.state.dead_after_s

    def processing(self, video: dict) -> bool:
        return any(
            job.state in (jobs.QUEUED, jobs.RUNNING) for job in self.index.jobs.of_video(video["name"])
        )

    def part_blob(self, video: dict, part: str) -> str | None:
        return part_blob(video, part, self.processing(video))

    def parts(self, video: dict) -> dict[str, dict]:
        """Size, sha256 and content type of each part of `video` the web may serve."""
        replicas = self.index.replicas
        processing = self.processing(video)  # once, not per part: it walks the video's jobs
        parts = {}
        for part in ["original", "video", "poster", *(str(r["height"]) for r in video.get("renditions", []))]:
            blob_id = part_blob(video, part, processing)
            replica = replicas.get(blob_id or "")
            if replica is None:
                continue
            is_original = blob_id == video["blob_id"]
            content_type = video["content_type"] if is_original else "video/mp4"
            parts[part] = {
                "size": replica.size,
                "sha256": replica.sha256,
                "content_type": "image/jpeg" if part == "poster" else content_type,
            }
        return parts

    def summary(self) -> dict:
        """For /api/status: how many jobs wait, run and failed, and the nodes' slots (done
        jobs are on disk only)."""
        counts = dict.fromkeys((jobs.QUEUED, jobs.RUNNING, jobs.FAILED), 0)
        for job in self.index.jobs.jobs.values():
            counts[job.state] += 1
        return {"jobs": counts, "slots": dict(sorted(self.slots.items()))}

    def jobs_for(self, video: dict) -> list[Job]:
        return jobs_for(video, time.time())

    def public_fields(self, video: dict) -> dict:
        return public_fields(video, self.index.jobs.of_video(video["name"]), self.parts(video))

    # --- heartbeats ---------------------------------------------------------------------

    def on_heartbeat(self, address: str, beat: Heartbeat, now: float) -> tuple[list[dict], list[str]]:
        """Apply a heartbeat's transcode report; (jobs newly leased to the node, job ids it
        must stop)."""
        self.slots[address] = max(0, beat.transcode_slots)
        store, cancels, ended = self.index.jobs, [], []
        for job_id, progress in beat.transcoding:
            job = store.jobs.get(job_id)
            if job is None or job.state != jobs.RUNNING or job.node != address:
                cancels.append(job_id)
            else:
                store.update_in_memory(jobs.renew(job, progress, now, self.lease_s))
        for job_id, reason in beat.transcode_failures:
            job = store.jobs.get(job_id)
            if job is not None and job.state == jobs.RUNNING and job.node == address:
                reason = " ".join(reason.split())[:MAX_FAILURE_CHARS] or "the transcoder failed"
                log.warning("transcode job %s of %s failed on %s: %s", job_id, job.video, address, reason)
                ended.append(jobs.failed(job, reason, now, self.master.state.heartbeat_s))
        reported = {job_id for job_id, _ in beat.transcoding} | {
            job_id for job_id, _ in beat.transcode_failures
        }
        for job in jobs.unreported(store.active(), address, reported):
            log.warning("transcode job %s of %s: %s no longer runs it", job.job_id, job.video, address)
            ended.append(
                jobs.lost(job, "The datanode transcoding it restarted.", now, self.master.state.heartbeat_s)
            )
        store.save(ended)
        self.expire(now)
        if self.backlog:
            queue_from_backlog(self.index, self.backlog, now)
        return [self._assignment(job) for job in self._lease(address, now)], cancels

    def expire(self, now: float) -> None:
        """Put back the jobs whose node stopped reporting them."""
        lost = jobs.expired(self.index.jobs.active(), now)
        for job in lost:
            log.warning("transcode job %s of %s: %s stopped reporting it", job.job_id, job.video, job.node)
        reason = "The datanode transcoding it stopped answering."
        self.index.jobs.save([jobs.lost(job, reason, now, self.master.state.heartbeat_s) for job in lost])

    def _lease(self, address: str, now: float) -> list[Job]:
        active = self.index.jobs.active()
        running_here = sum(1 for job in active if job.state == jobs.RUNNING and job.node == address)
        state = self.master.state
        transcoders = frozenset(node for node, slots in self.slots.items() if slots and state.live(node, now))
        holders = {}
        for job in active:
            video = self.index.videos.get(job.video)
            replica = self.index.replicas.get(video["blob_id"]) if video else None
            holders[job.video] = frozenset(replica.nodes) if replica else frozenset()
        chosen = jobs.choose(
            active, address, self.slots[address] - running_here, holders, transcoders, now, state.heartbeat_s
        )
        leased = [jobs.lease(job, address, now, self.lease_s) for job in chosen]
        self.index.jobs.save(leased)
        for job in leased:
            log.info(
                "transcode job %s (%s of %s) leased to %s", job.job_id, job.rung["name"], job.video, address
            )
        return leased

    def _assignment(self, job: Job) -> dict:
        video = self.index.videos[job.video]
        replica = self.index.replicas[video["blob_id"]]
        return {
            "job_id": job.job_id,
            "video": job.video,
            "source_blob": video["blob_id"],
            "source_size": replica.size,
            "rung": job.rung,
        }
