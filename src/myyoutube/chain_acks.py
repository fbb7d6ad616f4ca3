"""Pipeline recovery's bookkeeping, without I/O: acks up a chain, the master's replay
buffer, and which nodes a broken chain goes on with.

Theory of operation
-------------------
A write pipeline (chain.py) sends each byte once, master -> dn1 -> dn2 -> dn3. Losing a
node must not lose the bytes the master already sent, so, as in HDFS, acknowledgements
flow back per chunk and the master keeps what is not yet acknowledged:

* **Acks** (`AckState`, one per datanode in a chain). A node acknowledges `offset` when
  it has written every byte before it and so has every node behind it that is still in
  the chain: min(its own written offset, what its next hop acknowledged). The tail's is
  its own. Each `ChainAck` also names the nodes lost behind the sender. A node that
  drops a next hop which had nodes behind it *freezes* its ack at the hop's last one:
  the nodes cut off behind it (alive, but no longer fed) hold at least that much, so
  the master can resume them from there; its report of the loss makes the master
  re-form the chain at once. Dropping the tail cuts nobody off: no freeze, and the chain
  simply goes on one shorter.
* **Replay buffer** (`ReplayBuffer`, the master's). Every chunk stays until the head
  acknowledges it, i.e. until the whole chain has it. At most REPLAY_BUFFER_BYTES wait
  unacknowledged; when the buffer is full the master waits for acks before taking the
  next chunk from the uploader: that is the pipeline's flow control, and it bounds the
  master's memory per upload whatever the chain's speed.
* **Recovery** (`after_loss`, `survivors`). On a failure the master sees (the head
  dead, frozen, or refusing; or a hop reported lost that had nodes behind it) it drops
  the failed nodes, reopens the survivors' partial copies at the head's last ack
  (`ChainResumeBlob`; each drops bytes past it, as AppendBlob does) and resends from
  the replay buffer. The last ack of the head is at most what every survivor holds, and
  never before the start of the replay buffer, so the resend is always possible.
* **Forming again** (`formed_short`). A chain forms once, over the nodes of its opening
  that accepted: nodes placed later to replace one that refused are not in it. Before
  any byte is sent, such a chain is formed anew (a new blob) over them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection

from myyoutube.protocol import RemoteProtocolError

# Bytes of one pipelined upload the master keeps until the whole chain acknowledged them.
# HDFS keeps at most 80 packets of 64 KiB (~5 MB) in flight; 16 chunks of 256 KiB is as
# much, enough for a chain of three on loopback to stay busy (bench/upload.py), and the
# master's memory per upload stays bounded by it.
REPLAY_BUFFER_BYTES = 16 * 256 * 1024


class ReplayBuffer:
    """The master's copy of the bytes sent down a chain and not yet acknowledged."""

    def __init__(self, limit_bytes: int = REPLAY_BUFFER_BYTES) -> None:
        self.limit_bytes = limit_bytes
        self._chunks: deque[bytes] = deque()
        self._start = 0  # offset of the first kept chunk
        self.acked = 0  # every byte before this is on every node of the chain
        self.end = 0  # bytes sent so far

    @property
    def unacked(self) -> int:
        return self.end - self.acked

    @property
    def full(self) -> bool:
        return self.unacked >= self.limit_bytes

    def append(self, data: bytes) -> None:
        self._chunks.append(data)
        self.end += len(data)

    def acknowledge(self, offset: int) -> None:
        """The chain has every byte before `offset` (peer input: checked)."""
        if not self.acked <= offset <= self.end:
            raise RemoteProtocolError(f"ack of {offset} bytes, outside {self.acked}..{self.end}")
        self.acked = offset
        while self._chunks and self._start + len(self._chunks[0]) <= offset:
            self._start += len(self._chunks.popleft())

    def since(self, offset: int) -> list[bytes]:
        """The bytes from `offset` to the end, to resend after a recovery."""
        if not self._start <= offset <= self.end:
            raise ValueError(f"offset {offset} is outside the replay buffer {self._start}..{self.end}")
        pieces, position = [], self._start
        for chunk in self._chunks:
            if position + len(chunk) > offset:
                pieces.append(chunk[max(0, offset - position) :])
            position += len(chunk)
        return pieces


