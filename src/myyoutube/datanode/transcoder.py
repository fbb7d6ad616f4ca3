"""A datanode's transcode jobs: run each in a child process, report, store the rendition.

Theory of operation
-------------------
The master leases jobs to this node in its heartbeat answers (`Commands.transcode_jobs`),
never more than the node's `--transcode-slots`. For each job a task:

1. finds the source: this node's own replica when it holds one (read in place, no copy,
   once its CRC32Cs are checked: the worker reads the file directly, where a rotten
   block would pass unseen), else a copy fetched through the master (`FetchSource`)
   into the work folder, its sha256 checked;
2. runs `transcode_worker` as a child process (FFmpeg's memory and any decoder crash stay
   out of this event loop), reading its progress lines;
3. sends the finished rendition and its fragment index to the master (`StoreRendition`),
   which replicates it like any blob and ends the job.

Every heartbeat carries the slots, each running job's progress (which renews its lease)
and the jobs that failed since the last one, with the reason (`report`). A job the master
cancels (its video deleted, its lease given to another node) has its child killed by pid
and its files removed. The work folder is emptied at start-up: what a killed node left
there is garbage; it exists only while a job runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import shutil
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiofiles
import aiofiles.os

from myyoutube import protocol
from myyoutube.datanode.store import BlobStore, CorruptBlob, StoreError
from myyoutube.protocol import CHUNK_BYTES, Chunk, End, FetchSource, Ok, StoreRendition
from myyoutube.stream import FrameStream, RequestFailed

log = logging.getLogger(__name__)

# The master may take a while to place a rendition's replicas or fan out its last chunk.
MASTER_ANSWER_TIMEOUT_S = 120.0

# A worker's stdout line is a progress figure or a fragment index (a few dozen bytes per
# 2 s segment: 100 KB for two hours); longer is not our worker talking.
MAX_WORKER_LINE_BYTES = 8 * 1024 * 1024

# A worker that prints nothing for this long is killed and its job failed: it says where
# it is at least every transcode_worker.WORKER_ALIVE_EVERY_S while packets pass, and no
# single packet (one 8192x8192 frame) or the final flush takes minutes. Without this a
# worker stuck in a decoder (a crafted file) or stopped would hold its slot, and its job
# renewed by every heartbeat, for ever.
WORKER_STALL_TIMEOUT_S = 300.0

# Most failures kept between two heartbeats; more (a node failing everything) are dropped,
# and those jobs come back to the master when their leases expire.
MAX_PENDING_FAILURES = 64

# Job ids are 32 lowercase hex digits from the master (uuid4); they name work files, so
# anything else could be a path.
_JOB_ID = re.compile(r"[0-9a-f]{32}")

ConnectMaster = Callable[[], Awaitable[FrameStream]]


class JobFailed(Exception):
    """The job cannot be done here; the sentence goes to the master."""


@dataclass
class _Run:
    job_id: str
    task: asyncio.Task | None = None
    process: asyncio.subprocess.Process | None = None
    progress: float = 0.0
    files: list[Path] = field(default_factory=list)
    cancelled: bool = False  # its worker is being killed: it no longer holds a slot


class Transcoder:
    def __init__(
        self,
        slots: int,
        store: BlobStore,
        work_dir: Path,
        connect_master: ConnectMaster,
        stall_timeout_s: float = WORKER_STALL_TIMEOUT_S,
        on_corrupt: Callable[[str], None] | None = None,
    ) -> None:
        self.slots = slots
        self.stall_timeout_s = stall_timeout_s
        self.on_corrupt = on_corrupt  # a rotten replica found: reported for repair
        self.store = store
        self.work_dir = work_dir
        self.connect_master = connect_master
        self.running: dict[str, _Run] = {}
        self._failures: list[tuple[str, str]] = []
        shutil.rmtree(work_dir, ignore_errors=True)

    def report(self) -> tuple[int, list[tuple[str, float]], list[tuple[str, str]]]:
        """(slots, running jobs with progress, failures since the last report)."""
        failures, self._failures = self._failures, []
        running = [(run.job_id, run.progress) for run in self.running.values() if not run.cancelled]
        return self.slots, running, failures

    def obey(self, assignments: list[dict], cancels: list[str]) -> None:
        for cancelled in cancels:
            self.cancel(cancelled)
        for assignment in assignments:
            job_id = assignment.get("job_id")
            if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id) or job_id in self.running:
                log.warning("ignoring a transcode job with a bad or duplicate id: %r", job_id)
                continue
            # A job cancelled in this same answer (its video deleted) frees its slot now,
            # as the master counted it, though its task is still ending: refusing the job
            # given in its place would cost that job an attempt.
            if sum(not run.cancelled for run in self.running.values()) >= self.slots:
                self._failed(job_id, "The datanode has no free transcode slot.")
                continue
            run = _Run(job_id)
            self.work_dir.mkdir(exist_ok=True)
            self.running[job_id] = run
            run.task = asyncio.create_task(self._run(run, assignment))

    def cancel(self, job_id: str) -> None:
        run = self.running.get(job_id)
        if run is not None and run.task is not None:
            log.info("transcode job %s cancelled by the master", job_id)
            run.cancelled = True
            run.task.cancel()

    def _failed(self, job_id: str, reason: str) -> None:
        if len(self._failures) < MAX_PENDING_FAILURES:
            self._failures.append((job_id, reason))

    async def _run(self, run: _Run, assignment: dict) -> None:
        try:
            source = await self._source(run, assignment)
            target = self.work_dir / f"{run.job_id}.mp4"
            run.files.append(target)
            fragment_index = await self._transcode(run, source, assignment["rung"], target)
            await self._store(run.job_id, target, fragment_index)
            log.info("transcode job %s (%s) done", run.job_id, assignment["rung"].get("name"))
        except JobFailed as exc:
            log.warning("transcode job %s failed: %s", run.job_id, exc)
            self._failed(run.job_id, str(exc))
        except (
            OSError,
            TimeoutError,
            RequestFailed,
            protocol.ProtocolError,
            KeyError,
            TypeError,
            ValueError,
        ) as exc:
            log.warning("transcode job %s failed: %s: %s", run.job_id, type(exc).__name__, exc)
            self._failed(run.job_id, f"The datanode could not finish the job ({type(exc).__name__}).")
        finally:
            if run.process is not None and run.process.returncode is None:
                run.process.kill()  # by its pid: only our own child
                await run.process.wait()
            for path in run.files:
                path.unlink(missing_ok=True)
            del self.running[run.job_id]
            if not self.running:
                try:
                    await aiofiles.os.rmdir(self.work_dir)  # only blobs in the node's folder when idle
                except OSError:
                    pass

    async def _source(self, run: _Run, assignment: dict) -> Path:
        """The source's path: our own replica, else a copy fetched through the master."""
        local = self.store.local_path(assignment["source_blob"])
        if local is not None and await self._intact(assignment["source_blob"]):
            return local
        copy = self.work_dir / f"{run.job_id}.source"
        run.files.append(copy)
        connection = await self.connect_master()
        try:
            await connection.write_frame(FetchSource(job_id=run.job_id))
            await connection.read_expected(Ok, timeout=MASTER_ANSWER_TIMEOUT_S)
            digest = hashlib.sha256()
            async with aiofiles.open(copy, "wb") as file:
                while isinstance(
                    message := await connection.read_expected(Chunk, End, timeout=MASTER_ANSWER_TIMEOUT_S),
                    Chunk,
                ):
                    digest.update(message.data)
                    await file.write(message.data)
            if message.sha256 != digest.hexdigest():
                raise JobFailed("The source arrived damaged (sha256 differs).")
        finally:
            await connection.close()
        return copy

    async def _intact(self, blob_id: str) -> bool:
        """Whether our replica passes its CRC32C checks (read through, bounded pieces);
        a rotten one is reported (the master re-makes it) and the copy fetched through
        the master instead."""
        try:
            async for _ in self.store.read(blob_id, 0, self.store.size(blob_id), keep_open=False):
                pass
        except CorruptBlob as exc:
            log.error("transcoding from another replica: %s", exc)
            if self.on_corrupt is not None:
                self.on_corrupt(blob_id)
            return False
        except StoreError:
            return False  # deleted meanwhile: the master's copy, or its refusal, decides
        return True

    async def _transcode(self, run: _Run, source: Path, rung: dict, target: Path) -> str:
        """Run the worker to completion; the fragment index it reports."""
        run.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "myyoutube.datanode.transcode_worker",
            str(source),
            json.dumps(rung),
            str(target),
            stdout=asyncio.subprocess.PIPE,
            limit=MAX_WORKER_LINE_BYTES,
        )
        assert run.process.stdout is not None  # asked for with PIPE
        result = ""
        while line := (await self._worker_line(run.process.stdout)).decode(errors="replace").strip():
            word, _, rest = line.partition(" ")
            if word == "progress":
                run.progress = float(rest)
            elif word in ("done", "failed"):
                result = line
        status = await run.process.wait()
        word, _, rest = result.partition(" ")
        if word == "failed":
            raise JobFailed(rest)
        if word != "done" or status != 0:
            raise JobFailed(f"The transcoder stopped unexpectedly (exit status {status}).")
        return rest

    async def _worker_line(self, stdout: asyncio.StreamReader) -> bytes:
        try:
            return await asyncio.wait_for(stdout.readline(), self.stall_timeout_s)
        except TimeoutError:
            raise JobFailed(
                f"The transcoder made no progress for {self.stall_timeout_s:g} s and was stopped."
            ) from None

    async def _store(self, job_id: str, target: Path, fragment_index: str) -> None:
        size = (await aiofiles.os.stat(target)).st_size
        connection = await self.connect_master()
        try:
            await connection.write_frame(
                StoreRendition(job_id=job_id, size=size, fragment_index=fragment_index)
            )
            await connection.read_expected(Ok, timeout=MASTER_ANSWER_TIMEOUT_S)
            digest = hashlib.sha256()
            async with aiofiles.open(target, "rb") as file:
                while data := await file.read(CHUNK_BYTES):
                    digest.update(data)
                    await connection.write_chunk(data, timeout=MASTER_ANSWER_TIMEOUT_S)
            await connection.write_frame(End(size=size, sha256=digest.hexdigest()))
            await connection.read_expected(Ok, timeout=MASTER_ANSWER_TIMEOUT_S)
        finally:
            await connection.close()
