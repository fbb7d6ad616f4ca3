"""Quota held by uploads in progress (myyoutube.master.reservations), without I/O."""

from __future__ import annotations

from myyoutube.master.reservations import Reservations, room_left
from myyoutube.permissions import ADMIN, UPLOADER, User

MIB = 1024**2


def test_concurrent_uploads_of_one_account_share_its_room():
    """Two uploads of one account, each fitting the room alone, cannot both grow past it
    together; the refused growth changes nothing, and a release gives the room back."""
    holds = Reservations()
    room = 3 * MIB
    assert holds.hold("ulla", "a.mp4", 2 * MIB, room)
    assert holds.hold("ulla", "b.mp4", 1 * MIB, room)
    assert not holds.hold("ulla", "b.mp4", 2 * MIB, room)
    assert holds.held("ulla") == 3 * MIB
    holds.release("ulla", "a.mp4")
    assert holds.hold("ulla", "b.mp4", 2 * MIB, room)
    assert holds.held("ulla") == 2 * MIB


def test_accounts_hold_separately_and_unlimited_ones_always_fit():
    """One account's uploads never use another's room; an unlimited account (room None)
    is never refused."""
    holds = Reservations()
    assert holds.hold("ulla", "a.mp4", 3 * MIB, 3 * MIB)
    assert holds.hold("olga", "a.mp4", 3 * MIB, 3 * MIB)
    assert holds.hold("admin", "big.mp4", 10**15, None)
    holds.release("olga", "a.mp4")
    holds.release("olga", "a.mp4")  # twice (the failure path and the finally) is harmless
    assert holds.held("olga") == 0 and holds.held("ulla") == 3 * MIB


def test_room_left_is_quota_minus_stored_and_none_for_unlimited():
    """The room is what the quota leaves after stored videos; admins and accounts without
    a quota have no limit."""
    assert room_left(User("ulla", UPLOADER, quota_bytes=5 * MIB, used_bytes=2 * MIB)) == 3 * MIB
    assert room_left(User("ulla", UPLOADER, quota_bytes=1 * MIB, used_bytes=2 * MIB)) == 0
    assert room_left(User("root", ADMIN, quota_bytes=1, used_bytes=0)) is None
    assert room_left(User("free", UPLOADER, quota_bytes=None)) is None
