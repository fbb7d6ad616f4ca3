"""Pipeline recovery's rules (myyoutube.chain_acks), without sockets: the master's replay
buffer, what a datanode acknowledges upstream, which nodes a broken chain keeps, and
when a chain is formed again."""

from __future__ import annotations

import pytest

from myyoutube import protocol
from myyoutube.chain_acks import (
    REPLAY_BUFFER_BYTES,
    AckState,
    ReplayBuffer,
    after_loss,
    formed_short,
    survivors,
)


def test_replay_buffer_keeps_what_is_not_acknowledged_and_resends_from_an_offset():
    """Acked chunks are let go; a resume from any offset at or after the last ack gets
    exactly the bytes from there on, the first chunk cut where the offset falls."""
    replay = ReplayBuffer(limit_bytes=10)
    for piece in (b"abcd", b"efgh", b"ij"):
        replay.append(piece)
    assert (replay.end, replay.unacked, replay.full) == (10, 10, True)
    replay.acknowledge(6)
    assert (replay.acked, replay.unacked, replay.full) == (6, 4, False)
    assert b"".join(replay.since(6)) == b"ghij"
    assert b"".join(replay.since(10)) == b""
    with pytest.raises(ValueError):
        replay.since(3)  # "abcd" was let go: nobody may need it again


def test_replay_buffer_refuses_acks_that_cannot_be_true():
    """An ack is peer input: one going backwards or past what was sent is a protocol
    error (the head is then treated as failed), and the buffer is left as it was."""
    replay = ReplayBuffer()
    replay.append(b"x" * 100)
    replay.acknowledge(40)
    for bad in (39, 101, -1):
        with pytest.raises(protocol.RemoteProtocolError):
            replay.acknowledge(bad)
    assert replay.acked == 40
    assert b"".join(replay.since(40)) == b"x" * 60


def test_replay_buffer_default_is_a_few_mib():
    """The bound that makes the master wait for acks: a few MiB per upload."""
    assert 1024 * 1024 <= REPLAY_BUFFER_BYTES <= 16 * 1024 * 1024
    replay = ReplayBuffer()
    replay.append(b"\0" * REPLAY_BUFFER_BYTES)
    assert replay.full


# The nodes a linked node's tests ask to be behind it.
BEHIND = ["b:2", "c:3"]


def linked_node(nbytes: int, behind_acked: int | None = None) -> AckState:
    """A node with a next hop that has passed on and written `nbytes`, and heard the next
    hop acknowledge `behind_acked` (if given)."""
    acks = AckState(0)
    acks.linked(BEHIND)
    acks.forward(nbytes)
    acks.wrote(nbytes)
    if behind_acked is not None:
        acks.heard(behind_acked, [])
    return acks


def test_a_node_acknowledges_the_least_of_its_own_bytes_and_its_next_hops_ack():
    """What the chain from a node on holds: its own written bytes, capped by what its next
    hop acknowledged; nothing new is sent twice."""
    acks = linked_node(100)
    assert acks.take() is None  # the next hop has acknowledged nothing yet
    acks.heard(60, [])
    assert acks.take() == (60, [])
    assert acks.take() is None
    acks.heard(100, [])
    assert acks.take() == (100, [])


def test_the_tail_acknowledges_its_own_bytes_from_its_resume_offset():
    acks = AckState(500)
    assert acks.take() is None
    acks.wrote(10)
    assert acks.take() == (510, [])


def test_losing_a_hop_with_nodes_behind_it_freezes_the_ack_and_reports_it():
    """The nodes cut off behind a dropped hop hold at least its last ack, so the ack stays
    there (the master resumes them from it) and names the lost node."""
    acks = linked_node(300, behind_acked=200)
    acks.dropped("b:2", cut_off=True)
    acks.wrote(100)
    assert acks.take() == (200, ["b:2"])
    acks.heard(300, [])  # a late ack from the dropped hop changes nothing
    assert acks.offset == 200


def test_losing_the_tail_lets_the_ack_follow_the_node_again():
    """A dropped tail cuts nobody off: the chain goes on one shorter."""
    acks = linked_node(300, behind_acked=100)
    acks.dropped("c:3", cut_off=False)
    assert acks.take() == (300, ["c:3"])


def test_losses_reported_from_behind_are_passed_on_once():
    acks = linked_node(10)
    acks.heard(10, ["c:3"])
    assert acks.take() == (10, ["c:3"])
    acks.heard(10, ["c:3"])
    assert acks.take() is None


def test_nodes_never_behind_us_reported_lost_are_not_passed_on():
    """A next hop that names as lost nodes we never asked to be behind us (a confused or
    hostile datanode: thousands of made-up names per ack) is not believed, so our acks
    upstream stay as small as our chain. Before, every name was kept for the whole write
    and sent upstream again with each ack."""
    acks = linked_node(10)
    acks.heard(10, [f"made-up-{number}:1" for number in range(10_000)] + ["c:3"])
    assert acks.take() == (10, ["c:3"])


def test_a_next_hop_acknowledging_more_than_it_was_sent_is_a_protocol_error():
    acks = AckState(0)
    acks.linked(BEHIND)
    acks.forward(50)
    with pytest.raises(protocol.RemoteProtocolError):
        acks.heard(51, [])
    acks.heard(20, [])
    with pytest.raises(protocol.RemoteProtocolError):
        acks.heard(10, [])  # acks never go backwards


@pytest.mark.parametrize(
    ("lost", "remaining", "re_form"),
    [
        (["c"], ["a", "b"], False),  # the tail: the chain simply goes on shorter
        (["b"], ["a", "c"], True),  # the middle: c is cut off, alive
        (["b", "c"], ["a"], False),  # everything behind a: nobody to re-join
        (["a"], ["b", "c"], True),
        (["x"], ["a", "b", "c"], False),  # not in the chain (already dropped)
    ],
)
def test_after_loss_re_forms_only_when_a_live_node_was_cut_off(lost, remaining, re_form):
    assert after_loss(["a", "b", "c"], lost) == (remaining, re_form)


def test_survivors_keep_the_chain_order():
    assert survivors(["a", "b", "c"], {"a"}) == ["b", "c"]
    assert survivors(["a", "b", "c"], {"b"}) == ["a", "c"]


@pytest.mark.parametrize(
    ("chain", "offered", "failed", "again"),
    [
        (["a", "b", "c"], {"a", "b", "c"}, {}, False),  # formed in full
        (["a", "c"], {"a", "b", "c", "d"}, {"b"}, True),  # d, placed for b, is left out
        (["a", "c"], {"a", "b", "c"}, {"b"}, False),  # nobody left to take b's place
        (["a"], {"a", "b", "c", "d"}, {"b", "c", "d"}, False),  # every other node failed
        (["a", "c", "d"], {"a", "b", "c", "d"}, {"b"}, False),  # three: enough
    ],
)
def test_a_chain_is_formed_again_only_for_a_node_it_left_out(chain, offered, failed, again):
    """A chain formed short of three nodes is formed again only when a node offered to
    it is neither in it nor failed (placed after a refusal, too late for the chain)."""
    assert formed_short(chain, offered, failed, replication=3) is again
