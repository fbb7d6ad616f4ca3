"""Spool folders: where a web front end keeps an upload's bytes on its own disk to probe them.

Theory of operation
-------------------
Each upload (plain, or a resumable one at its end) gets a fresh folder of its own under
--spool-dir (the system's temporary directory by default), holding its file while the
file is probed and given a poster (uploads.commit), and removed with it at the end. A
front end killed mid-upload cannot remove its folder, which holds up to
--max-upload-bytes: the next upload on any front end sharing the spool directory removes
folders left untouched for SPOOL_STALE_AFTER_S. Creating and removing run in worker
threads, off the event loop that serves the viewers.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from myyoutube.web.common import on_local_disk
from myyoutube.web.local_copy import STALE_AFTER_S

# Spool folders carry this prefix, so that one left by a front end killed mid-upload can be
# told apart in a spool directory others share (the system's temporary one by default).
SPOOL_PREFIX = "myyoutube-upload-"

# A spool folder untouched this long was left by a front end killed mid-upload: a live one
# is written as the bytes arrive and removed minutes after the last (probe and commit).
# Each holds up to --max-upload-bytes, and nothing else would ever remove it. As long as
# a resumable upload's own copy waits (local_copy.STALE_AFTER_S).
SPOOL_STALE_AFTER_S = STALE_AFTER_S


@asynccontextmanager
async def spool_folder(spool_dir: Path | None) -> AsyncIterator[Path]:
    """A fresh folder for one upload's spool file, removed with it at the end. Both are
    done by a worker thread: removing a file of 1 GiB takes ~0.2 s here (its blocks are
    freed), which on the event loop would stall every viewer of this front end. The
    removal is not waited for: the upload's answer and its upload slot do not depend on
    it (a cut-off upload's slot was held a thread hop longer, and the next upload refused).
    The folders a front end killed mid-upload left are removed on the way."""
    folder = await on_local_disk(asyncio.to_thread(_fresh_spool_folder, spool_dir))
    try:
        yield folder
    finally:
        # ignore_errors: nothing can come back from this thread to an unread future.
        asyncio.get_running_loop().run_in_executor(
            None, functools.partial(shutil.rmtree, folder, ignore_errors=True)
        )


def _fresh_spool_folder(spool_dir: Path | None) -> Path:
    """In a worker thread: a new spool folder, once those (with their upload file) that a
    front end killed mid-upload left, untouched for SPOOL_STALE_AFTER_S, are removed."""
    now = time.time()
    for folder in Path(spool_dir or tempfile.gettempdir()).glob(f"{SPOOL_PREFIX}*"):
        try:
            written_at = max(path.stat().st_mtime for path in (folder, *folder.iterdir()))
        except OSError:
            continue  # removed by its own upload meanwhile
        if now - written_at > SPOOL_STALE_AFTER_S:
            shutil.rmtree(folder, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=SPOOL_PREFIX, dir=spool_dir))
