"""Blob files on a datanode's disk, each block checksummed with CRC32C.

Theory of operation
-------------------
A blob is the bytes of one video (or poster), named by the id the master assigned, never
by a user's file name. It lives in two files in the node's folder::

    {blob_id}.blob   the bytes
    {blob_id}.crc    one big-endian u32 CRC32C per BLOCK_BYTES block of the bytes
    {blob_id}.meta   what the blob is, as the master described it (sidecars.py), if known

A blob is written to `.part` files first and published whole by `BlobWriter.finish()`
(blob_writer.py), so after a crash a `.blob` file is always complete and a `.part` is
always garbage (removed at start-up).

Reads are served by whole blocks: each block is read, its CRC compared with the stored
one, and only the requested slice handed on. A mismatch raises `CorruptBlob` rather than
letting a rotten byte reach a viewer; the master then reads from another replica.

The store knows what it holds without looking at the disk each time: every blob
published or deleted here is recorded as it happens and handed to `on_change`, which
feeds the heartbeats' block-report deltas. `rescan()` reads the folder again as a safety
net (a replica deleted by hand, a disk gone) and hands on the differences the same way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiofiles
import aiofiles.os

from myyoutube.datanode import sidecars
from myyoutube.datanode.blob_writer import BLOCK_BYTES, BlobWriter, block_matches, fsync_dir
from myyoutube.datanode.read_handles import ReadHandle, ReadHandles, read_from_disk
from myyoutube.datanode.writeback import drop_cached

# Blocking file calls (writes, fsyncs) run in a worker thread so the event loop keeps
# serving other streams while the disk works.
_in_thread = asyncio.to_thread

# Locks that sidecar writes of different blobs rarely share (see BlobStore.__init__): far
# more than the worker threads that could write at once.
SIDECAR_LOCK_STRIPES = 64

log = logging.getLogger(__name__)

# Blob ids are 32 lowercase hex digits from the master; anything else could be a path.
_BLOB_ID = re.compile(r"[0-9a-f]{32}\Z")


class StoreError(Exception):
    """A storage request cannot be served. `code` is sent to the master as the reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class CorruptBlob(StoreError):
    def __init__(self, blob_id: str, block: int) -> None:
        super().__init__("corrupt", f"blob {blob_id} block {block} fails its CRC32C check")
        self.blob_id = blob_id


def check_blob_id(blob_id: str) -> str:
    if not _BLOB_ID.match(blob_id):
        raise StoreError("bad_request", f"malformed blob id {blob_id[:40]!r}")
    return blob_id


