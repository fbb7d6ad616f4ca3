"""Tests for myyoutube.local_reads, local_handover and datanode/local_files.py: a blob held by a datanode on
the web's machine is read from its files, handed over on the node's local socket, checked
block by block, and read over the network from the first block that cannot be.

The first tests run the real handover (a BlobStore on real files, the datanode's socket
served by local_files on this process's event loop); the last ones a whole cluster."""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from pathlib import Path
from types import SimpleNamespace

import google_crc32c
import pytest

from harness import Cluster, holders_of, mp4_bytes, store, wait_until
from myyoutube import local_handover, local_reads, read_grants
from myyoutube.datanode import local_files
from myyoutube.datanode.blob_writer import BLOCK_BYTES, CRC
from myyoutube.datanode.store import BlobStore
from myyoutube.local_reads import LocalBlobs, LocalRead

pytestmark = pytest.mark.skipif(not local_handover.SUPPORTED, reason="local reads need Linux")

BLOB_ID = "ab" * 16
BLOB_BYTES = 2 * BLOCK_BYTES + 12_345  # three blocks, the last one short


def write_blob(folder: Path, data: bytes) -> None:
    """A published blob as a datanode lays it out: its bytes and one CRC32C per block."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{BLOB_ID}.blob").write_bytes(data)
    crcs = b"".join(
        CRC.pack(google_crc32c.value(data[start : start + BLOCK_BYTES]))
        for start in range(0, len(data), BLOCK_BYTES)
    )
    (folder / f"{BLOB_ID}.crc").write_bytes(crcs)


def opened_here(folder: Path) -> list[str]:
    """The files in `folder` this process holds open (deleted ones too), from /proc. Not
    a count of descriptors: other tests' leftovers in this worker process may be closed
    by the garbage collector at any moment."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:
            continue  # the listing's own descriptor, closed by now
        if target.startswith(f"{folder}/"):
            held.append(target)
    return held


class Node:
    """A datanode's local socket, served in this process over a real BlobStore."""

    def __init__(self, folder: Path, address: str) -> None:
        self.port = random.randrange(100_000, 10**9)  # a name only: no TCP port is bound
        self.key = read_grants.new_key()
        keys = read_grants.KeyRing()
        keys.learn(self.key)
        self.node = SimpleNamespace(store=BlobStore(folder, None), read_keys=keys, address=address)
        self.name = f"127.0.0.1:{self.port}"

    def grant(self, blob_id: str = BLOB_ID) -> str:
        return read_grants.grant(self.key, blob_id, time.time())

    async def __aenter__(self) -> Node:
        listener = local_files.listen(self.port)
        assert listener is not None
        self.task = asyncio.create_task(local_files.serve_forever(self.node, listener))  # type: ignore[arg-type]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def whole(read: LocalRead) -> bytes:
    pieces = []
    while piece := await read.next_chunk():
        pieces.append(piece)
    read.close()
    return b"".join(pieces)


class NetworkRest:
    """What a local read turns into for the rest: the bytes as another replica has them
    (the real one is a replica_reads.ReplicaRead over the network, tested elsewhere)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.asked: list[tuple[int, int, str]] = []

    def __call__(self, offset: int, length: int, first: str) -> SimpleNamespace:
        self.asked.append((offset, length, first))
        pieces = [self.data[offset : offset + length]]

        async def next_chunk() -> bytes:
            return pieces.pop() if pieces else b""

        return SimpleNamespace(next_chunk=next_chunk, close=lambda: None)


async def test_a_local_datanode_hands_over_a_blob_that_is_read_byte_for_byte(tmp_path):
    """The handover gives the web the blob's files; a range over a block boundary and
    the whole blob come from them exactly, none over the network; the files stay open for
    the next read and are closed with the web's reads."""
    data = os.urandom(BLOB_BYTES)
    write_blob(tmp_path / "node", data)
    async with Node(tmp_path / "node", "") as node:
        node.node.address = node.name
        blobs = LocalBlobs()
        rest = NetworkRest(data)
        for offset, length in ((BLOCK_BYTES - 100, 65_536), (0, len(data))):
            handle = await blobs.open(node.name, BLOB_ID, node.grant(), len(data))
            assert handle is not None
            span = (offset, length, len(data))
            read = LocalRead(blobs, (node.name, handle), BLOB_ID, span, rest)
            assert await whole(read) == data[offset : offset + length]
        assert rest.asked == []
        assert blobs.reads == 2
        blobs.close()  # closed in a worker thread, soon
    await wait_until(lambda: not opened_here(tmp_path / "node"), "the blob's file closed", 5)


