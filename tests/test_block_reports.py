"""Incremental block reports with real processes: full reports when the master lost track,
deltas otherwise, and nothing a datanode's disk went through is missed.

Each datanode's entry on /api/status says how many full reports the master applied from
the running process (`full_reports`) and the number of the last report of any kind
(`report_seq`, which every heartbeat advances): that is how these tests tell a full
report from a delta.
"""

from __future__ import annotations

import asyncio
import os

from harness import Cluster, holders_of, mp4_bytes, store, wait_until
from myyoutube import links
from myyoutube import stream as streams
from myyoutube.protocol import (
    MAX_REPORT_BLOBS,
    BlockReportChunk,
    Commands,
    Heartbeat,
    Register,
)
from myyoutube.stream import PEER_TIMEOUT_S


async def report_state(cluster: Cluster) -> dict[str, tuple[int, int]]:
    """Each datanode's address -> (full reports applied, last report number)."""
    client = cluster.client()
    try:
        status = await client.status()
    finally:
        client.close()
    return {n["address"]: (n["full_reports"], n["report_seq"]) for n in status["datanodes"]}


async def wait_for_reports(cluster: Cluster, full: int, what: str, timeout_s: float = 15) -> None:
    """Until every datanode has had exactly `full` full reports applied and sent deltas since."""

    async def settled() -> bool:
        states = await report_state(cluster)
        return len(states) == len(cluster.datanodes) and all(
            f == full and seq > 3 for f, seq in states.values()
        )

    await wait_until(settled, what, timeout_s)


def live_copies(cluster: Cluster, data: bytes) -> int:
    return sum(node.alive() for node in holders_of(cluster, data))


def delete_replica_by_hand(cluster: Cluster, data: bytes) -> None:
    victim = holders_of(cluster, data)[0]
    for path in cluster.data_files(victim):
        if path.suffix == ".blob" and path.read_bytes() == data:
            path.unlink()
            path.with_suffix(".crc").unlink()


async def test_heartbeats_are_deltas_and_a_restarted_master_asks_for_full_reports(fresh_cluster):
    """Heartbeats carry deltas (one full report per datanode at start-up). After kill -9
    and a restart the master knows nothing, so it asks every datanode for a full report;
    then deltas alone carry a replica deleted by hand and a deleted video's copies."""
    cluster = fresh_cluster()
    data = mp4_bytes(os.urandom(300_000))
    await store(cluster, "reported.mp4", data)
    await wait_for_reports(cluster, 1, "one full report each, then deltas")
    before = await report_state(cluster)
    await asyncio.sleep(cluster.heartbeat_s * 5)
    after = await report_state(cluster)
    assert all(after[a][0] == 1 and after[a][1] > before[a][1] for a in before)  # deltas only

    cluster.master.kill()
    cluster.restart_master()
    await wait_for_reports(cluster, 1, "a full report each for the new master")

    delete_replica_by_hand(cluster, data)
    await wait_until(lambda: live_copies(cluster, data) == 3, "replica re-made", 30)
    client = cluster.client()
    await client.delete("reported.mp4")
    client.close()
    await wait_until(lambda: holders_of(cluster, data) == [], "every copy deleted", 15)
    assert all(full == 1 for full, _ in (await report_state(cluster)).values())


async def test_reports_lost_with_their_connections_are_made_good_by_deltas(fresh_cluster):
    """The master stops answering (SIGSTOP) for longer than datanodes wait for an answer:
    their reports in flight are lost with their connections. A replica deleted by hand
    meanwhile still reaches the master once it is back, by delta: the datanodes reconnect
    as the same processes, and no full report is needed."""
    cluster = fresh_cluster(dead_after_s=60.0)  # the pause must not make them dead
    data = mp4_bytes(os.urandom(300_000))
    await store(cluster, "patient.mp4", data)
    await wait_for_reports(cluster, 1, "one full report each, then deltas")
    cluster.master.pause()
    delete_replica_by_hand(cluster, data)
    await asyncio.sleep(PEER_TIMEOUT_S + 2)
    cluster.master.resume()
    await wait_until(lambda: live_copies(cluster, data) == 3, "replica re-made", 30)
    assert all(full == 1 for full, _ in (await report_state(cluster)).values())
    assert "unreachable" in "".join(n.log_path.read_text() for n in cluster.datanodes)


async def test_restarted_datanode_reports_in_full_what_changed_while_it_was_down(fresh_cluster):
    """A replica file deleted while its datanode was down is missing from the full report
    the restarted process sends (it has no deltas to tell): the copy is re-made."""
    cluster = fresh_cluster()
    data = mp4_bytes(os.urandom(300_000))
    await store(cluster, "resumed.mp4", data)
    victim = holders_of(cluster, data)[0]
    victim.kill()
    delete_replica_by_hand(cluster, data)
    cluster.start_datanode(port=victim.port)
    await wait_until(lambda: live_copies(cluster, data) == 3, "replica re-made", 30)
    assert (await report_state(cluster))[victim.address][0] == 1


