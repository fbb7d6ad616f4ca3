"""Write pipelines (chain.py, datanode/pipeline.py, master/pipeline.py) with real processes.

A cluster whose master runs with --write-pipeline: uploads go down a chain of datanodes.
The tests check the bytes on every datanode's disk (sha256), how many bytes the master
process wrote (its egress: /proc/PID/io wchar counts socket writes), and what happens
when a node of the chain is killed or frozen mid-upload.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from harness import Cluster, holders_of, mp4_bytes, store, wait_until
from myyoutube import certs, chain, links, protocol
from myyoutube.client import RequestFailed
from myyoutube.launch import Role
from myyoutube.protocol import ChainWriteBlob, Ok, WriteBlob

PIPELINE = ("--write-pipeline",)


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


async def upload_with_fault(cluster: Cluster, name: str, data: bytes, fault) -> dict:
    """Upload `data`; after its first part, apply `fault` to the datanodes of the chain."""
    upload = await cluster.client().start_upload(name, "video/mp4")
    await upload.write(data[: 2 * 1024 * 1024])
    fault(chain_of(cluster))
    await upload.write(data[2 * 1024 * 1024 :])
    return await upload.finish()


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


async def test_middle_killed_commits_on_the_head_and_a_copy_made_from_it(fresh_cluster):
    """SIGKILL of the middle node loses it and the tail: only the head stored the blob,
    so before the commit the master copies it from the head to the spare node, and the
    upload commits on two."""
    cluster = fresh_cluster(datanodes=4, master_args=PIPELINE)
    data = mp4_bytes(os.urandom(6 * 1024 * 1024))
    nodes: list[Role] = []
    video = await upload_with_fault(
        cluster, "middle.mp4", data, lambda chain: (nodes.extend(chain), chain[1].kill())
    )
    assert video["sha256"] == hashlib.sha256(data).hexdigest()
    (spare,) = [node for node in cluster.datanodes if node not in nodes]
    holders = holders_of(cluster, data)
    assert nodes[0] in holders and spare in holders
    assert "copied to" in (cluster.root / "logs" / "master.log").read_text()


async def test_head_killed_fails_the_upload_cleanly(fresh_cluster):
    """What the pipeline trades: SIGKILL of the chain's first node loses the bytes sent
    so far (no node has them all), so the upload is refused with a sentence and nothing
    of it stays on any disk (fan-out would have committed on the other two)."""
    cluster = fresh_cluster(datanodes=4, master_args=PIPELINE)
    data = mp4_bytes(os.urandom(6 * 1024 * 1024))
    nodes: list[Role] = []
    with pytest.raises(RequestFailed, match="datanodes could keep storing the video and 2 are needed"):
        await upload_with_fault(
            cluster, "lost.mp4", data, lambda chain: (nodes.extend(chain), chain[0].kill())
        )
    assert await cluster.client().list() == []
    for survivor in nodes[1:]:
        await wait_until(lambda node=survivor: not cluster.data_files(node), "survivors cleaned", 20)


async def test_a_datanode_takes_chain_writes_from_peers_but_plain_writes_only_from_the_master(fresh_cluster):
    """Role authorization on the datanode's links: another datanode may pass a blob on
    (ChainWriteBlob) but not write one directly (WriteBlob); a web certificate may do
    neither."""
    cluster = fresh_cluster(tls=True)
    node = cluster.datanodes[0]
    ca = cluster.root / "certs" / "ca"
    for role, request, allowed in (
        ("datanode", ChainWriteBlob(blob_id="a" * 32, downstream=[]), True),
        ("datanode", WriteBlob(blob_id="b" * 32), False),
        ("web", ChainWriteBlob(blob_id="c" * 32, downstream=[]), False),
    ):
        tls = certs.load(
            certs.issue(ca, role, f"probe-{role}", cluster.root / "certs" / f"probe-{role}"), role
        )
        link = await links.connect(node.host, node.port, tls, "datanode")
        await link.write_frame(request)
        if allowed:
            assert (await link.read_expected(Ok, timeout=5)).info["chain"] == [node.address]
        else:
            with pytest.raises(RequestFailed, match=f"a {role} may not send {type(request).__name__}"):
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
