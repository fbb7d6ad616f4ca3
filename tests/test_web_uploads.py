"""Tests for myyoutube.web.uploads without a cluster: which refusals end a resumable
upload (uploads through a cluster are in test_web.py; where and how long a new video's
probe and poster run, in test_media_processes.py)."""

from __future__ import annotations

from myyoutube.web import uploads


def test_only_a_refusal_to_retry_later_keeps_a_resumable_upload():
    """A resumable upload refused for the file itself (415 not a video, 422 cut short)
    is ended; one refused because this server could not read it in time (503) keeps its
    session, every byte stored, so the client's retry (HEAD) commits it instead of
    finding it gone and sending the whole file again."""
    assert uploads.UploadRefused(503, uploads.MEDIA_TIMED_OUT, **{"Retry-After": "60"}).retryable
    assert not uploads.UploadRefused(415, uploads.NOT_A_VIDEO).retryable
    assert not uploads.UploadRefused(422, "cut short").retryable
