"""Which views count: once per viewer and video within a window, not once per request.

Theory of operation
-------------------
A player fetches one video in many range requests, and the web front end reports a view
only when a stream starts at byte 0; even so, a reload, a replay or Safari's probe of
bytes 0-1 followed by the real request would each count again. `RecentViews` remembers
which (viewer, video) pairs were counted in the last VIEW_WINDOW_S and refuses to count
them again until then: one view per viewer session per video, as YouTube and PeerTube
count them.

Pairs are kept in the order they were counted, so expiry pops from the front. Memory is
bounded by MAX_RECENT_VIEWS pairs; past it the oldest pair is forgotten early (that
viewer's next view of that video counts again sooner). Nothing here is persisted: a
master restart forgets the window, which at worst counts a few views twice. Time is
passed in (`now`, seconds on a clock that does not go backwards), no clock is read.
"""

from __future__ import annotations

from collections import OrderedDict

# One viewing session: a viewer counted for a video is not counted again for it within
# this long. PeerTube uses a similar per-IP window; 30 minutes is the usual web "session".
VIEW_WINDOW_S = 30 * 60.0

# (viewer, video) pairs remembered at once: 100,000 pairs is about 25 MB at worst (long
# names), and covers 55 new views a second sustained for the whole window.
MAX_RECENT_VIEWS = 100_000

# A viewer id is a cookie value or an address the web front end chose; anything longer is
# not one of them.
MAX_VIEWER_CHARS = 64


class RecentViews:
    def __init__(self, window_s: float = VIEW_WINDOW_S, capacity: int = MAX_RECENT_VIEWS) -> None:
        self.window_s = window_s
        self.capacity = capacity
        self._counted: OrderedDict[tuple[str, str], float] = OrderedDict()  # pair -> counted at

    def __len__(self) -> int:
        return len(self._counted)

    def first_in_window(self, viewer: str, video: str, now: float) -> bool:
        """True if this view counts (remembering it), False if the pair was counted within
        the window."""
        while self._counted:
            oldest, counted_at = next(iter(self._counted.items()))
            if now - counted_at < self.window_s:
                break
            del self._counted[oldest]
        pair = (viewer, video)
        if pair in self._counted:
            return False
        self._counted[pair] = now
        if len(self._counted) > self.capacity:
            self._counted.popitem(last=False)
        return True
