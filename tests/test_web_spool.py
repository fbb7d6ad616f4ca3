"""Tests for myyoutube.web.spool: upload spool folders, on a real disk and without a
cluster."""

from __future__ import annotations

import os
import time

from myyoutube.web import spool


def left_by_a_killed_front_end(spool_dir, name: str, age_s: float):
    """A spool folder with its upload file, last written `age_s` ago."""
    folder = spool_dir / f"{spool.SPOOL_PREFIX}{name}"
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
    stale = left_by_a_killed_front_end(tmp_path, "killed", spool.SPOOL_STALE_AFTER_S + 60)
    in_progress = left_by_a_killed_front_end(tmp_path, "running", 5)
    async with spool.spool_folder(tmp_path) as folder:
        assert folder.name.startswith(spool.SPOOL_PREFIX)
        assert not stale.exists() and in_progress.exists()
