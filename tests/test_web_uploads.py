"""Tests for myyoutube.web.uploads' spool folders, on a real disk and without a cluster
(uploads through a cluster are in test_web.py)."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from myyoutube.bulk_threads import BULK_NICE
from myyoutube.web import uploads


def left_by_a_killed_front_end(spool_dir, name: str, age_s: float):
    """A spool folder with its upload file, last written `age_s` ago."""
    folder = spool_dir / f"{uploads.SPOOL_PREFIX}{name}"
    folder.mkdir()
    (folder / "upload").write_bytes(b"the first bytes of a video")
    then = time.time() - age_s
    for path in (folder / "upload", folder):
        os.utime(path, (then, then))
    return folder


async def test_spool_folders_a_killed_front_end_left_are_removed_by_the_next_upload(tmp_path):
    """A front end killed mid-upload (OOM, SIGKILL) cannot remove its spool folder, which
    holds up to --max-upload-bytes; the next upload on any front end sharing the spool
    directory removes it once it is stale, and leaves alone a folder an upload in
    progress is writing. Before, nothing ever removed them."""
    stale = left_by_a_killed_front_end(tmp_path, "killed", uploads.SPOOL_STALE_AFTER_S + 60)
    in_progress = left_by_a_killed_front_end(tmp_path, "running", 5)
    async with uploads.spool_folder(tmp_path) as folder:
        assert folder.name.startswith(uploads.SPOOL_PREFIX)
        assert not stale.exists() and in_progress.exists()


@pytest.mark.skipif(sys.platform != "linux", reason="a nice value per thread is Linux's")
async def test_a_new_videos_probe_and_poster_run_below_the_viewers_priority():
    """An upload's probe and poster (0.6 CPU-s for a 1080p poster) run in threads niced
    below the event loop, which serves the viewers and keeps its own priority."""
    loop_nice = os.getpriority(os.PRIO_PROCESS, 0)

    def media_step() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    assert await uploads._media_work(media_step) == min(loop_nice + BULK_NICE, 19)
    assert os.getpriority(os.PRIO_PROCESS, 0) == loop_nice


async def test_a_media_step_past_its_bound_refuses_the_upload_with_retry_after(monkeypatch):
    """A probe or poster that runs past MEDIA_STEP_TIMEOUT_S (a decoder looping on a
    crafted file, or a machine far too busy) refuses the upload with a 503 that says so
    and when to try again, instead of holding it, and its slot, for as long as it runs."""
    monkeypatch.setattr(uploads, "MEDIA_STEP_TIMEOUT_S", 0.1)
    with pytest.raises(uploads.UploadRefused) as refused:
        await uploads._media_work(time.sleep, 0.5)
    assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "60"}
    assert str(refused.value).startswith("Reading this video took this server over 10 minutes")


def test_only_a_refusal_to_retry_later_keeps_a_resumable_upload():
    """A resumable upload refused for the file itself (415 not a video, 422 cut short)
    is ended; one refused because this server could not read it in time (503) keeps its
    session, every byte stored, so the client's retry (HEAD) commits it instead of
    finding it gone and sending the whole file again."""
    assert uploads.UploadRefused(503, uploads.MEDIA_TIMED_OUT, **{"Retry-After": "60"}).retryable
    assert not uploads.UploadRefused(415, uploads.NOT_A_VIDEO).retryable
    assert not uploads.UploadRefused(422, "cut short").retryable
