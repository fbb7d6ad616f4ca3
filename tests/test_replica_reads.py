"""Tests for myyoutube.replica_reads: what a read says when no replica can serve it."""

from __future__ import annotations

import pytest

from myyoutube import replica_reads
from myyoutube.replica_reads import ReplicationFailed


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