class AckState:
    """What one datanode of a chain acknowledges upstream."""

    def __init__(self, offset: int) -> None:
        self.written = offset  # bytes on our own disk (page cache; fsynced at End)
        self.forwarded = offset  # bytes handed to our next hop
        self.behind: int | None = None  # our next hop's last ack; None without a next hop
        self.frozen = False  # dropped a hop that cut nodes off: `behind` stays as it was
        self.lost: list[str] = []  # nodes lost behind us, in the order we learned of them
        self._sent = (offset, 0)  # (offset, number of lost) last acknowledged upstream
        self._downstream: frozenset[str] = frozenset()  # the nodes that may be behind us

    def linked(self, downstream: Collection[str]) -> None:
        """A next hop accepted, at our current offset, to pass the blob on to `downstream`."""
        self.behind = self.forwarded = self.written
        self._downstream = frozenset(downstream)

    def forward(self, nbytes: int) -> None:
        self.forwarded += nbytes

    def wrote(self, nbytes: int) -> None:
        self.written += nbytes

    def heard(self, offset: int, lost: list[str]) -> None:
        """The next hop acknowledged `offset` (peer input: checked against what we sent)."""
        if self.behind is None or self.frozen:
            return  # a late ack from a hop already dropped
        if not self.behind <= offset <= self.forwarded:
            raise RemoteProtocolError(f"ack of {offset} bytes, outside {self.behind}..{self.forwarded}")
        self.behind = offset
        # Only nodes we asked to be behind us can be lost there: names a confused or
        # hostile hop makes up would otherwise pile up here for the whole write, every
        # one of our acks upstream carrying them all.
        self.lost += [node for node in lost if node in self._downstream and node not in self.lost]

    def dropped(self, node: str, cut_off: bool) -> None:
        """We dropped our next hop `node`; `cut_off`: nodes were behind it."""
        if node not in self.lost:
            self.lost.append(node)
        if cut_off:
            self.frozen = True
        elif not self.frozen:
            self.behind = None

    @property
    def offset(self) -> int:
        return self.written if self.behind is None else min(self.written, self.behind)

    def take(self) -> tuple[int, list[str]] | None:
        """The ack to send upstream if it says something new, else None."""
        news = (self.offset, len(self.lost))
        if news == self._sent:
            return None
        self._sent = news
        return news[0], list(self.lost)


def after_loss(chain: list[str], lost: list[str]) -> tuple[list[str], bool]:
    """The chain without `lost` nodes, and whether the loss cut off a node still
    alive (one behind a lost node): then the chain must be re-formed over the survivors;
    otherwise it goes on as it is, shorter."""
    remaining = [node for node in chain if node not in lost]
    first_lost = min((chain.index(node) for node in lost if node in chain), default=len(chain))
    return remaining, any(chain.index(node) > first_lost for node in remaining)


def survivors(chain: list[str], failed: set[str]) -> list[str]:
    """The chain's nodes, in order, that a recovery reopens: all but the failed ones."""
    return [node for node in chain if node not in failed]


def formed_short(chain: list[str], offered: set[str], failed: Collection[str], replication: int) -> bool:
    """Whether a chain just formed holds fewer than `replication` nodes while a node
    offered to it is neither in it nor failed: one placed to replace a node that refused
    or stayed silent at the opening, which the formed chain can no longer take in. A new
    chain that leaves out every node failed so far ends this: each round fails a new node
    or forms in full, or no node is left to offer."""
    return len(chain) < replication and bool(offered - set(chain) - set(failed))