async def test_files_no_read_takes_are_closed_so_a_deleted_blob_frees_its_space(tmp_path, monkeypatch):
    """A blob's files stay open between a player's ranges, but once no read took them for
    LOCAL_IDLE_S they are closed: a blob deleted meanwhile (its name gone, its space held
    by the open file) is then really gone from the disk."""
    monkeypatch.setattr(local_reads, "LOCAL_IDLE_S", 0.3)
    monkeypatch.setattr(local_reads, "SWEEP_EVERY_S", 0.1)
    data = os.urandom(BLOB_BYTES)
    write_blob(tmp_path / "node", data)
    async with Node(tmp_path / "node", "") as node:
        node.node.address = node.name
        blobs = LocalBlobs()
        handle = await blobs.open(node.name, BLOB_ID, node.grant(), len(data))
        assert handle is not None
        blobs.release(handle)
        path = tmp_path / "node" / f"{BLOB_ID}.blob"
        path.unlink()
        assert opened_here(tmp_path / "node") == [f"{path} (deleted)"], "open right after its read"
        await asyncio.sleep(1.0)
        assert opened_here(tmp_path / "node") == []
        blobs.close()


@pytest.mark.parametrize("case", ["forged grant", "grant for another blob", "wrong size", "not held"])
async def test_a_local_datanode_hands_over_nothing_it_should_not(tmp_path, case):
    """A grant not from the master, or for another blob, a blob of another size than
    the master's record, or a blob the node does not hold: no files are handed over
    (the read then goes over the network), and no descriptor is left open."""
    data = os.urandom(BLOB_BYTES)
    write_blob(tmp_path / "node", data)
    async with Node(tmp_path / "node", "") as node:
        node.node.address = node.name
        blob_id, size = BLOB_ID, len(data)
        grant = node.grant()
        if case == "forged grant":
            grant = read_grants.grant(read_grants.new_key(), BLOB_ID, time.time())
        elif case == "grant for another blob":
            grant = node.grant("cd" * 16)
        elif case == "wrong size":
            size += 1
        else:
            blob_id = "cd" * 16
            grant = node.grant(blob_id)
        blobs = LocalBlobs()
        assert await blobs.open(node.name, blob_id, grant, size) is None
        assert opened_here(tmp_path / "node") == []
        # The same node hands over what it should (the refusal was this request's).
        handle = await LocalBlobs().open(node.name, BLOB_ID, node.grant(), len(data))
        assert handle is not None
        os.close(handle.fd)


async def test_a_node_elsewhere_is_not_read_locally_even_if_a_local_one_has_its_port(tmp_path):
    """The master names a node on another host whose port a datanode here also uses:
    the local one answers with its own address, so its files are not taken (they are
    another node's), and the node is not asked again for a while. A port with no local
    datanode at all is not local either."""
    data = os.urandom(BLOB_BYTES)
    write_blob(tmp_path / "node", data)
    async with Node(tmp_path / "node", "") as node:
        node.node.address = node.name
        elsewhere = f"192.0.2.7:{node.port}"
        blobs = LocalBlobs()
        assert await blobs.open(elsewhere, BLOB_ID, node.grant(), len(data)) is None
        assert opened_here(tmp_path / "node") == []
        assert await blobs.open(f"127.0.0.1:{node.port + 1}", BLOB_ID, node.grant(), len(data)) is None
        # The same node elsewhere is not asked again: even a right answer would not be taken.
        node.node.address = elsewhere
        assert await blobs.open(elsewhere, BLOB_ID, node.grant(), len(data)) is None


