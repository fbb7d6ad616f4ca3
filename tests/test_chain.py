"""Write pipelines (chain.py, datanode/pipeline.py, master/pipeline.py) with real processes.

A cluster whose master runs with --writes pipeline (the default, said explicitly here):
uploads go down a chain of datanodes.
The tests check the bytes on every datanode's disk (sha256), how many bytes the master
process wrote (its egress: /proc/PID/io wchar counts socket writes), and what happens
when a node of the chain is killed or frozen mid-upload.
"""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from harness import Cluster, holders_of, mp4_bytes, store, wait_until
from myyoutube import certs, chain, links, protocol, tls_contexts
from myyoutube.client import RequestFailed
from myyoutube.datanode.blob_writer import WRITE_BATCH_BYTES
from myyoutube.launch import Role
from myyoutube.protocol import ChainAck, ChainResumeBlob, ChainWriteBlob, End, Ok, WriteBlob

PIPELINE = ("--writes", "pipeline")
MIB = 1024 * 1024


def written_by(pid: int) -> int:
    """Bytes a process has written so far (files and sockets alike)."""
    with open(f"/proc/{pid}/io") as io:
        return int(next(line for line in io if line.startswith("wchar:")).split()[1])


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_upload_goes_down_the_chain_and_leaves_the_master_once(fresh_cluster, tls):
    """Three copies, byte-identical, and the master wrote about one upload's worth of
    bytes (fan-out would be three); over TLS too, where datanodes pass the blob on to
    each other with their datanode certificates."""
    cluster = fresh_cluster(master_args=PIPELINE, tls=tls)
    data = mp4_bytes(os.urandom(16 * 1024 * 1024))
    before = written_by(cluster.master.process.pid)
    await store(cluster, "chained.mp4", data)
    egress = (written_by(cluster.master.process.pid) - before) / len(data)
    print(f"master egress per uploaded byte: {egress:.3f}")
    assert len(holders_of(cluster, data)) == 3
    assert egress < 1.2
    got = b"".join([piece async for piece in cluster.client().read("chained.mp4", 0, len(data))])
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def closed_connections_to(listening: set[int]) -> int:
    """TCP sockets in TIME_WAIT, on this machine, with one of the `listening` ports at an
    end: each is a connection to one of those servers that was closed (the closer's side
    lingers a minute), read from /proc/net/tcp (state 06)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                local, remote, state = row.split()[1:4]
                ends = {int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)}
                count += state == "06" and not ends.isdisjoint(listening)
    return count


async def test_chain_hops_reuse_their_connections_from_one_upload_to_the_next(fresh_cluster):
    """Eight uploads down the chain leave no closed connection behind between datanodes:
    each hop gives its connection to the next node back to a pool and the next upload
    reuses it. Before, every hop of every blob (a video and its poster) opened a new one,
    and a minute of 5 uploaders left hundreds of sockets in TIME_WAIT."""
    cluster = fresh_cluster(master_args=PIPELINE)
    datanode_ports = ports(cluster.datanodes)
    before = closed_connections_to(datanode_ports)
    for number in range(8):
        await store(cluster, f"reused-{number}.mp4", mp4_bytes(os.urandom(512 * 1024)))
    closed = closed_connections_to(datanode_ports) - before
    assert closed <= 2, f"{closed} connections to datanodes were closed for 8 uploads"


def chain_of(cluster: Cluster) -> list[Role]:
    """The datanodes of the latest chain, in order, as the master logged it."""
    line = [
        line
        for line in (cluster.root / "logs" / "master.log").read_text().splitlines()
        if "goes down the chain" in line
    ][-1]
    addresses = line.rsplit("goes down the chain ", 1)[1].split(" -> ")
    by_address = {node.address: node for node in cluster.datanodes}
    return [by_address[address] for address in addresses]


async def upload_with_fault(cluster: Cluster, name: str, data: bytes, fault, at: int = 2 * MIB) -> dict:
    """Upload `data`; after its first `at` bytes, apply `fault` to the datanodes of the chain."""
    upload = await cluster.client().start_upload(name, "video/mp4")
    await upload.write(data[:at])
    fault(chain_of(cluster))
    await upload.write(data[at:])
    return await upload.finish()


def ports(nodes: list[Role]) -> set[int]:
    return {node.port for node in nodes}


async def read_back(cluster: Cluster, name: str, size: int) -> bytes:
    return b"".join([piece async for piece in cluster.client().read(name, 0, size)])


async def test_tail_killed_mid_upload_commits_on_the_two_before_it(fresh_cluster):
    """SIGKILL of the last node of the chain: the two before it acknowledge, the upload
    commits on them, and repair brings the blob back to three copies."""
    cluster = fresh_cluster(datanodes=4, master_args=PIPELINE)
    data = mp4_bytes(os.urandom(6 * 1024 * 1024))
    nodes: list[Role] = []
    video = await upload_with_fault(
        cluster, "tail.mp4", data, lambda chain: (nodes.extend(chain), chain[2].kill())
    )
    assert video["sha256"] == hashlib.sha256(data).hexdigest()
    await wait_until(
        lambda: len([n for n in holders_of(cluster, data) if n.alive()]) == 3, "healed to 3 copies", 30
    )
    holders = holders_of(cluster, data)
    assert nodes[0] in holders and nodes[1] in holders


async def test_frozen_tail_is_dropped_after_the_stall_timeout_and_the_upload_commits(fresh_cluster):
    """SIGSTOP of the last node: the node before it drops it after its stall timeout
    and the upload commits on the first two."""
    cluster = fresh_cluster(master_args=PIPELINE)
    data = mp4_bytes(os.urandom(6 * 1024 * 1024))
    nodes: list[Role] = []
    video = await upload_with_fault(
        cluster, "frozen.mp4", data, lambda chain: (nodes.extend(chain), chain[2].pause())
    )
    assert video["sha256"] == hashlib.sha256(data).hexdigest()
    holders = holders_of(cluster, data)
    assert nodes[0] in holders and nodes[1] in holders and nodes[2] not in holders


async def test_tail_lost_once_it_was_handed_every_byte_is_dropped_at_once(fresh_cluster):
    """The tail stops reading (SIGSTOP), the rest of the video reaches the node before it
    (it fits in the kernel's socket buffers), then the tail is SIGKILLed: nothing is left
    to pass on, so only the end of its connection tells. The node before it drops it and
    acknowledges at once, and the upload commits on the first two within seconds; it stood
    still for a minute (the master waits for every byte's ack before End) and then failed."""
    cluster = fresh_cluster(master_args=PIPELINE)
    data = mp4_bytes(os.urandom(256 * 1024))
    upload = await cluster.client().start_upload("handed.mp4", "video/mp4")
    await upload.write(data[: len(data) // 2])
    nodes = chain_of(cluster)
    nodes[2].pause()
    await upload.write(data[len(data) // 2 :])
    await asyncio.sleep(0.5)  # the rest goes down the chain, into the frozen tail's buffers
    nodes[2].kill()
    async with asyncio.timeout(20):
        video = await upload.finish()
    assert video["sha256"] == hashlib.sha256(data).hexdigest()
    assert ports(nodes[:2]) <= ports(holders_of(cluster, data))


async def test_middle_killed_is_recovered_and_commits_on_the_head_and_the_tail(fresh_cluster):
    """SIGKILL of the middle node: the head reports it lost, the master re-forms the chain
    over the head and the tail (cut off, but alive) at their last acknowledged byte and
    resends the rest; the upload commits on those two, byte-identical, with no copy made
    afterwards."""
    cluster = fresh_cluster(datanodes=4, master_args=PIPELINE)
    data = mp4_bytes(os.urandom(6 * MIB))
    nodes: list[Role] = []
    video = await upload_with_fault(
        cluster, "middle.mp4", data, lambda chain: (nodes.extend(chain), chain[1].kill())
    )
    assert video["sha256"] == hashlib.sha256(data).hexdigest()
    assert ports(holders_of(cluster, data)) == ports([nodes[0], nodes[2]])
    log = (cluster.root / "logs" / "master.log").read_text()
    assert "lost mid-chain" in log and "copied to" not in log
    assert await read_back(cluster, "middle.mp4", len(data)) == data


@pytest.mark.parametrize("fault", ["kill", "pause"], ids=["sigkill", "sigstop"])
async def test_head_lost_mid_upload_is_recovered_and_commits_on_the_other_two(fresh_cluster, fault):
    """SIGKILL or SIGSTOP of the chain's first node 8 MiB into a 32 MiB upload (3
    receivers, --min-replicas 2): the master re-forms the chain over the other two at
    their last acknowledged byte, resends the rest from its replay buffer, and the upload
    commits on them; the bytes read back are identical and the lost head holds no copy."""
    cluster = fresh_cluster(master_args=(*PIPELINE, "--stall-timeout", "1"))
    data = mp4_bytes(os.urandom(32 * MIB))
    nodes: list[Role] = []

    def hit(chain: list[Role]) -> None:
        nodes.extend(chain)
        getattr(chain[0], fault)()

    try:
        video = await upload_with_fault(cluster, "head.mp4", data, hit, at=8 * MIB)
    finally:
        if fault == "pause" and nodes:
            nodes[0].resume()
    assert video["sha256"] == hashlib.sha256(data).hexdigest()
    assert ports(holders_of(cluster, data)) == ports(nodes[1:])
    assert "the head" in (cluster.root / "logs" / "master.log").read_text()
    assert await read_back(cluster, "head.mp4", len(data)) == data


async def test_head_frozen_after_the_last_byte_is_recovered_at_the_end(fresh_cluster):
    """SIGSTOP of the chain's first node once the whole chain has every byte (the tail's
    file holds all but its last write batch), before End: the master takes the silent head for lost, resumes the other two at their last
    acknowledged byte (the end, or just before it), sends End to them and the upload
    commits on them, byte-identical. (Woken, the head may still read the End the master
    had queued for it and complete its own copy, checked against size and sha256: a whole
    extra replica, which the test allows.)"""
    cluster = fresh_cluster(master_args=(*PIPELINE, "--stall-timeout", "1"))
    data = mp4_bytes(os.urandom(4 * MIB))
    upload = await cluster.client().start_upload("end.mp4", "video/mp4")
    await upload.write(data)
    nodes = chain_of(cluster)

    def tail_has_all() -> bool:
        # The last batch of bytes goes to the file only at End (WRITE_BATCH_BYTES).
        held = len(data) - WRITE_BATCH_BYTES
        return any(path.stat().st_size >= held for path in cluster.folder(nodes[2]).glob("*.open"))

    await wait_until(tail_has_all, "the tail holding every byte", 20)
    nodes[0].pause()
    try:
        video = await upload.finish()
    finally:
        nodes[0].resume()
    assert video["sha256"] == hashlib.sha256(data).hexdigest()
    assert ports(holders_of(cluster, data)) >= ports(nodes[1:])
    assert await read_back(cluster, "end.mp4", len(data)) == data


async def test_a_chain_node_killed_mid_upload_deletes_its_partial_copy_when_restarted(fresh_cluster):
    """SIGKILL of the tail mid-upload, then a restart of it (same data directory): the
    upload commits on the other two, and the restarted node deletes the copy it was
    writing, which nothing can resume any more; nothing but the committed blobs stays."""
    cluster = fresh_cluster(master_args=PIPELINE)
    data = mp4_bytes(os.urandom(6 * MIB))
    nodes: list[Role] = []
    video = await upload_with_fault(
        cluster, "restarted.mp4", data, lambda chain: (nodes.extend(chain), chain[2].kill())
    )
    assert video["sha256"] == hashlib.sha256(data).hexdigest()
    assert any(path.suffix == ".open" for path in cluster.data_files(nodes[2]))
    restarted = cluster.start_datanode(port=nodes[2].port)
    await wait_until(lambda: not cluster.stray_files(), "no partial copy left anywhere", 20)
    assert "left by a previous run" in restarted.log_path.read_text()


async def test_head_and_middle_killed_fail_the_upload_cleanly(fresh_cluster):
    """With two of three chain nodes killed mid-upload only one copy could be kept, fewer
    than --min-replicas 2: the upload is refused with a sentence and the surviving node's
    partial copy is deleted."""
    cluster = fresh_cluster(master_args=PIPELINE)
    data = mp4_bytes(os.urandom(6 * MIB))
    nodes: list[Role] = []
    with pytest.raises(RequestFailed, match="2 are needed"):
        await upload_with_fault(
            cluster, "lost.mp4", data, lambda chain: (nodes.extend(chain), chain[0].kill(), chain[1].kill())
        )
    assert await cluster.client().list() == []
    await wait_until(lambda: not cluster.data_files(nodes[2]), "the survivor cleaned", 20)


async def test_a_hop_that_gave_up_on_a_silent_next_hop_does_not_reuse_that_connection(fresh_cluster):
    """The tail freezes (SIGSTOP) after acknowledging every byte, before End: the node
    before it waits for the tail's answer, takes it for lost after its stall timeout and
    answers with its own copy. The next blob it passes on to the woken tail gets a new
    connection and the tail joins its chain. Before, the connection the silent tail was
    still answering on went back to the pool, and the next blob read the tail's late
    answer to the old blob as its opening ("malformed chain write opening"): a healthy
    tail was dropped, one copy fewer."""
    cluster = fresh_cluster(datanodes=2)
    head, tail = cluster.datanodes
    # The test is the node before the head: a plain link, as a datanode's (no TLS here).
    link = await links.connect(head.host, head.port, None, "datanode")
    data = os.urandom(64 * 1024)
    await link.write_frame(ChainWriteBlob(blob_id="e" * 32, downstream=[tail.address]))
    assert (await link.read_expected(Ok, timeout=5)).info["chain"] == [head.address, tail.address]
    await link.write_chunk(data)
    while (await link.read_expected(ChainAck, timeout=5)).offset < len(data):
        pass  # until the head and the tail behind it both hold every byte
    tail.pause()
    try:
        await link.write_frame(End(size=len(data), sha256=hashlib.sha256(data).hexdigest()))
        answer = (await link.read_expected(Ok, timeout=20)).info
    finally:
        tail.resume()
    assert answer["stored"] == [head.address] and tail.address in answer["failed"]
    await link.write_frame(ChainWriteBlob(blob_id="f" * 32, downstream=[tail.address]))
    opening = (await link.read_expected(Ok, timeout=10)).info
    assert opening["chain"] == [head.address, tail.address], opening["failed"]
    link.abort()


async def test_a_datanode_takes_chain_writes_from_peers_but_plain_writes_only_from_the_master(fresh_cluster):
    """Role authorization on the datanode's links: another datanode may pass a blob on
    (ChainWriteBlob) or resume one (ChainResumeBlob) but not write one directly
    (WriteBlob); a web certificate may do none of it. A resume of a blob the node never
    chain-wrote is refused: nothing else (a resumable upload's open blob) can be cut."""
    cluster = fresh_cluster(tls=True)
    node = cluster.datanodes[0]
    ca = cluster.root / "certs" / "ca"
    for role, request, refusal in (
        ("datanode", ChainWriteBlob(blob_id="a" * 32, downstream=[]), None),
        ("datanode", WriteBlob(blob_id="b" * 32), "a datanode may not send WriteBlob"),
        ("web", ChainWriteBlob(blob_id="c" * 32, downstream=[]), "a web may not send ChainWriteBlob"),
        ("web", ChainResumeBlob(blob_id="d" * 32, offset=0, downstream=[]), "a web may not send ChainResume"),
        ("datanode", ChainResumeBlob(blob_id="d" * 32, offset=0, downstream=[]), "no partial chain copy"),
    ):
        tls = tls_contexts.load(
            certs.issue(ca, role, f"probe-{role}", cluster.root / "certs" / f"probe-{role}"), role
        )
        link = await links.connect(node.host, node.port, tls, "datanode")
        await link.write_frame(request)
        if refusal is None:
            assert (await link.read_expected(Ok, timeout=5)).info["chain"] == [node.address]
        else:
            with pytest.raises(RequestFailed, match=refusal):
                await link.read_expected(Ok, timeout=5)
        link.abort()


@pytest.mark.parametrize(
    "info",
    [
        {},
        {"stored": "a:1", "failed": {}, "size": 1, "sha256": "x"},
        {"stored": ["a:1", 7], "failed": {}, "size": 1, "sha256": "x"},
        {"stored": ["a:1"], "failed": {"b:2": 3}, "size": 1, "sha256": "x"},
        {"stored": ["a:1"], "failed": {}, "size": True, "sha256": "x"},
        {"stored": ["a:1"], "failed": {}, "size": 1, "sha256": None},
    ],
)
def test_a_malformed_final_answer_is_a_protocol_error(info):
    """A hop's answer is peer input: anything but the documented shape is refused."""
    with pytest.raises(protocol.ProtocolError):
        chain.parse_result(info)


def test_final_answer_and_opening_are_read_back():
    info = {"stored": ["a:1", "b:2"], "failed": {"c:3": "gone"}, "size": 5, "sha256": "ab"}
    assert chain.parse_result(info) == (["a:1", "b:2"], {"c:3": "gone"}, 5, "ab")
    assert chain.parse_opening({"chain": ["a:1"], "failed": {}}) == (["a:1"], {})
    with pytest.raises(protocol.ProtocolError):
        chain.parse_opening({"chain": [], "failed": {}})  # a node that accepts is in its chain
