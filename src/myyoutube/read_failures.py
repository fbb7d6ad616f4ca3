"""Which datanodes failed a read lately, so that new reads try them last (pure).

Theory of operation
-------------------
A read that fails or stalls on a replica fails over at once (replica_reads.py). The node
is then remembered for READ_FAILURE_MEMORY_S, and reads that start meanwhile try it
after the others: new viewers stop landing on a partitioned node long before the master
declares it dead. Remembered, not banned: it may be the only holder of some video, and
it is still tried, last. Whoever reads keeps one: the master for its relays and copies,
the web front end for the reads it makes from the datanodes itself.

Pure: time comes in as `now`; no clock reads, no I/O.
"""

from __future__ import annotations

# A node a read just failed on (error, stall) is tried last for this long: long enough
# that new viewers stop landing on a partitioned node before it is declared dead, short
# enough that a node back from a blip soon takes its share of reads again.
READ_FAILURE_MEMORY_S = 30.0

# The most nodes remembered. A cluster has a handful of datanodes, but one whose nodes
# take a new port at each restart shows new addresses for as long as it runs; past this
# bound the failures older than READ_FAILURE_MEMORY_S (which change nothing) are dropped.
MAX_REMEMBERED = 1024


class RecentFailures:
    def __init__(self) -> None:
        self._failed_at: dict[str, float] = {}  # node -> when a read from it last failed

    def failed(self, node: str, now: float) -> None:
        """A read from `node` failed or stalled at `now`."""
        if len(self._failed_at) >= MAX_REMEMBERED:
            self._failed_at = {n: t for n, t in self._failed_at.items() if not self._expired(t, now)}
        self._failed_at[node] = now

    def recently(self, node: str, now: float) -> bool:
        """Whether a read from `node` failed within READ_FAILURE_MEMORY_S of `now`."""
        failed_at = self._failed_at.get(node)
        return failed_at is not None and not self._expired(failed_at, now)

    def all_recently(self, nodes: list[str], now: float) -> bool:
        """Whether there are `nodes` and a read from each failed within
        READ_FAILURE_MEMORY_S of `now`."""
        return bool(nodes) and all(self.recently(node, now) for node in nodes)

    def tried_last(self, nodes: list[str], now: float) -> list[str]:
        """`nodes` in their order, except that those that failed recently go last."""
        return sorted(nodes, key=lambda node: self.recently(node, now))

    def forget(self, node: str) -> None:
        """Nobody is at `node` any more."""
        self._failed_at.pop(node, None)

    @staticmethod
    def _expired(failed_at: float, now: float) -> bool:
        return now - failed_at >= READ_FAILURE_MEMORY_S