async def test_bitrot_found_by_the_scrubber_travels_in_a_delta_and_is_repaired(fresh_cluster):
    """A rotten replica nobody reads is found by the scrubber, reported as a corrupt delta
    entry (no full report), deleted and re-made from a good copy."""
    cluster = fresh_cluster(datanode_args=("--scrub-interval", "0.5"))
    data = mp4_bytes(os.urandom(1_000_000))
    await store(cluster, "rotting.mp4", data)
    await wait_for_reports(cluster, 1, "one full report each, then deltas")
    rotten = holders_of(cluster, data)[0]
    path = next(p for p in cluster.folder(rotten).glob("*.blob") if p.read_bytes() == data)
    # Overwriting two bytes of a local file: too small to matter to the event loop.
    with open(path, "r+b") as file:  # noqa: ASYNC230
        file.seek(100)
        file.write(b"\xde\xad")
    await wait_until(lambda: live_copies(cluster, data) == 3, "rot repaired", 30)
    assert "corrupt; repairing" in cluster.master.log_path.read_text()
    assert all(full == 1 for full, _ in (await report_state(cluster)).values())


async def test_datanode_back_from_the_dead_reports_in_full_and_the_surplus_goes(fresh_cluster):
    """A holder paused past dead-after has its copy re-made elsewhere; when it comes back the
    master asks it for a full report, and exactly the surplus copy is deleted: 3 remain."""
    cluster = fresh_cluster(datanodes=4)
    data = mp4_bytes(os.urandom(300_000))
    await store(cluster, "returning.mp4", data)
    await wait_for_reports(cluster, 1, "one full report each, then deltas")
    absent = holders_of(cluster, data)[0]
    absent.pause()
    await wait_until(lambda: len(holders_of(cluster, data)) == 4, "copy re-made on the spare", 30)
    absent.resume()

    async def came_back_with_a_full_report() -> bool:
        return (await report_state(cluster))[absent.address][0] == 2

    await wait_until(came_back_with_a_full_report, "a second full report from the returning node", 15)
    await wait_until(lambda: len(holders_of(cluster, data)) == 3, "surplus copy deleted", 15)
    await asyncio.sleep(cluster.heartbeat_s * 5)
    assert len(holders_of(cluster, data)) == 3


async def test_master_asks_for_a_full_report_after_a_missed_delta(fresh_cluster):
    """A datanode whose delta is based on a report the master never applied (one went
    missing) is answered with a request for a full report, and the delta is not applied;
    the full report then restores the sequence. Spoken by a scripted datanode, since a
    real one never skips a report."""
    cluster = fresh_cluster(datanodes=0)
    control = await links.connect(cluster.master.host, cluster.master.port, None, "master")
    blob, other = "ab" * 16, "cd" * 16

    async def exchange(message) -> Commands:
        await control.write_frame(message)
        return await control.read_expected(Commands)

    def beat(seq: int, base_seq: int, added=()) -> Heartbeat:
        return Heartbeat(10**12, 0, seq, base_seq, list(added), [], [])

    try:
        assert (await exchange(Register("c" * 32, "127.0.0.1:9", 10**12, 0, "scripted"))).full_report
        answer = await exchange(BlockReportChunk(seq=1, total=1, blobs=[(blob, 10)], final=True))
        assert (answer.acked_seq, answer.full_report) == (1, False)
        assert (await exchange(beat(2, 1))).acked_seq == 2
        answer = await exchange(beat(4, 3, added=[(other, 5)]))  # report 3 went missing
        assert (answer.acked_seq, answer.full_report) == (2, True)
        answer = await exchange(BlockReportChunk(seq=5, total=2, blobs=[(blob, 10), (other, 5)], final=True))
        assert (answer.acked_seq, answer.full_report) == (5, False)
        assert (await exchange(beat(6, 5))).acked_seq == 6
    finally:
        control.abort()
    client = cluster.client()
    status = await client.status()
    client.close()
    node = next(n for n in status["datanodes"] if n["address"] == "127.0.0.1:9")
    assert (node["full_reports"], node["report_seq"], node["orphans"]) == (2, 6, 2)


async def test_oversized_report_closes_only_that_connection(fresh_cluster):
    """A full report declaring more than MAX_REPORT_BLOBS blobs is a protocol error: the
    master drops that connection before buffering anything, and keeps serving."""
    cluster = fresh_cluster(datanodes=0)
    control = await links.connect(cluster.master.host, cluster.master.port, None, "master")
    try:
        await control.write_frame(Register("d" * 32, "127.0.0.1:9", 10**12, 0, "greedy"))
        await control.read_expected(Commands)
        await control.write_frame(BlockReportChunk(seq=1, total=MAX_REPORT_BLOBS + 1, blobs=[], final=False))
        try:
            await control.read_frame(timeout=10)
            raise AssertionError("the master answered an oversized report")
        except streams.ConnectionClosed:
            pass
    finally:
        control.abort()
    client = cluster.client()
    assert (await client.status())["videos"] == 0
    client.close()
