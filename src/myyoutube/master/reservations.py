"""Quota held by uploads in progress, so concurrent uploads of one account see each other (pure).

Theory of operation
-------------------
An account's quota counts the videos it has stored. An upload in progress is not stored
yet, so two uploads started together would each be checked against the same total and
could both pass, ending far past the quota. Instead each upload holds the bytes it has
declared or received so far; an upload may grow its hold only while the account's holds
together fit in the room the quota leaves (`room_left`: quota minus what is stored). The
room is passed in by the caller, who reads the stored total (an O(videos) sum) when the
upload starts, every RECHECK_BYTES of growth, and once more at its end, before commit:
whatever happened meanwhile, no commit takes an account past its quota. A hold is
released when its upload commits (in the same step, so the bytes are never counted twice)
or fails.
"""

from __future__ import annotations

from myyoutube import permissions

# How far an upload may grow between two readings of the account's stored total. The
# final check before commit is exact whatever this is; it only bounds how long an upload
# that can no longer fit runs before being told so.
RECHECK_BYTES = 64 * 1024**2


def room_left(user: permissions.User) -> int | None:
    """Bytes the account may still store besides what is stored; None for unlimited."""
    if permissions.within_quota(user, 2**62):
        return None
    assert user.quota_bytes is not None, "only a quota limits an account"
    return max(0, user.quota_bytes - user.used_bytes)


class Reservations:
    """Bytes held per account by each of its uploads in progress (keyed by video name)."""

    def __init__(self) -> None:
        self._holds: dict[str, dict[str, int]] = {}

    def held(self, account: str, besides: str | None = None) -> int:
        """Bytes the account's uploads hold, not counting upload `besides`."""
        return sum(size for key, size in self._holds.get(account, {}).items() if key != besides)

    def hold(self, account: str, key: str, size: int, room: int | None) -> bool:
        """Make upload `key` hold `size` bytes if, with the account's other holds, that
        fits in `room` (None: unlimited); False, changing nothing, if it does not."""
        if room is not None and self.held(account, besides=key) + size > room:
            return False
        self._holds.setdefault(account, {})[key] = size
        return True

    def release(self, account: str, key: str) -> None:
        holds = self._holds.get(account, {})
        holds.pop(key, None)
        if not holds:
            self._holds.pop(account, None)
