"""Tests for myyoutube.web.uploads without a cluster: where and how long a new video's
probe and poster run, and which refusals end a resumable upload (uploads through a
cluster are in test_web.py)."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from myyoutube.bulk_threads import BULK_NICE
from myyoutube.web import uploads


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
