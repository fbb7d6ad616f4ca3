"""Master CPU per heartbeat at 200,000 blobs per datanode: incremental (nothing changed, a
few changes) against a full block report.

Usage: python bench/heartbeat.py [--blobs 200000] [--datanodes 3] [--heartbeats 2000]

Theory of operation
-------------------
Before incremental reports every heartbeat carried the node's whole block list and the
master decoded and reconciled all of it: a heartbeat cost what a full report costs now.
The figure that matters is how the cost of a heartbeat grows with the blobs a node holds:
it should not, when nothing changed.

1. **Pure functions, in this process** (no sockets, no other load): the code a heartbeat
   runs at the master, timed with `time.process_time`. An index of --blobs blobs, each
   listed on all --datanodes nodes (replication = --datanodes). For one node: a full
   report as the datanode builds and encodes it (`full_report_chunks`, `encode`), decoded
   (`FrameDecoder`) and assembled and reconciled (`ClusterState.add_report_chunk`); then
   --heartbeats quiet heartbeats (encode, decode, `apply_delta`) and as many heartbeats
   that each add CHANGES_PER_BEAT blobs. Repeated at a tenth of --blobs, to show which
   costs grow with the node's size.
2. **A real master process** (`myyoutube.master`, started with `launch.start_role` on a
   temporary data directory) whose index holds the same blobs: written with the Index
   API's schema, rows bulk-inserted with sqlite3 in one transaction (committing 200,000
   uploads through the protocol would take an hour and measure something else). Fake
   datanodes speaking the real protocol over real sockets (this script; they never serve
   a byte) register, each sends its full report when the master asks, then one sends
   --heartbeats heartbeats back to back. The master's CPU comes from /proc/PID/stat. Its
   background work (the repair planner walks every replica each second) is measured in a
   quiet window first and shown both included and subtracted, pro rata. Both sizes again.

Printed: CPU per full report and per heartbeat (milliseconds) at both sizes, and the
largest frame of each kind on the wire. Exit status 1 if a quiet heartbeat costs more than QUIET_LIMIT_MS.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from benchlib import cpu_seconds, print_table, run_context
from myyoutube import stream as streams
from myyoutube.datanode.state import full_report_chunks
from myyoutube.launch import start_role
from myyoutube.master import reports
from myyoutube.master.index import Index
from myyoutube.master.state import ClusterState, IndexView, Replica
from myyoutube.protocol import Commands, FrameDecoder, Heartbeat, Register, encode

DEFAULT_BLOBS = 200_000
DEFAULT_DATANODES = 3
DEFAULT_HEARTBEATS = 5000

# A busy node's heartbeat: a few uploads or deletions landed since the last one.
CHANGES_PER_BEAT = 10

# A quiet heartbeat must not cost the master more than this, whatever the node holds
# (before incremental reports it cost as much as a full report: ~1 s at 200,000 blobs).
QUIET_LIMIT_MS = 1.0

# How long the master's background CPU is sampled before the heartbeat window.
IDLE_WINDOW_S = 5.0

# Heartbeat interval and dead-after given to the master: long, so the fake nodes stay
# alive through the quiet window without heartbeating.
MASTER_HEARTBEAT_S = 3.0
MASTER_DEAD_AFTER_S = 60.0


def blob_ids(count: int) -> list[str]:
    return [f"{i:032x}" for i in range(count)]


def node_address(number: int) -> str:
    return f"127.0.0.1:{number + 1}"  # never connected to: no uploads or repairs happen


# --- 1. pure functions ------------------------------------------------------------------------


def timed(action) -> tuple[float, object]:
    started = time.process_time()
    result = action()
    return time.process_time() - started, result


def decode(frame: bytes):
    decoder = FrameDecoder()
    decoder.feed(frame)
    return decoder.next_frame()


def pure_figures(blobs: int, datanodes: int, heartbeats: int) -> dict[str, float]:
    """Seconds of CPU for one full report and per heartbeat, at `blobs` blobs per node."""
    ids = blob_ids(blobs)
    nodes = [node_address(n) for n in range(datanodes)]
    replicas = {b: Replica(1000, "ab" * 32, dict.fromkeys(nodes, 0.0)) for b in ids}
    held = dict.fromkeys(ids, 1000)
    now = time.time()
    state = ClusterState(dead_after_s=30.0, heartbeat_s=3.0, started_at=now)
    for address in nodes:
        state.registered(address, "bench", now, 10**13, 10**12)
    index = IndexView(replicas, set(), set(), datanodes)

    def full_report() -> None:
        for chunk in full_report_chunks(1, held):
            state.add_report_chunk(nodes[0], decode(encode(chunk)), index, now)

    full_s, _ = timed(full_report)

    def beats(changes: int) -> None:
        seq = state.nodes[nodes[0]].reports.applied_seq
        for number in range(heartbeats):
            added = [(f"{seq + number:08x}{change:024x}", 1) for change in range(changes)]
            beat = Heartbeat(10**13, 10**12, seq + number + 1, seq + number, added, [], [])
            delta = reports.delta_of(decode(encode(beat)))
            state.apply_delta(nodes[0], delta, index, now)
            encode(
                Commands(
                    delete_blobs=state.deletes_due(nodes[0], 10_000), acked_seq=delta.seq, full_report=False
                )
            )

    quiet_s, _ = timed(lambda: beats(0))
    busy_s, _ = timed(lambda: beats(CHANGES_PER_BEAT))
    return {"full": full_s, "quiet": quiet_s / heartbeats, "busy": busy_s / heartbeats}


# --- 2. a real master -------------------------------------------------------------------------


def fill_index(data_dir: Path, blobs: int, datanodes: int) -> None:
    """An index of `blobs` blobs, each on every fake node: the schema from the Index API,
    the rows in one bulk transaction."""
    data_dir.mkdir(parents=True)
    path = data_dir / "index.sqlite3"
    Index(path, time.time()).close()
    db = sqlite3.connect(path)
    with db:
        db.executemany("INSERT INTO blobs VALUES (?, 1000, ?)", ((b, "ab" * 32) for b in blob_ids(blobs)))
        db.executemany(
            "INSERT INTO replicas VALUES (?, ?, 0.0)",
            ((b, node_address(n)) for b in blob_ids(blobs) for n in range(datanodes)),
        )
    db.close()


class FakeDatanode:
    """The control connection of a datanode holding `blobs` blobs, spoken by this script."""

    def __init__(self, number: int, master: tuple[str, int], blobs: int) -> None:
        self.address, self.master, self.blobs = node_address(number), master, blobs
        self.seq = 0
        self.control: streams.FrameStream | None = None

    async def exchange(self, message) -> Commands:
        await self.control.write_frame(message)
        return await self.control.read_expected(Commands, timeout=120)

    async def register_and_report(self) -> int:
        """Register and send the full report the master asks for; the largest frame's size."""
        self.control = await streams.connect(*self.master, b"", "datanode")
        answer = await self.exchange(Register(self.address, 10**13, 10**12, f"bench-{self.address}"))
        assert answer.full_report, "a new datanode process must be asked for a full report"
        self.seq, largest = 1, 0
        for chunk in full_report_chunks(1, dict.fromkeys(blob_ids(self.blobs), 1000)):
            largest = max(largest, len(encode(chunk)))
            answer = await self.exchange(chunk)
        assert (answer.acked_seq, answer.full_report) == (1, False)
        return largest

    async def heartbeats(self, count: int, changes: int) -> int:
        """`count` heartbeats back to back, each adding `changes` new blobs; the largest
        frame's size."""
        largest = 0
        for _ in range(count):
            added = [(f"{self.seq:08x}{change:024x}", 1) for change in range(changes)]
            beat = Heartbeat(10**13, 10**12, self.seq + 1, self.seq, added, [], [])
            largest = max(largest, len(encode(beat)))
            answer = await self.exchange(beat)
            assert answer.acked_seq == self.seq + 1 and not answer.full_report
            self.seq += 1
        return largest


