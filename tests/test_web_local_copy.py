"""Tests for myyoutube.web.local_copy: a web process's copy of an upload, on a real tmp disk."""

from __future__ import annotations

import os
import resource
import signal
import time

import pytest

from myyoutube.web.local_copy import PREFIX, STALE_AFTER_S, LocalCopy

UPLOAD = "0123456789abcdef0123456789abcdef"


async def append(copy: LocalCopy, offset: int, data: bytes, confirmed: int) -> None:
    await copy.start(offset)
    await copy.write(data)
    await copy.end(confirmed)


async def test_a_copy_of_every_piece_is_taken_whole(tmp_path):
    """Appends seen in order make a copy of exactly the confirmed bytes, bytes of an
    append the cluster did not confirm cut off; the end takes it instead of a read-back."""
    copy = LocalCopy(tmp_path, UPLOAD)
    await append(copy, 0, b"a" * 100, 100)
    await append(copy, 100, b"b" * 50, 120)  # only 20 of these were confirmed
    await append(copy, 120, b"c" * 30, 150)
    target = tmp_path / "upload"
    assert await copy.take(150, target)
    assert target.read_bytes() == b"a" * 100 + b"b" * 20 + b"c" * 30
    assert not copy.path.exists()


async def test_a_first_append_that_confirmed_nothing_leaves_no_file(tmp_path):
    """A first append refused before any byte was confirmed (413 past the upload's length)
    left an empty copy behind, for a day, or for good when the refusal ended the upload
    (a creation's body); the copy is now removed, and the next append makes it again."""
    copy = LocalCopy(tmp_path, UPLOAD)
    await append(copy, 0, b"a" * 100, 0)
    assert list(tmp_path.iterdir()) == []
    await append(copy, 0, b"a" * 100, 100)
    assert copy.path.read_bytes() == b"a" * 100


async def test_a_copy_that_missed_a_piece_is_dropped(tmp_path):
    """A piece went through another web process: this copy no longer ends at the offset,
    so it is dropped and the end reads the upload back."""
    copy = LocalCopy(tmp_path, UPLOAD)
    await append(copy, 0, b"a" * 100, 100)
    await append(copy, 300, b"d" * 50, 350)
    assert not await copy.take(350, tmp_path / "upload")
    assert not copy.path.exists()


async def test_stale_copies_are_removed_when_an_upload_starts(tmp_path):
    stale = tmp_path / f"{PREFIX}{'f' * 32}"
    stale.write_bytes(b"old")
    old = time.time() - STALE_AFTER_S - 60
    os.utime(stale, (old, old))
    await LocalCopy(tmp_path, UPLOAD).start(0)
    assert not stale.exists()


@pytest.mark.parametrize(
    ("chunk_bytes", "size", "limit"),
    [
        (1024 * 1024, 5 * 1024 * 1024, 1024 * 1024 + 5),  # a batch's write fails
        (1000, 5 * 1024 * 1024, 1024 * 1024 + 5),  # ... and so does the close's flush
        (1000, 10_000, 9000),  # every batch is written: only the end's flush fails
    ],
)
async def test_a_copy_the_disk_refuses_is_dropped_and_the_upload_goes_on(tmp_path, chunk_bytes, size, limit):
    """A write of the copy that the disk refuses (here EFBIG past a file size limit, as a
    full disk's ENOSPC would) drops the copy, file and all, without failing the append:
    its end reads the bytes back instead. The error comes from a batch written in a
    worker thread, after the append's write() calls returned. With small chunks the
    file's own buffer still holds bytes when it is dropped, so its close fails too: the
    file used to stay on the full disk for a day."""
    copy = LocalCopy(tmp_path, UPLOAD)
    was = resource.getrlimit(resource.RLIMIT_FSIZE)
    ignored = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, was[1]))
    try:
        await copy.start(0)
        for _ in range(size // chunk_bytes):
            await copy.write(b"v" * chunk_bytes)
        await copy.end(size // chunk_bytes * chunk_bytes)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, was)
        signal.signal(signal.SIGXFSZ, ignored)
    assert not copy.path.exists()
    assert not await copy.take(size, tmp_path / "upload")