async def test_a_rotten_block_is_never_handed_on_and_the_rest_comes_over_the_network(tmp_path):
    """A byte flipped in the second block of the local file: the read hands out the
    first block from the file, then asks the network for everything from the second
    block's first byte, that node first (so the node finds the rot itself and has it
    repaired), and does not open its files of that blob again."""
    data = os.urandom(BLOB_BYTES)
    write_blob(tmp_path / "node", data)
    path = tmp_path / "node" / f"{BLOB_ID}.blob"
    with path.open("r+b") as file:
        file.seek(BLOCK_BYTES + 5)
        file.write(bytes([data[BLOCK_BYTES + 5] ^ 1]))
    async with Node(tmp_path / "node", "") as node:
        node.node.address = node.name
        blobs = LocalBlobs()
        rest = NetworkRest(data)
        handle = await blobs.open(node.name, BLOB_ID, node.grant(), len(data))
        assert handle is not None
        read = LocalRead(blobs, (node.name, handle), BLOB_ID, (100, len(data) - 100, len(data)), rest)
        assert await whole(read) == data[100:]
        assert rest.asked == [(BLOCK_BYTES, len(data) - BLOCK_BYTES, node.name)]
        assert blobs.fallbacks == 1
        assert await blobs.open(node.name, BLOB_ID, node.grant(), len(data)) is None
        blobs.close()


# --- a whole cluster -------------------------------------------------------------------


async def local_read_counts(cluster: Cluster, http) -> tuple[int, int]:
    """(local reads, of which fell back to the network), from the web's /metrics."""
    async with http.get(f"{cluster.url}/metrics", headers=cluster.admin_headers()) as response:
        assert response.status == 200
        text = await response.text()
    found = dict(re.findall(r"^myyoutube_web_local_(reads|read_fallbacks)_total (\S+)$", text, re.M))
    return int(float(found["reads"])), int(float(found["read_fallbacks"]))


def warm(cluster: Cluster) -> None:
    """Every replica's file in the page cache, as a watched video's are."""
    for files in cluster.blob_files().values():
        for path in files:
            path.read_bytes()


async def test_cached_ranges_are_served_while_every_datanode_is_frozen(fresh_cluster, http):
    """The web reads a video held on its own machine from the datanodes' files: with
    every datanode frozen (SIGSTOP), ranges whose blocks are in the page cache still
    arrive byte for byte, and /metrics counts the local reads."""
    cluster = fresh_cluster()
    data = mp4_bytes(os.urandom(3 * BLOCK_BYTES))
    await store(cluster, "local.mp4", data)
    async with http.get(f"{cluster.url}/stream/local.mp4") as response:
        assert await response.read() == data
    warm(cluster)
    for node in cluster.datanodes:
        node.pause()
    try:
        for start in (0, BLOCK_BYTES - 1000, 2 * BLOCK_BYTES + 7):
            headers = {"Range": f"bytes={start}-{start + 65_535}"}
            async with http.get(f"{cluster.url}/stream/local.mp4", headers=headers) as response:
                assert response.status == 206
                assert await response.read() == data[start : start + 65_536]
    finally:
        for node in cluster.datanodes:
            node.resume()
    reads, _ = await local_read_counts(cluster, http)
    assert reads >= 3


