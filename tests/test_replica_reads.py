"""Tests for myyoutube.replica_reads: what a read says when no replica can serve it, and
what it gives back when its reader leaves."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from myyoutube import replica_reads
from myyoutube.replica_reads import ReplicationFailed

pytestmark = pytest.mark.fast


async def test_a_blob_no_running_node_holds_is_not_worth_retrying():
    """A video listed with no copy on a running node (restored from a backup after its
    copies were deleted) answered "No copy of the video could be read from byte 0 (0
    tried); try again shortly.", which never comes true; it now says that no running
    datanode holds a copy."""

    async def consume(data: bytes) -> None:
        raise AssertionError("nothing can be read")

    with pytest.raises(ReplicationFailed) as failed:
        await replica_reads.relay_blob("b" * 32, 0, 100, [], {}, consume, lambda node, why: None, 1.0)
    assert str(failed.value) == (
        "No running datanode holds a copy of this video; it can be read again only once one that holds it is back."
    )


class LateReplica:
    """A connection pool of one replica whose first chunk comes only when the test says
    (`deliver`): it stands in for the sockets, so that the race's bookkeeping of who
    holds which connection can be driven to the exact moment under test."""

    has_idle = True  # a pooled link is there: the first replica is asked in the reader's task

    def __init__(self, name: str, released: list[str]) -> None:
        self.name, self.released = name, released
        self.answer: asyncio.Future = asyncio.get_running_loop().create_future()

    async def start(self, attempt):
        return self, None  # connected and asked; the first chunk is late

    @property
    def connection(self):
        return self

    async def read_expected(self, kind, timeout=None):
        return await self.answer

    def deliver(self, data: bytes) -> None:
        self.answer.set_result(SimpleNamespace(data=data))

    def release(self, lease) -> None:
        self.released.append(lease.name)


async def test_a_reader_who_leaves_as_a_hedged_replica_delivers_gives_every_connection_back():
    """The viewer leaves (its read is cancelled) in the very loop turn in which a late
    replica's first chunk arrives. Every connection the read took goes back to its pool:
    the one that delivered used to be kept forever (cancelling a finished attempt does
    nothing), holding a socket open on the datanode and its pool from ever emptying."""
    released: list[str] = []
    pools = {name: LateReplica(name, released) for name in ("first", "hedge")}
    read = replica_reads.ReplicaRead("b" * 32, 0, 10, ["first", "hedge"], pools, lambda node, why: None, 2.0)
    reader = asyncio.create_task(read.next_chunk())
    await asyncio.sleep(0.05)  # the first replica is late, so the hedge was asked too
    pools["first"].deliver(b"x" * 10)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    await asyncio.sleep(0.05)
    assert sorted(released) == ["first", "hedge"]
