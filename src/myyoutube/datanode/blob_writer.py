"""Writing one blob on a datanode: its bytes and block checksums, published at once.

Theory of operation
-------------------
A blob on disk is its bytes plus one big-endian u32 CRC32C per BLOCK_BYTES block (store.py
describes the files). A `BlobWriter` (from BlobStore.open_writer) claims room in the store
for every byte as it comes, cuts the bytes into blocks and checksums each; whole blocks go
to a worker thread in batches (WRITE_BATCH_BYTES), which hashes them (sha256) and writes
them to `{blob_id}.blob.part`. `finish()` fsyncs the bytes, writes the checksums durably
to `{blob_id}.crc.part`, renames the sidecar (if the writer was given one), the checksum
file and then the blob into place, and fsyncs the folder, so after a crash a `.blob` file
is always complete and a `.part` is always garbage. `abort()` removes the `.part` files.

The reads of store.py and open_blobs.py check blocks against this layout (BLOCK_BYTES,
CRC); open_blobs.py also writes in WRITE_BATCH_BYTES batches and fsyncs with `fsync_dir`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import aiofiles.os
import google_crc32c

from myyoutube.batched_writes import BatchedWriter
from myyoutube.datanode import sidecars
from myyoutube.datanode.writeback import Writeback
from myyoutube.protocol import CHUNK_BYTES

if TYPE_CHECKING:
    from myyoutube.datanode.store import BlobStore

# Blocking file calls (writes, fsyncs) run in a worker thread so the event loop keeps
# serving other streams while the disk works.
_in_thread = asyncio.to_thread

# The checksum unit. Equal to the wire chunk so a range read touches one extra block at
# most at each end, and the checksum file costs 4 bytes per 256 KiB (0.0015 %).
BLOCK_BYTES = CHUNK_BYTES

# A writer hands whole checksummed blocks to a worker thread in batches of this size,
# which hashes (sha256) and writes them there: one thread hop per MiB instead of one per
# chunk, and the hashing off the event loop. A write holds two batches at most.
WRITE_BATCH_BYTES = 1024 * 1024

# Each block's CRC32C as the `.crc` file holds it: a big-endian u32.
CRC = struct.Struct("!I")


def block_matches(number: int, block: bytes, crcs: bytes) -> bool:
    """Whether block `number` of a blob is what its checksum file `crcs` says it is."""
    expected = crcs[number * CRC.size : (number + 1) * CRC.size]
    return len(expected) == CRC.size and CRC.pack(google_crc32c.value(block)) == expected


class BlobWriter:
    """Writes one blob: append bytes, then `finish()` makes it durable or `abort()`."""

    def __init__(self, store: BlobStore, blob_id: str, sidecar: bytes | None = None) -> None:
        self._store = store
        self.blob_id = blob_id
        self._sidecar = sidecar
        self._blob_part = store._path(blob_id, ".blob.part")
        self._crc_part = store._path(blob_id, ".crc.part")
        # x: never overwrite another writer. Open across many write() calls, so no `with`:
        # finish() or abort() closes it.
        self._blob_file = open(self._blob_part, "xb")  # noqa: SIM115
        self._crcs = bytearray()
        self._pending = bytearray()  # the tail of the file not yet a whole block
        self._sha256 = hashlib.sha256()
        # Whole checksummed blocks go to the disk thread in batches, hashed there too.
        self._writes = BatchedWriter(self._hash_and_write, WRITE_BATCH_BYTES)
        self._writeback = Writeback(self._blob_file.fileno(), 0)
        self.size = 0

    async def write(self, data: bytes) -> None:
        # A chunk received in place is a bytearray (protocol.FrameDecoder); the CRC32C
        # library takes only bytes. bytes() of a bytes object is that object, no copy.
        data = bytes(data)
        self._store.reserve(len(data))
        self.size += len(data)
        if self._pending:
            # Complete the block a previous write left open, then go on from there.
            fill = BLOCK_BYTES - len(self._pending)
            self._pending += data[:fill]
            data = data[fill:]
            if len(self._pending) < BLOCK_BYTES:
                return
            await self._add_blocks(bytes(self._pending))
            self._pending.clear()
        whole = len(data) - len(data) % BLOCK_BYTES
        if whole:
            # The common case, whole chunks: checksum and write them with no extra copy.
            await self._add_blocks(data[:whole] if whole < len(data) else data)
        self._pending += data[whole:]

    async def _add_blocks(self, blocks: bytes) -> None:
        # Slicing a bytes object whole returns the object itself: one chunk, no copy.
        for start in range(0, len(blocks), BLOCK_BYTES):
            self._crcs += CRC.pack(google_crc32c.value(blocks[start : start + BLOCK_BYTES]))
        await self._writes.write(blocks)

    def _hash_and_write(self, batch: list[bytes]) -> None:
        """In a worker thread: hashlib and the file write let go of the GIL, so this runs
        beside the event loop."""
        for blocks in batch:
            self._sha256.update(blocks)
            self._blob_file.write(blocks)
            # The buffered file passes a write of a whole block or more straight to the
            # kernel; a short last block may still be in its buffer, and asking for its
            # range early is harmless (fsync writes it).
            self._writeback.advance(len(blocks))

    async def finish(self) -> tuple[int, str]:
        """Flush, fsync and publish the blob; returns (size, sha256 hex)."""
        if self._pending:
            await self._add_blocks(bytes(self._pending))  # the last block, short
            self._pending.clear()
        await self._writes.flush()
        await _in_thread(_fsync_close, self._blob_file, self._writeback)
        await _in_thread(_write_durably, self._crc_part, bytes(self._crcs))
        if self._sidecar is not None:
            meta_part = self._store.root / f"{self.blob_id}{sidecars.SUFFIX}.part"
            await _in_thread(_write_durably, meta_part, self._sidecar)
            await aiofiles.os.replace(meta_part, self._store.root / f"{self.blob_id}{sidecars.SUFFIX}")
        final_blob = self._store._path(self.blob_id, ".blob")
        await aiofiles.os.replace(self._crc_part, self._store._path(self.blob_id, ".crc"))
        await aiofiles.os.replace(self._blob_part, final_blob)
        await _in_thread(fsync_dir, self._store.root)
        self._store.release(self.size)
        self._store._committed(self.blob_id, self.size)
        return self.size, self._sha256.hexdigest()

    async def abort(self) -> None:
        self._store.release(self.size)
        await self._writes.abandon()
        self._blob_file.close()
        for path in (self._blob_part, self._crc_part):
            try:
                await aiofiles.os.remove(path)
            except FileNotFoundError:
                pass


def _fsync_close(file, writeback: Writeback) -> None:
    file.flush()
    writeback.fsync()
    file.close()


def _write_durably(path: Path, data: bytes) -> None:
    """Write a small file and fsync it. A write the disk refuses (full) leaves no part
    of it: nothing else removes a part file before the node restarts."""
    try:
        with open(path, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
