"""The web front end's memory of where videos' parts are: the master's answers, reused briefly.

Theory of operation
-------------------
Each read the web makes from the datanodes starts with a round trip to the master
(LocateVideo): the master checks that the visitor may see the video and answers with
what the read needs of its record, the datanodes holding the part, and a grant to read
it (direct_reads.py). A player seeking asks range after range, and many viewers of one
video ask at once; on two cores that round trip cost a fifth of the whole cluster's CPU
per 64 KiB range (the master's lookup and answer, the web's send and receive). So the
web keeps each answer for LOCATION_FRESH_S, per (account, video, part): per account,
because what the master answers depends on who asks.

What reuse costs is that a change made elsewhere reaches new reads up to
LOCATION_FRESH_S late: a video deleted or made private through another web front end
or by an operator's tool talking to the master, an account demoted or removed there (a
demoted admin may read a private video it read a moment ago for that long; its
sessions are checked against the master on every request all the same). That window
is not new: a stream already under way reads on after such a change for as long as it
lasts. A change made through this web front end forgets every answer at once
(`forget_all`), so whoever made it sees it on their next request. The bytes are never
wrong: an answer names one blob, whose bytes never change, and a read whose holders all
fail asks the master afresh. A caller that holds a record it has just been given (a
conditional request's) asks the master too, so that the read matches it.

Only answers worth reusing are kept: those with at least one holder that is healthy as
the master sees it (`VideoLocation.healthy`). When every holder is suspect, or has just
failed a read, each read asks the master, which by then may know better.

Spreading: the master orders the holders anew for each answer, the healthy ones in a
random order first, so that reads spread over the replicas. An answer reused as it came
would send every read of the moment to its first node; each reuse shuffles the healthy
ones instead.

Pure: time comes in as `now` (any monotonic seconds), randomness as `rng`; no I/O.
"""

from __future__ import annotations

import dataclasses
import random

from myyoutube.protocol import VideoLocation

# How long an answer is reused. Long enough that a player's bursts of ranges, and the
# viewers of a popular video, share one answer; short enough that a change made through
# another web front end (a delete, a video made private) is seen within a moment, and
# that a holder the master has since found dead is left after about as long.
LOCATION_FRESH_S = 1.0

# Answers kept at most: one per (account, video, part) read in the last
# LOCATION_FRESH_S, so a busy web front end's working set, with room to spare; past it
# the oldest go first (which costs only round trips). An answer holds the video's record
# with every part, up to ~4 KiB for a video with all its renditions, so this bounds the
# memory at ~8 MiB whatever the visitors ask.
MAX_LOCATIONS = 2048

# (account, video name, part): what the master's answer depends on.
Key = tuple[str, str, str]


class LocationCache:
    """The master's recent LocateVideo answers, by (account, video, part)."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._answers: dict[Key, tuple[float, VideoLocation]] = {}  # oldest first
        self._rng = rng or random.Random()
        # Counts forget_all() calls. A caller notes it before asking the master and
        # hands it to put(): an answer asked for before a change made here, and arriving
        # after it, may describe the video as it was, and is not kept.
        self.generation = 0

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: Key, now: float) -> VideoLocation | None:
        """The answer kept for `key` if it is fresh at `now`, its healthy holders
        shuffled; None if there is none."""
        kept = self._answers.get(key)
        if kept is None:
            return None
        stored_at, location = kept
        if not 0 <= now - stored_at < LOCATION_FRESH_S:  # stale, or a clock that went back
            del self._answers[key]
            return None
        return dataclasses.replace(location, nodes=spread(location.nodes, location.healthy, self._rng))

    def put(self, key: Key, location: VideoLocation, now: float, asked_in: int) -> None:
        """Keep the master's answer for `key`, asked for at `now`, if it is worth reusing
        and no change was made here since it was asked for (`asked_in`: the generation
        then)."""
        self._answers.pop(key, None)  # re-inserted last: the newest
        if asked_in != self.generation or not 0 < location.healthy <= len(location.nodes):
            return
        while len(self._answers) >= MAX_LOCATIONS:
            del self._answers[next(iter(self._answers))]
        self._answers[key] = (now, location)

    def forget(self, key: Key) -> None:
        """Ask the master next time: a read on this answer found no holder to start on."""
        self._answers.pop(key, None)

    def forget_all(self) -> None:
        """A video or an account changed through this web front end."""
        self._answers.clear()
        self.generation += 1


def spread(nodes: list[str], healthy: int, rng: random.Random) -> list[str]:
    """`nodes` with its first `healthy` ones in a random order, the rest as they were."""
    leading = nodes[:healthy]
    rng.shuffle(leading)
    return leading + nodes[healthy:]