class BlobStore:
    """The blobs in one folder, with a capacity this node promises not to exceed."""

    def __init__(self, root: Path, capacity_bytes: int | None) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        for leftover in root.glob("*.part"):
            leftover.unlink()  # An interrupted write; the master never committed it.
        self._sizes: dict[str, int] = {}
        self._stored_bytes = 0  # the sum of _sizes, kept as it changes: read every heartbeat
        self._reserved_bytes = 0  # bytes promised to writes in progress
        self._capacity_bytes = capacity_bytes
        self._touched: set[str] | None = None  # blobs changed while a rescan reads the folder
        self._read_handles = ReadHandles(BLOCK_BYTES)
        # Told of every blob added (its size) or removed (None), as it happens.
        self.on_change: Callable[[str, int | None], None] = lambda blob_id, size: None
        # Told of every blob this node wrote itself and published (a blob found on the disk
        # is not): the scrubber, since such a blob was checksummed as it was written.
        self.on_written: Callable[[str], None] = lambda blob_id: None
        # One blob's sidecar is written by one thread at a time. Two at once (pushed at
        # commit while a heartbeat answer brings the same one) shared its `.meta.part`, so
        # one's rename found the other's file gone and the rest of its batch was lost; and
        # each compares versions with the file before writing, which only holds one at a
        # time. Striped, not one lock: a commit's push must not wait behind a heartbeat's
        # batch of SIDECARS_PER_COMMANDS fsyncs of other blobs.
        self._sidecar_locks = [threading.Lock() for _ in range(SIDECAR_LOCK_STRIPES)]
        self.rescan()

    def _path(self, blob_id: str, suffix: str) -> Path:
        return self.root / f"{check_blob_id(blob_id)}{suffix}"

    @property
    def used_bytes(self) -> int:
        return self._stored_bytes + self._reserved_bytes

    @property
    def capacity_bytes(self) -> int:
        """The configured capacity, or what this disk could hold beside what we store."""
        if self._capacity_bytes is not None:
            return self._capacity_bytes
        try:
            free = shutil.disk_usage(self.root).free
        except OSError:
            free = 0  # the folder is gone: no room for anything until an operator acts
        # What writes in progress reserved is mostly on the disk already, gone from `free`:
        # counting it only as used (used_bytes) would refuse a write halfway to full. The
        # part of it still in flight to the disk is at most a batch per write, which an
        # ENOSPC from the disk then refuses cleanly.
        return self._stored_bytes + self._reserved_bytes + free

    def blobs(self) -> dict[str, int]:
        """Every complete blob: id -> size in bytes."""
        return dict(self._sizes)

    def holds(self, blob_id: str) -> bool:
        """Is this complete blob here (from memory, no look at the disk)?"""
        return blob_id in self._sizes

    def rescan(self) -> dict[str, int]:
        """Look at the disk again: what is really there is what we report. Returns it.

        A replica deleted by hand, or a folder that vanished (an unmounted disk), must show
        up in a block report so the master re-replicates; a vanished folder is not
        re-created, since writing to the disk underneath would only hide the failure.
        """
        self._apply_scan(self._scan(), touched=set())
        return dict(self._sizes)

    async def rescan_in_thread(self) -> None:
        """rescan(), reading the folder in a worker thread so a large one does not stall
        the event loop. A blob published or deleted meanwhile keeps what its writer or
        deleter recorded: the scan may have read the folder on either side of the change."""
        self._touched = set()
        try:
            seen = await _in_thread(self._scan)
        finally:
            touched, self._touched = self._touched, None
        self._apply_scan(seen, touched)

    def _scan(self) -> dict[str, int]:
        sizes = {}
        try:
            with os.scandir(self.root) as entries:
                for entry in entries:
                    stem, _, suffix = entry.name.partition(".")
                    if suffix == "blob" and _BLOB_ID.match(stem):
                        try:
                            sizes[stem] = entry.stat().st_size
                        except FileNotFoundError:
                            # Deleted between the listing and this stat (a delete runs
                            # beside the scan): gone, like any blob not listed. Caught by
                            # the handler below, it made the whole scan "none held".
                            continue
        except OSError as exc:
            if self._sizes:
                log.error("cannot read %s (%s): reporting no replicas held", self.root, exc)
            sizes = {}
        return sizes

    def _apply_scan(self, seen: dict[str, int], touched: set[str]) -> None:
        for blob_id in self._sizes.keys() - seen.keys() - touched:
            self._record(blob_id, None)
        for blob_id, size in seen.items() - self._sizes.items():
            if blob_id not in touched:
                self._record(blob_id, size)

    def _record(self, blob_id: str, size: int | None) -> None:
        """The one place where what we hold changes: `size` bytes held now, or None."""
        self._read_handles.drop(blob_id)  # even a same-size change may be a new file
        before = self._sizes.get(blob_id)
        if before == size:
            return
        if size is None:
            del self._sizes[blob_id]
        else:
            self._sizes[blob_id] = size
        self._stored_bytes += (size or 0) - (before or 0)
        if self._touched is not None:
            self._touched.add(blob_id)
        self.on_change(blob_id, size)

    def size(self, blob_id: str) -> int:
        size = self._sizes.get(check_blob_id(blob_id))
        if size is None:
            raise StoreError("not_found", f"no blob {blob_id} on this node")
        return size

    def reserve(self, nbytes: int) -> None:
        """Claim room for `nbytes` more of a write in progress, or refuse with no_space."""
        if self.used_bytes + nbytes > self.capacity_bytes:
            raise StoreError("no_space", "this datanode is full")
        self._reserved_bytes += nbytes

    def release(self, nbytes: int) -> None:
        self._reserved_bytes -= nbytes
        assert self._reserved_bytes >= 0

    def local_path(self, blob_id: str) -> Path | None:
        """The file holding a committed blob's bytes, for a reader that opens it in place
        (a transcode worker), or None if this store does not hold it."""
        try:
            path = self._path(check_blob_id(blob_id), ".blob")
        except StoreError:
            return None
        return path if path.is_file() else None

    def open_writer(self, blob_id: str, sidecar: dict | None = None) -> BlobWriter:
        """A writer for a new blob; `sidecar` (if any) is published with it."""
        if blob_id in self._sizes:
            raise StoreError("exists", f"blob {blob_id} already exists on this node")
        try:
            encoded = sidecars.encode(blob_id, sidecar) if sidecar else None
        except sidecars.BadSidecar as exc:
            raise StoreError("bad_request", str(exc)) from exc
        try:
            return BlobWriter(self, blob_id, encoded)
        except FileExistsError as exc:
            raise StoreError("exists", f"blob {blob_id} is already being written here") from exc
        except OSError as exc:
            raise StoreError("disk", f"cannot create a file in {self.root}: {exc.strerror}") from exc

    def _committed(self, blob_id: str, size: int) -> None:
        self._record(blob_id, size)
        self.on_written(blob_id)

    async def read(
        self, blob_id: str, offset: int, length: int, keep_open: bool = True, drop_behind: bool = False
    ) -> AsyncIterator[bytes]:
        """Yield the bytes [offset, offset+length) in pieces, verifying every block.

        The blob stays open for the next reads (read_handles.py) unless `keep_open` is
        False: a scrubber walking every blob must not push the hot ones out, and must
        check each block against the checksum file as it is on the disk now.

        With `drop_behind` (the scrubber's walk), a blob no viewer read lately (not among
        the open read handles) leaves the page cache as the read goes: each block is
        dropped once verified, until a viewer opens the blob. A scrubber reads every blob
        of the node now and then, and would otherwise fill the cache with blobs nobody
        watches, pushing out those being watched (which are left as they are).
        """
        size = self.size(blob_id)
        if offset < 0 or length < 0 or offset + length > size:
            raise StoreError("bad_request", f"range {offset}+{length} outside blob of {size}")
        if length == 0:
            return
        first_block, end = offset // BLOCK_BYTES, offset + length
        handle = self._read_handles.take(blob_id) if keep_open else None
        if handle is None:
            changes = self._read_handles.changes
            opened = await _in_thread(self._open_for_reading, blob_id)
            handle = self._read_handles.keep(blob_id, opened, changes) if keep_open else opened.for_one_read()
        try:
            for number in range(first_block, (end - 1) // BLOCK_BYTES + 1):
                block_start = number * BLOCK_BYTES
                block = self._read_handles.read_if_cached(
                    handle.fd, block_start, min(BLOCK_BYTES, size - block_start)
                )
                if block is None:
                    block = await _in_thread(read_from_disk, handle.fd, block_start, BLOCK_BYTES, end)
                _verify(blob_id, number, block, handle.crcs)
                if drop_behind and not self._read_handles.is_open(blob_id):
                    # Asked per block: viewers who start on the blob midway keep the rest.
                    drop_cached(handle.fd, block_start, len(block))
                yield block[max(offset, block_start) - block_start : end - block_start]
            if drop_behind and not self._read_handles.is_open(blob_id):
                # Once more over the whole walk: the kernel's readahead may have cached a
                # large folio (1 MiB was seen) spanning several blocks, which a drop of
                # one block, a part of it, leaves in place.
                drop_cached(handle.fd, first_block * BLOCK_BYTES, end - first_block * BLOCK_BYTES)
        finally:
            self._read_handles.release(handle)

    def open_files(self, blob_id: str) -> tuple[int, int]:
        """Blocking: read-only descriptors of a complete blob's file and of its checksum
        file, for a reader on this machine to read itself (local_files.py); the caller
        closes them. StoreError if the blob is not here."""
        if not self.holds(blob_id):
            raise StoreError("not_found", f"no blob {blob_id} on this node")
        try:
            crc_fd = os.open(self._path(blob_id, ".crc"), os.O_RDONLY)
            try:
                return os.open(self._path(blob_id, ".blob"), os.O_RDONLY), crc_fd
            except BaseException:
                os.close(crc_fd)
                raise
        except FileNotFoundError as exc:
            raise StoreError("not_found", f"blob {blob_id} is gone from this node's disk") from exc

    def _open_for_reading(self, blob_id: str) -> ReadHandle:
        """In a worker thread: the blob open, with the CRCs of all its blocks."""
        try:
            crcs = self._path(blob_id, ".crc").read_bytes()
            blob_fd = os.open(self._path(blob_id, ".blob"), os.O_RDONLY)
        except FileNotFoundError as exc:
            raise StoreError("not_found", f"blob {blob_id} is gone from this node's disk") from exc
        return ReadHandle(blob_fd, crcs)

    async def update_sidecars(self, updates: list[dict]) -> int:
        """Store newer sidecars of blobs held here (others are skipped: a blob deleted
        meanwhile, a malformed sidecar); how many were written."""
        accepted = []
        for sidecar in updates:
            blob_id = sidecar.get("blob_id")
            if not isinstance(blob_id, str) or blob_id not in self._sizes:
                continue
            try:
                accepted.append((blob_id, sidecars.encode(blob_id, sidecar), sidecar["version"]))
            except sidecars.BadSidecar as exc:
                log.warning("sidecar refused: %s", exc)
        return await _in_thread(self._write_sidecars, accepted)

    def _write_sidecars(self, accepted: list[tuple[str, bytes, int]]) -> int:
        """Blocking. A disk that refuses a write (full, gone) loses the sidecars, not the
        heartbeat: they are metadata, and the next change of the record sends them again."""
        written = 0
        try:
            for entry in accepted:
                with self._sidecar_locks[hash(entry[0]) % SIDECAR_LOCK_STRIPES]:
                    written += sidecars.write(self.root, *entry)
            if written:
                fsync_dir(self.root)
        except OSError as exc:
            log.error(
                "cannot write sidecars in %s (%s); %d of %d written", self.root, exc, written, len(accepted)
            )
        return written

    def sidecar_batches(self):
        """sidecars.batches over every blob held now (blocking; next() in a thread)."""
        return sidecars.batches(self.root, sorted(self._sizes))

    async def delete(self, blob_id: str) -> None:
        self._record(check_blob_id(blob_id), None)
        for suffix in (".blob", ".crc", sidecars.SUFFIX):
            try:
                await aiofiles.os.remove(self._path(blob_id, suffix))
            except FileNotFoundError:
                pass


def _verify(blob_id: str, number: int, block: bytes, crcs: bytes) -> None:
    """CorruptBlob unless block `number` matches its stored CRC32C."""
    if not block_matches(number, block, crcs):
        raise CorruptBlob(blob_id, number)