async def master_figures(root: Path, blobs: int, datanodes: int, heartbeats: int) -> dict[str, float]:
    fill_index(root / "master", blobs, datanodes)
    master = start_role(
        "myyoutube.master",
        [
            *("--port", "0", "--data-dir", str(root / "master")),
            *("--heartbeat", str(MASTER_HEARTBEAT_S), "--dead-after", str(MASTER_DEAD_AFTER_S)),
        ],
        root / "master.log",
    )
    pid = master.process.pid
    try:
        nodes = [FakeDatanode(n, (master.host, master.port), blobs) for n in range(datanodes)]
        figures: dict[str, float] = {}
        for node in nodes:
            before = cpu_seconds(pid)
            figures["full frame bytes"] = await node.register_and_report()
            figures.setdefault("full", cpu_seconds(pid) - before)
        before, started = cpu_seconds(pid), time.perf_counter()
        await asyncio.sleep(IDLE_WINDOW_S)
        idle_per_s = (cpu_seconds(pid) - before) / (time.perf_counter() - started)
        figures["idle per s"] = idle_per_s
        for name, changes in (("quiet", 0), ("busy", CHANGES_PER_BEAT)):
            before, started = cpu_seconds(pid), time.perf_counter()
            figures[f"{name} frame bytes"] = await nodes[0].heartbeats(heartbeats, changes)
            wall, spent = time.perf_counter() - started, cpu_seconds(pid) - before
            figures[f"{name} raw"] = spent / heartbeats
            figures[name] = max(0.0, spent - idle_per_s * wall) / heartbeats
        for node in nodes:
            node.control.abort()
        return figures
    finally:
        master.stop()


