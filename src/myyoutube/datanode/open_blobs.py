"""Open blobs: the replicas of resumable uploads, grown by appends, sealed at the end
(write pipelines store through them too, to reopen a partial copy at an offset: see
pipeline.py).

Theory of operation
-------------------
A resumable upload's replica lives beside the store's blobs in two files::

    {blob_id}.open      the bytes received so far
    {blob_id}.opencrc   u64 confirmed length, then one u32 CRC32C per BLOCK_BYTES block
                        of those bytes (the last block's CRC covers only its filled part)

The master appends from the session's confirmed offset (`AppendBlob`). Bytes past that
offset are leftovers of an append that was never confirmed (the uploader or the master
went away midway) and are cut off first. Before the block the offset falls in is
extended, it is read back and checked against its CRC, so a rotten byte is never blessed
with a new checksum. An append ends with an fsync of the bytes, then a new checksum file
written beside the old and renamed over it (fsynced, with the folder): the checksum file
only ever describes bytes already durable, and its length is the length this node
confirms to the master.

Sealing checks the length, takes the sha256 kept as the appends went (or, after a restart
or an append from an earlier offset, hashes the bytes, every block verified), and
renames the files into the store's `.crc` and `.blob`, after which the blob is an
ordinary one. The store removes `.part` files at start-up but not these: an open blob
outlives a restart of its node, as the upload session outlives the master's.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import os
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiofiles.os
import google_crc32c

from myyoutube.batched_writes import BatchedWriter
from myyoutube.datanode.blob_writer import BLOCK_BYTES, WRITE_BATCH_BYTES, fsync_dir
from myyoutube.datanode.store import BlobStore, CorruptBlob, StoreError, check_blob_id
from myyoutube.datanode.writeback import Writeback

# An open blob untouched this long belongs to an upload that ended while this node was
# down (the master's deletion never reached it): the node removes it by itself. Far past
# any sensible --upload-expiry (a day by default), as the master's RETIRED_KEEP_S is:
# what a node does before a master has told it its expiry.
ABANDONED_AFTER_S = 30 * 24 * 3600.0

# Every append touches the open blob on each of the session's replicas, and the master
# ends a session idle for its --upload-expiry, so an open blob untouched for longer
# belongs to no session any more: its replica was replaced, or its session ended (sealed,
# terminated, expired) while this node was down or frozen and the deletion never came.
# The node removes it once untouched for this many expiries: the master sweeps expired
# sessions only now and then, and its clock and ours may differ a little.
EXPIRIES_BEFORE_ABANDONED = 2


def abandoned_after_s(upload_expiry_s: float) -> float:
    """How long an open blob may sit untouched before the node removes it by itself, given
    the master's upload expiry (0 if no master has said it yet)."""
    if upload_expiry_s <= 0:
        return ABANDONED_AFTER_S
    return min(ABANDONED_AFTER_S, EXPIRIES_BEFORE_ABANDONED * upload_expiry_s)


_LENGTH = struct.Struct("!Q")
_CRC = struct.Struct("!I")


def _crc(data: bytes) -> bytes:
    return _CRC.pack(google_crc32c.value(data))


