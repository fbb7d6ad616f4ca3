"""Tests for myyoutube.datanode.sidecars through the store: written with a blob or later,
the highest version kept, removed with the blob, listed in bounded batches (real files)."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from harness import fill_disk, small_disk
from myyoutube.datanode import sidecars
from myyoutube.datanode.store import BlobStore, StoreError

BLOB = "0123456789abcdef0123456789abcdef"


def sidecar(version: int, title: str = "t", blob_id: str = BLOB) -> dict:
    return {"blob_id": blob_id, "kind": "video", "version": version, "record": {"title": title}}


async def put(store: BlobStore, blob_id: str, meta: dict | None) -> None:
    writer = store.open_writer(blob_id, meta)
    await writer.write(b"bytes")
    await writer.finish()


async def test_sidecar_published_with_the_blob_and_only_newer_versions_replace_it(tmp_path):
    store = BlobStore(tmp_path, None)
    await put(store, BLOB, sidecar(1, "first"))
    assert sidecars.read(tmp_path, BLOB)["record"]["title"] == "first"
    assert await store.update_sidecars([sidecar(3, "third")]) == 1
    assert await store.update_sidecars([sidecar(2, "late")]) == 0  # an older one arriving late
    assert sidecars.read(tmp_path, BLOB)["record"]["title"] == "third"
    await store.delete(BLOB)
    assert not (tmp_path / f"{BLOB}.meta").exists()


async def test_a_repeated_sidecar_is_not_written_again(tmp_path):
    """The same sidecar twice (pushed at commit, then in a heartbeat answer) is written
    once: the repeat costs no write and no fsync. The same version with other bytes (a
    master rebuilt from a snapshot) still replaces it."""
    store = BlobStore(tmp_path, None)
    await put(store, BLOB, None)
    assert await store.update_sidecars([sidecar(2, "pushed")]) == 1
    stored = (tmp_path / f"{BLOB}.meta").stat()
    assert await store.update_sidecars([sidecar(2, "pushed")]) == 0
    again = (tmp_path / f"{BLOB}.meta").stat()
    assert (again.st_ino, again.st_mtime_ns) == (stored.st_ino, stored.st_mtime_ns)
    assert await store.update_sidecars([sidecar(2, "other")]) == 1
    assert sidecars.read(tmp_path, BLOB)["record"]["title"] == "other"


async def test_sidecars_pushed_at_once_are_all_written_and_the_newest_kept(tmp_path, caplog):
    """The same blobs' sidecars arriving at the same moment (pushed at commit while a
    heartbeat answer brings them too, as under chaos.py) are all stored, the highest
    version of each kept: batches written side by side in worker threads once shared
    one `.meta.part` per blob, so one's rename found the other's file gone and the rest
    of its batch was lost ("cannot write sidecars ... No such file or directory")."""
    store = BlobStore(tmp_path, None)
    blob_ids = [f"{number:032x}" for number in range(8)]
    for blob_id in blob_ids:
        await put(store, blob_id, None)
    batches = [[sidecar(version, f"v{version}", blob_id) for blob_id in blob_ids] for version in range(1, 13)]
    await asyncio.gather(*(store.update_sidecars(batch) for batch in batches))
    assert "cannot write sidecars" not in caplog.text
    assert [sidecars.read(tmp_path, blob_id)["version"] for blob_id in blob_ids] == [12] * len(blob_ids)


async def test_sidecars_of_blobs_not_held_or_malformed_are_ignored(tmp_path):
    """A sidecar for a blob this node does not hold (deleted meanwhile), naming another
    blob, without a version or too large is not stored; a bad one at write is refused."""
    store = BlobStore(tmp_path, None)
    await put(store, BLOB, None)
    huge = sidecar(5, "x" * sidecars.MAX_SIDECAR_BYTES)
    assert await store.update_sidecars([sidecar(1, blob_id="f" * 32), {"blob_id": BLOB}, huge]) == 0
    assert sidecars.read(tmp_path, BLOB) is None
    with pytest.raises(StoreError, match="names blob"):
        store.open_writer("f" * 32, sidecar(1))


async def test_listing_comes_in_bounded_batches_and_counts_blobs_without(tmp_path, monkeypatch):
    monkeypatch.setattr(sidecars, "SIDECARS_PER_BATCH", 3)
    store = BlobStore(tmp_path, None)
    ids = [f"{i:032x}" for i in range(8)]
    for number, blob_id in enumerate(ids):
        await put(store, blob_id, sidecar(1, blob_id=blob_id) if number % 4 else None)
    batches = list(store.sidecar_batches())
    assert [len(found) for found, _ in batches] == [3, 3]
    assert sum(without for _, without in batches) == 2
    listed = [entry["blob_id"] for found, _ in batches for entry in found]
    assert sorted(listed) == sorted(b for n, b in enumerate(ids) if n % 4)
    assert all(len(json.dumps(found)) < sidecars.SIDECAR_BATCH_BYTES for found, _ in batches)


async def test_a_sidecar_the_full_disk_refused_leaves_no_part_file(tmp_path):
    """A sidecar update the disk refuses (full) is dropped, as the store says, and leaves
    no half-written file behind. Before, a `.meta.part` stayed beside the blob until the
    node restarted: one per blob whose sidecar came while the disk was full."""
    root = tmp_path / "small-disk"
    with small_disk(root, "1m"):
        store = BlobStore(root, None)
        await put(store, BLOB, sidecar(1, "first"))
        fill_disk(root / "filler")
        assert await store.update_sidecars([sidecar(2, "second " * 1000)]) == 0
        assert sorted(path.name for path in root.iterdir()) == sorted(
            [f"{BLOB}.blob", f"{BLOB}.crc", f"{BLOB}.meta", "filler"]
        )


async def test_a_blob_whose_sidecar_the_full_disk_refused_leaves_no_part_file(tmp_path):
    """A write whose blob and checksums fit on the disk but not its sidecar fails and
    leaves nothing: the sidecar's part file went on living beside the removed blob's."""
    root = tmp_path / "small-disk"
    with small_disk(root, "1m"):
        store = BlobStore(root, None)
        writer = store.open_writer(BLOB, sidecar(1, "x" * 5000))
        await writer.write(b"bytes")
        fill_disk(root / "filler")
        os.truncate(root / "filler", (root / "filler").stat().st_size - 2 * 4096)  # bytes, checksums
        with pytest.raises(OSError):
            await writer.finish()
        await writer.abort()
        assert [path.name for path in root.iterdir()] == ["filler"]