# --- report -----------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blobs", type=int, default=DEFAULT_BLOBS, help="blobs per datanode")
    parser.add_argument("--datanodes", type=int, default=DEFAULT_DATANODES)
    parser.add_argument("--heartbeats", type=int, default=DEFAULT_HEARTBEATS)
    args = parser.parse_args()
    print(run_context())
    small = max(1, args.blobs // 10)
    pure = {size: pure_figures(size, args.datanodes, args.heartbeats) for size in (small, args.blobs)}
    print_table(
        "1. Pure functions in this process: CPU ms at the master",
        ["blobs per node", "full report", "quiet heartbeat", f"heartbeat, {CHANGES_PER_BEAT} changes"],
        [[f"{size:,}", ms(f["full"]), ms(f["quiet"]), ms(f["busy"])] for size, f in pure.items()],
    )
    real = {}
    for size in (small, args.blobs):
        with tempfile.TemporaryDirectory(prefix="bench-heartbeat-") as folder:
            real[size] = asyncio.run(master_figures(Path(folder), size, args.datanodes, args.heartbeats))
    print_table(
        f"2. A real master and {args.datanodes} fake datanodes: master CPU ms",
        ["blobs per node", "report", "CPU ms each", "less background", "largest frame bytes"],
        [
            row
            for size, f in real.items()
            for row in (
                [f"{size:,}", "full report, in chunks", ms(f["full"]), "", f"{f['full frame bytes']:.0f}"],
                [
                    f"{size:,}",
                    "quiet heartbeat",
                    ms(f["quiet raw"]),
                    ms(f["quiet"]),
                    f"{f['quiet frame bytes']:.0f}",
                ],
                [
                    f"{size:,}",
                    f"heartbeat, {CHANGES_PER_BEAT} changes",
                    ms(f["busy raw"]),
                    ms(f["busy"]),
                    f"{f['busy frame bytes']:.0f}",
                ],
            )
        ],
    )
    big = real[args.blobs]
    print(
        f"\nmaster background CPU while nothing is sent (the repair planner walks every replica "
        f"each second): {100 * real[small]['idle per s']:.1f} % of a core at {small:,} blobs, "
        f"{100 * big['idle per s']:.1f} % at {args.blobs:,}. 'less background' subtracts it pro "
        f"rata; the column before it does not. /proc counts CPU in 10 ms ticks."
    )
    print(
        f"before incremental reports every heartbeat cost about what a full report costs now "
        f"({ms(big['full'])} ms at {args.blobs:,} blobs); a quiet one now costs {ms(big['quiet raw'])} ms"
    )
    worst = max(pure[args.blobs]["quiet"], big["quiet raw"])
    if worst * 1000 > QUIET_LIMIT_MS:
        print(f"FAIL: a quiet heartbeat cost {ms(worst)} ms, over {QUIET_LIMIT_MS} ms")
        sys.exit(1)


if __name__ == "__main__":
    main()