class OpenBlobs:
    """The open blobs in one store's folder."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store
        # One append, seal or deletion per blob at a time: a master that restarted may
        # append while the connection of the previous one still winds down, and a deletion
        # must not run under an append that then writes its checksum file back. A lock is
        # kept only while a task holds or awaits it (`_users` counts them): every upload
        # and rendition passes through here, and a lock left per blob ever written would
        # grow with the store.
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: collections.Counter[str] = collections.Counter()
        # The sha256 of each open blob's confirmed bytes, kept as appends go on from where
        # the last one ended, so sealing need not read the blob again. Lost with the
        # process, or when an append starts elsewhere: sealing then reads and hashes.
        self._hashes: dict[str, tuple[int, hashlib._Hash]] = {}

    def _path(self, blob_id: str, suffix: str) -> Path:
        return self.store.root / f"{check_blob_id(blob_id)}{suffix}"

    def holds(self, blob_id: str) -> bool:
        return self._path(blob_id, ".opencrc").exists()

    @contextlib.asynccontextmanager
    async def lock(self, blob_id: str) -> AsyncIterator[None]:
        """Hold the blob's lock (waiting for whoever holds it now)."""
        blob_id = check_blob_id(blob_id)
        lock = self._locks.setdefault(blob_id, asyncio.Lock())
        self._users[blob_id] += 1
        try:
            async with lock:
                yield
        finally:
            self._users[blob_id] -= 1
            if not self._users[blob_id]:
                del self._users[blob_id], self._locks[blob_id]

    def busy(self, blob_id: str) -> bool:
        """Whether a task holds or awaits the blob's lock (an append, seal or deletion)."""
        return blob_id in self._locks

    async def appender(self, blob_id: str, offset: int) -> Appender:
        """An appender from `offset`; StoreError('short') if fewer bytes are held."""
        return await asyncio.to_thread(self._open_appender, blob_id, offset)

    def _open_appender(self, blob_id: str, offset: int) -> Appender:
        length, crcs = self._checksums(blob_id) if offset else (0, [])
        if offset > length:
            raise StoreError("short", f"open blob {blob_id} holds {length} bytes, not {offset}")
        data_path = self._path(blob_id, ".open")
        fd = os.open(data_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            block_number, kept = divmod(offset, BLOCK_BYTES)
            tail = b""
            if kept:
                # The block the offset falls in, as its CRC describes it, then cut to `kept`.
                tail = _read_block(fd, blob_id, block_number, length, crcs)[:kept]
            os.ftruncate(fd, offset)
            os.lseek(fd, offset, os.SEEK_SET)
        except BaseException:
            os.close(fd)
            raise
        known = self._hashes.get(blob_id)
        digest = known[1].copy() if known is not None and known[0] == offset else None
        if offset == 0:
            digest = hashlib.sha256()
        return Appender(self, blob_id, fd, offset, crcs[:block_number], tail, digest)

    def _checksums(self, blob_id: str) -> tuple[int, list[bytes]]:
        """(confirmed length, per-block CRCs) of an open blob; not_found if none."""
        try:
            raw = self._path(blob_id, ".opencrc").read_bytes()
        except FileNotFoundError as exc:
            raise StoreError("not_found", f"no open blob {blob_id} on this node") from exc
        (length,) = _LENGTH.unpack_from(raw)
        body = raw[_LENGTH.size :]
        return length, [body[i : i + _CRC.size] for i in range(0, len(body), _CRC.size)]

    def _write_checksums(self, blob_id: str, length: int, crcs: list[bytes]) -> None:
        """Replace the checksum file durably (new file, fsync, rename, fsync folder)."""
        final = self._path(blob_id, ".opencrc")
        fresh = self._path(blob_id, ".opencrc.new")
        with open(fresh, "wb") as file:
            file.write(_LENGTH.pack(length) + b"".join(crcs))
            file.flush()
            os.fsync(file.fileno())
        os.replace(fresh, final)
        fsync_dir(self.store.root)

    async def read(self, blob_id: str, offset: int, length: int) -> AsyncIterator[bytes]:
        """Yield confirmed bytes [offset, offset+length), every block verified."""
        held, crcs = await asyncio.to_thread(self._checksums, blob_id)
        if offset < 0 or length < 0 or offset + length > held:
            raise StoreError("bad_request", f"range {offset}+{length} outside open blob of {held}")
        if length == 0:
            return
        fd = os.open(self._path(blob_id, ".open"), os.O_RDONLY)
        try:
            end = offset + length
            for number in range(offset // BLOCK_BYTES, (end - 1) // BLOCK_BYTES + 1):
                block = await asyncio.to_thread(_read_block, fd, blob_id, number, held, crcs)
                start = number * BLOCK_BYTES
                yield block[max(offset, start) - start : end - start]
        finally:
            os.close(fd)

    async def seal(self, blob_id: str, size: int) -> tuple[int, str]:
        """Publish the open blob of `size` bytes as a complete blob: (size, sha256)."""
        async with self.lock(blob_id):
            if not self.holds(blob_id):
                return await self._sealed_already(blob_id, size)
            return await self.seal_locked(blob_id, size)

    async def seal_locked(self, blob_id: str, size: int) -> tuple[int, str]:
        """seal(), for a caller that holds the blob's lock (a chain write at its End)."""
        length, crcs = await asyncio.to_thread(self._checksums, blob_id)
        if length != size:
            raise StoreError("checksum", f"open blob {blob_id} holds {length} bytes, not {size}")
        known = self._hashes.pop(blob_id, None)
        if known is not None and known[0] == size:
            digest = known[1]
        else:
            digest = hashlib.sha256()
            async for piece in self.read(blob_id, 0, size):
                digest.update(piece)
        await asyncio.to_thread(self._publish, blob_id, crcs)
        self.store._committed(blob_id, size)
        return size, digest.hexdigest()

    def _publish(self, blob_id: str, crcs: list[bytes]) -> None:
        crc_part = self._path(blob_id, ".crc.part")
        with open(crc_part, "wb") as file:
            file.write(b"".join(crcs))
            file.flush()
            os.fsync(file.fileno())
        os.replace(crc_part, self._path(blob_id, ".crc"))
        os.replace(self._path(blob_id, ".open"), self._path(blob_id, ".blob"))
        os.remove(self._path(blob_id, ".opencrc"))
        fsync_dir(self.store.root)

    async def _sealed_already(self, blob_id: str, size: int) -> tuple[int, str]:
        """A seal repeated (the master's answer was lost): the published blob's hash."""
        if self.store.blobs().get(blob_id) != size:
            raise StoreError("not_found", f"no open blob {blob_id} of {size} bytes on this node")
        digest = hashlib.sha256()
        async for piece in self.store.read(blob_id, 0, size, keep_open=False):
            digest.update(piece)
        return size, digest.hexdigest()

    async def remove_abandoned(
        self, now: float, after_s: float = ABANDONED_AFTER_S, keep: Callable[[str], bool] = lambda _: False
    ) -> list[str]:
        """Remove open blobs untouched for `after_s` (see abandoned_after_s), but those
        `keep` names (a chain write's copy parked for a resume); the ids removed."""
        stale = await asyncio.to_thread(self._untouched_since, now - after_s)
        removed = []
        for blob_id in stale:
            if not self.busy(blob_id) and not keep(blob_id):  # an append running now revives it
                await self.delete(blob_id)
                removed.append(blob_id)
        return removed

    def _untouched_since(self, cutoff: float) -> list[str]:
        """In a worker thread (it reads the folder): open blobs confirmed before `cutoff`,
        and those never confirmed whose bytes were written before it (an append cut short
        before its first confirmation leaves bytes and no checksum file, which nothing
        else would ever remove)."""
        written_at: dict[str, float] = {}
        for suffix in (".open", ".opencrc"):  # a checksum file's time, where there is one
            for path in self.store.root.glob(f"*{suffix}"):
                try:
                    written_at[check_blob_id(path.name.removesuffix(suffix))] = path.stat().st_mtime
                except (OSError, StoreError):
                    continue  # gone meanwhile, or not a name of ours
        return [blob_id for blob_id, when in written_at.items() if when < cutoff]

    async def delete(self, blob_id: str) -> None:
        """Remove the open blob once no append or seal of it runs (one running now ends
        first: its master went away, so it will not wait long)."""
        async with self.lock(blob_id):
            await self.delete_locked(blob_id)

    async def delete_locked(self, blob_id: str) -> None:
        """delete(), for a caller that holds the blob's lock (or knows no write of it runs)."""
        self._hashes.pop(blob_id, None)
        for suffix in (".open", ".opencrc", ".opencrc.new"):
            try:
                await aiofiles.os.remove(self._path(blob_id, suffix))
            except FileNotFoundError:
                pass


class Appender:
    """Appends to one open blob; `finish()` makes the bytes durable and confirms them."""

    def __init__(
        self,
        blobs: OpenBlobs,
        blob_id: str,
        fd: int,
        offset: int,
        crcs: list[bytes],
        tail: bytes,
        digest: hashlib._Hash | None,
    ) -> None:
        self._blobs, self.blob_id, self._fd = blobs, blob_id, fd
        self._digest = digest  # of the bytes before `offset` and those written since, or None
        self.length = offset
        self._crcs = crcs  # of the whole blocks before the current one
        self._block = bytearray(tail)  # the current, unfilled block
        self._reserved = 0
        # Bytes go to the disk thread a batch at a time (blob_writer.WRITE_BATCH_BYTES), hashed
        # there; `length` counts them once handed over, and finish() flushes first.
        self._writes = BatchedWriter(self._write_batch, WRITE_BATCH_BYTES)
        self._writeback = Writeback(fd, offset)

    def _write_batch(self, batch: list[bytes]) -> None:
        """In a worker thread: hashlib and the file write let go of the GIL."""
        for data in batch:
            _write_all(self._fd, data, self._digest)
            self._writeback.advance(len(data))

    async def write(self, data: bytes) -> None:
        # A chunk received in place is a bytearray (protocol.FrameDecoder); the CRC32C
        # library takes only bytes. bytes() of a bytes object is that object, no copy.
        data = bytes(data)
        self._blobs.store.reserve(len(data))
        self._reserved += len(data)
        await self._writes.write(data)
        self.length += len(data)
        if not self._block and len(data) == BLOCK_BYTES:
            self._crcs.append(_crc(data))  # the common case, a whole chunk: no copy
            return
        self._block += data
        while len(self._block) >= BLOCK_BYTES:
            self._crcs.append(_crc(bytes(self._block[:BLOCK_BYTES])))
            del self._block[:BLOCK_BYTES]

    async def finish(self) -> int:
        """fsync the bytes, then the checksums that confirm them; the new length."""
        await self._writes.flush()
        crcs = self._crcs + ([_crc(bytes(self._block))] if self._block else [])
        await asyncio.to_thread(self._writeback.fsync)
        await asyncio.to_thread(self._blobs._write_checksums, self.blob_id, self.length, crcs)
        if self._digest is not None:
            self._blobs._hashes[self.blob_id] = (self.length, self._digest)
        else:
            self._blobs._hashes.pop(self.blob_id, None)
        self.close()
        return self.length

    async def abandon(self) -> None:
        """Stop here (an append cut short): wait for the batch being written, which must
        not outlive the file, and close. Bytes past the confirmed length are cut off by
        the next append."""
        await self._writes.abandon()
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._blobs.store.release(self._reserved)
        self._reserved = 0


def _read_block(fd: int, blob_id: str, number: int, held: int, crcs: list[bytes]) -> bytes:
    """Block `number` of the first `held` bytes, checked against its CRC."""
    start = number * BLOCK_BYTES
    block = os.pread(fd, min(BLOCK_BYTES, held - start), start)
    if number >= len(crcs) or _crc(block) != crcs[number]:
        raise CorruptBlob(blob_id, number)
    return block


def _write_all(fd: int, data: bytes, digest: hashlib._Hash | None) -> None:
    if digest is not None:
        digest.update(data)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