async def test_rotten_blocks_in_local_replicas_never_reach_a_viewer(fresh_cluster, http):
    """Two of three replicas rot in the same block (a byte flipped on the disk, so in the
    page cache too): every read of the video, whole or by range, is byte for byte right,
    from the sound replica."""
    cluster = fresh_cluster()
    data = mp4_bytes(os.urandom(3 * BLOCK_BYTES))
    await store(cluster, "rotten.mp4", data)
    bad = BLOCK_BYTES + 99
    for path in [files[0] for files in cluster.blob_files().values()][:2]:
        rot(path, bad)
    warm(cluster)
    headers = {"Range": f"bytes={bad - 10}-{bad + 10}"}
    for _ in range(6):
        async with http.get(f"{cluster.url}/stream/rotten.mp4") as response:
            assert await response.read() == data
        async with http.get(f"{cluster.url}/stream/rotten.mp4", headers=headers) as response:
            assert response.status == 206
            assert await response.read() == data[bad - 10 : bad + 11]
    assert (await local_read_counts(cluster, http))[0] >= 12


async def test_a_block_rotten_in_every_replica_is_refused_not_sent(fresh_cluster, http):
    """The same block rots in all three replicas: a range within it is answered 503
    (there is no sound copy to send), never with the rotten bytes; a range before it is
    served from the files as usual."""
    cluster = fresh_cluster()
    data = mp4_bytes(os.urandom(3 * BLOCK_BYTES))
    await store(cluster, "rotten.mp4", data)
    bad = BLOCK_BYTES + 99
    for files in cluster.blob_files().values():
        rot(files[0], bad)
    warm(cluster)
    rotten = bytearray(data[bad - 10 : bad + 11])
    rotten[10] ^= 0xFF
    async with http.get(f"{cluster.url}/stream/rotten.mp4", headers={"Range": "bytes=0-999"}) as response:
        assert response.status == 206
        assert await response.read() == data[:1000]
    headers = {"Range": f"bytes={bad - 10}-{bad + 10}"}
    async with http.get(f"{cluster.url}/stream/rotten.mp4", headers=headers) as response:
        assert response.status == 503
        assert bytes(rotten) not in await response.read()
    assert (await local_read_counts(cluster, http))[1] >= 1


def rot(path: Path, offset: int) -> None:
    """Flip the byte at `offset` of a file in place (the page cache sees it too)."""
    with path.open("r+b") as file:
        file.seek(offset)
        byte = file.read(1)[0]
        file.seek(offset)
        file.write(bytes([byte ^ 0xFF]))


def blob_files_held_by(pid: int) -> list[Path]:
    """The blob files process `pid` holds open, from /proc."""
    held = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue  # closed meanwhile
        if target.endswith(".blob"):
            held.append(Path(target))
    return held


async def test_a_rot_found_by_a_local_read_is_repaired(fresh_cluster, http):
    """The replica whose files the web reads rots: the viewer still gets every byte
    right, and that node, asked for the rest over the network first, finds the rot
    itself and has its copy repaired, back to 3 good copies."""
    cluster = fresh_cluster()
    data = mp4_bytes(os.urandom(3 * BLOCK_BYTES))
    await store(cluster, "repaired.mp4", data)
    warm(cluster)
    async with http.get(f"{cluster.url}/stream/repaired.mp4") as response:
        assert await response.read() == data
    assert cluster.web is not None
    [read_here] = blob_files_held_by(cluster.web.process.pid)
    rot(read_here, BLOCK_BYTES + 1234)
    async with http.get(f"{cluster.url}/stream/repaired.mp4") as response:
        assert await response.read() == data
    await wait_until(lambda: len(holders_of(cluster, data)) == 3, "3 good copies again", 30)


async def test_a_web_told_not_to_read_locally_reads_over_the_network(fresh_cluster, http):
    """--no-local-reads: every byte comes over the network from the datanodes (a web
    whose machine's datanodes' files should not be read, or to compare): the web holds
    none of their files open, where by default it does."""
    cluster = fresh_cluster(web_args=("--no-local-reads",))
    data = mp4_bytes(os.urandom(BLOCK_BYTES + 5))
    await store(cluster, "remote.mp4", data)
    warm(cluster)
    for _ in range(3):
        async with http.get(f"{cluster.url}/stream/remote.mp4") as response:
            assert await response.read() == data
    assert cluster.web is not None
    assert blob_files_held_by(cluster.web.process.pid) == []
