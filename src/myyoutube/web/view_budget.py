"""How many viewers one client address may bring to one video (pure; `now` passed in).

Theory of operation
-------------------
A view is counted once per viewer id and video within views.VIEW_WINDOW_S (the master's
RecentViews). The viewer id is a cookie the browser sends back, so a client that makes up
a new one for every request (any 32 hex digits will do) would count a view with each:
fifty in a second from one address, and a video pushed up the "most viewed" order at will.

So each client address (auth.client_address) may count views of one video under at most
MAX_VIEWERS_PER_ADDRESS different viewer ids within the window: a household or an office
behind one address watching the same video. Past that, its views of that video count
under the address alone, which the master counts once per window, as it does for a
client without the cookie. Memory is bounded: at most MAX_ADDRESSES (address, video)
pairs are remembered, the least recently used forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict

from myyoutube.master.views import VIEW_WINDOW_S

# Different people behind one address watching the same video within the window.
MAX_VIEWERS_PER_ADDRESS = 20

# (address, video) pairs remembered: each holds up to MAX_VIEWERS_PER_ADDRESS ids of 32
# characters, so ~2 KB at worst, ~20 MB for all of them.
MAX_ADDRESSES = 10_000


def address_viewer(address: str) -> str:
    """The viewer id of a client known only by its address."""
    return f"address:{address}"


def is_address_viewer(viewer: str) -> bool:
    return viewer.startswith("address:")


class ViewBudget:
    def __init__(
        self,
        per_address: int = MAX_VIEWERS_PER_ADDRESS,
        window_s: float = VIEW_WINDOW_S,
        capacity: int = MAX_ADDRESSES,
    ) -> None:
        self.per_address, self.window_s, self.capacity = per_address, window_s, capacity
        # (address, video) -> (when the first of its viewer ids was seen, those ids)
        self._seen: OrderedDict[tuple[str, str], tuple[float, set[str]]] = OrderedDict()

    def viewer(self, address: str, video: str, cookie_viewer: str, now: float) -> str:
        """The id to count a view of `video` under: the viewer's own, or the address's
        once `address` has used up its budget."""
        key = (address, video)
        started, viewers = self._seen.pop(key, (now, set()))
        if now - started >= self.window_s:
            started, viewers = now, set()
        if cookie_viewer not in viewers and len(viewers) < self.per_address:
            viewers.add(cookie_viewer)
        self._seen[key] = (started, viewers)  # most recently used last
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return cookie_viewer if cookie_viewer in viewers else address_viewer(address)
