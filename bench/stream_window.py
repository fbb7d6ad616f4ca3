"""Proof that a slow open-ended stream makes no process read ahead more than a bounded window.

Usage: python bench/stream_window.py [--size-mib 512] [--steps 8] [--step-mib 1] [--pause-s 3]
                                    [--viewers 1] [--max-held-mib 16]

Theory of operation
-------------------
A browser playing a video asks `Range: bytes=0-` and then reads only as fast as it plays.
The web turns that into one ReadBlob of the whole rest of the video, sent to a datanode
itself (or, with --relay-reads, one ReadVideo that the master turns into the ReadBlob),
and every hop writes a chunk and waits for its socket to drain; so the bytes
read from disk ahead of the viewer should be bounded by socket buffers plus a chunk or
two per hop, however large the video and however long the viewer dawdles.

This benchmark uploads a --size-mib video, opens --viewers streams `GET /stream/NAME` with
`Range: bytes=0-`, and each viewer reads --step-mib, pauses --pause-s, --steps times. After
every pause it compares what the viewers consumed with what each hop produced since the
streams began:

* datanodes read  - sum over the datanodes of /proc/PID/io `rchar`: bytes returned by
                    read() on files (socket recv() does not count there), i.e. the blob
* datanodes sent  - TCP `bytes_acked` of the datanodes' sockets, from `ss -tinm`
* master relayed  - the master's own counter `counters.bytes_out` from GET /api/status
                    (0 when the web reads from the datanodes itself)
* web sent        - TCP `bytes_acked` of the web's sockets (to the viewers)

`excess = datanodes read - consumed` is everything read ahead of the viewers; `held =
datanodes read - web sent` is the part still inside the cluster (processes and their
sockets), as opposed to what already waits in the viewers' own receive buffers. A second
table says where the bytes sit: in kernel socket queues on each hop (the sender's Send-Q
plus the receiver's Recv-Q); the rest is in the processes' own buffers. If the window is
bounded the excess settles after the first step and stays flat; read-ahead would make it
grow with every step. The run fails (exit 1) if the final `held` per viewer exceeds
--max-held-mib, or the excess grew by more than GROWTH_TOLERANCE_MIB after the first samples.

The datanodes run with --scrub-bytes-per-s SCRUB_BYTES_PER_S (1): the scrubber then
verifies one block of the new blob and sleeps for days, so its reads do not blur the
datanodes' `rchar`. Finally the streams are dropped and the master's `active_streams` must
fall back to 0: an abandoned viewer must not leave a relay running.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp

from benchlib import (
    MIB,
    BenchCluster,
    TcpSocket,
    auth_headers,
    http_session,
    io_counters,
    make_video_file,
    mib,
    peak_rss_bytes,
    print_table,
    tcp_sockets,
    upload,
    video_name,
)

DEFAULT_SIZE_MIB = 512
DEFAULT_STEPS = 8
DEFAULT_STEP_MIB = 1
DEFAULT_PAUSE_S = 3.0
# What the cluster may hold per viewer, read from disk but not yet delivered: socket
# buffers on three hops (datanode -> master -> web -> viewer) and a chunk or two per hop
# in each process should make a few MiB. Anything past this is read-ahead.
DEFAULT_MAX_HELD_MIB = 16
# The relay refills in bursts (a reader's buffer falls under its low-water mark and the
# hop behind it tops it up), so the excess wobbles by a few MiB; growth past this
# between the first samples and the last is read-ahead.
GROWTH_TOLERANCE_MIB = 4
# The columns of a sample: bytes produced per hop, and bytes queued in the kernel per hop.
PRODUCED = ("datanodes read", "datanodes sent", "master relayed", "web sent")
HOPS = ("datanodes->master", "master->web", "web->client")
QUEUED = tuple(f"queued {hop}" for hop in HOPS)
# The scrubber's rate during the run; 1 B/s means one block read, then a sleep of days.
SCRUB_BYTES_PER_S = 1
# After the upload, time for the scrubber's single block read and the heartbeats to pass.
SETTLE_S = 2.0
# After dropping the stream, how long the relay chain may take to notice and stop.
TEARDOWN_TIMEOUT_S = 10.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=DEFAULT_SIZE_MIB, help="video size in MiB")
    parser.add_argument("--datanodes", type=int, default=3)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="read-then-pause rounds")
    parser.add_argument("--step-mib", type=int, default=DEFAULT_STEP_MIB, help="MiB read per round")
    parser.add_argument(
        "--pause-s", type=float, default=DEFAULT_PAUSE_S, help="seconds to pause after each read"
    )
    parser.add_argument(
        "--viewers",
        type=int,
        default=1,
        help="slow viewers streaming the video at once (excess is per viewer)",
    )
    parser.add_argument(
        "--max-held-mib",
        type=float,
        default=DEFAULT_MAX_HELD_MIB,
        help="fail if the cluster holds more than this per viewer, read from disk but not yet delivered",
    )
    return parser.parse_args()


class Producers:
    """What each hop has produced since `start()`, and what sits in kernel socket queues.

    Bytes sent are TCP `bytes_acked` of the sender's sockets (from `ss`), taken per
    connection as a delta from `start()`; the stream's connections are new, so all their
    bytes count. Heartbeats and /api/status calls add a few KiB.
    """

    def __init__(self, cluster: BenchCluster, session: aiohttp.ClientSession) -> None:
        self.cluster, self.session = cluster, session
        self.node_pids = [node.process.pid for node in cluster.datanodes]
        self.ports = {
            "datanodes": {node.port for node in cluster.datanodes},
            "master": {cluster.master.port},
            "web": {cluster.web.port},
        }
        self._base_io = 0
        self._base_master = 0
        self._base_acked: dict[tuple[int, int], int] = {}

    async def _status(self) -> dict:
        async with self.session.get(
            f"{self.cluster.url}/api/status", headers=auth_headers(self.cluster.url)
        ) as response:
            return await response.json()

    def _node_file_reads(self) -> int:
        return sum(io_counters(pid)["rchar"] for pid in self.node_pids)

    async def start(self) -> None:
        self._base_io = self._node_file_reads()
        self._base_master = (await self._status())["counters"]["bytes_out"]
        self._base_acked = {(s.local_port, s.peer_port): s.bytes_acked for s in tcp_sockets()}

    def _sent_by(self, sockets: list[TcpSocket], ports: set[int]) -> int:
        return sum(
            s.bytes_acked - self._base_acked.get((s.local_port, s.peer_port), 0)
            for s in sockets
            if s.local_port in ports
        )

    async def sample(self) -> dict[str, int]:
        """Bytes produced by each hop since start(), then bytes queued in the kernel."""
        master_out = (await self._status())["counters"]["bytes_out"] - self._base_master
        sockets = tcp_sockets()
        sample = {
            "datanodes read": self._node_file_reads() - self._base_io,
            "datanodes sent": self._sent_by(sockets, self.ports["datanodes"]),
            "master relayed": master_out,
            "web sent": self._sent_by(sockets, self.ports["web"]),
        }
        for hop, role in zip(HOPS, ("datanodes", "master", "web"), strict=True):
            ports = self.ports[role]
            queued = [s for s in sockets if s.local_port in ports or s.peer_port in ports]
            sample[f"queued {hop}"] = sum(s.send_q if s.local_port in ports else s.recv_q for s in queued)
        ours = set().union(*self.ports.values())
        sample["largest rcvbuf"] = max(
            (s.rcvbuf for s in sockets if s.local_port in ours or s.peer_port in ours), default=0
        )
        return sample

    async def active_streams(self) -> int:
        return (await self._status())["counters"]["active_streams"]


async def open_viewers(
    stack: AsyncExitStack, session: aiohttp.ClientSession, url: str, viewers: int
) -> list[aiohttp.ClientResponse]:
    """`viewers` open-ended streams of the video, as players starting playback."""
    responses = []
    for _ in range(viewers):
        response = await stack.enter_async_context(session.get(url, headers={"Range": "bytes=0-"}))
        if response.status != 206:
            raise RuntimeError(f"Range: bytes=0- answered {response.status}, not 206")
        responses.append(response)
    return responses


async def read_slowly(
    session: aiohttp.ClientSession, url: str, producers: Producers, args: argparse.Namespace
) -> list[dict]:
    """Every viewer reads a step, all pause, every hop is sampled; --steps times."""
    samples, consumed, started = [], 0, time.perf_counter()
    await producers.start()
    async with AsyncExitStack() as stack:
        responses = await open_viewers(stack, session, url, args.viewers)
        for _ in range(args.steps):
            pieces = await asyncio.gather(
                *(response.content.readexactly(args.step_mib * MIB) for response in responses)
            )
            consumed += sum(len(piece) for piece in pieces)
            await asyncio.sleep(args.pause_s)
            samples.append(
                {"t": time.perf_counter() - started, "consumed": consumed, **await producers.sample()}
            )
        for response in responses:
            response.close()  # drop the connection mid-stream, as a viewer closing the tab
    return samples


async def await_teardown(producers: Producers) -> tuple[int, float]:
    """Wait for the master to end the abandoned relay: (active streams left, seconds)."""
    started = time.monotonic()
    deadline = started + TEARDOWN_TIMEOUT_S
    # Polls another process's counter over HTTP: there is no local Event to wait on.
    while (active := await producers.active_streams()) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    return active, time.monotonic() - started


def excess(sample: dict) -> int:
    """Bytes read from disk that the viewers have not consumed yet."""
    return sample["datanodes read"] - sample["consumed"]


def held(sample: dict) -> int:
    """The part of the excess the cluster holds: read from disk, not yet delivered to the
    viewers' kernels (the rest waits in the viewers' receive buffers and HTTP client)."""
    return sample["datanodes read"] - sample["web sent"]


def judge(samples: list[dict], args: argparse.Namespace) -> list[str]:
    """Reasons the window is not bounded; empty if it is."""
    held_per_viewer = [held(sample) / args.viewers for sample in samples]
    excess_per_viewer = [excess(sample) / args.viewers for sample in samples]
    problems = []
    if held_per_viewer[-1] > args.max_held_mib * MIB:
        problems.append(
            f"the cluster holds {mib(held_per_viewer[-1])} per viewer read ahead, "
            f"over --max-held-mib {args.max_held_mib:g}"
        )
    settled = max(excess_per_viewer[:2])
    if excess_per_viewer[-1] - settled > GROWTH_TOLERANCE_MIB * MIB:
        problems.append(
            f"excess per viewer grew from {mib(settled)} to "
            f"{mib(excess_per_viewer[-1])} while the viewers only paused: "
            "read-ahead is not bounded"
        )
    return problems


def report(samples: list[dict], rss: dict[str, int], teardown: tuple[int, float], viewers: int) -> None:
    print_table(
        f"Produced by each hop vs consumed by {viewers} viewer(s), since the streams "
        "opened (excess = datanodes read - consumed; held = datanodes read - web sent)",
        ["t (s)", "consumed", *PRODUCED, "excess", "held by cluster", "held per viewer"],
        [
            [
                f"{s['t']:.1f}",
                mib(s["consumed"]),
                *(mib(s[hop]) for hop in PRODUCED),
                mib(excess(s)),
                mib(held(s)),
                mib(held(s) / viewers),
            ]
            for s in samples
        ],
    )
    print_table(
        "Where the excess sits: bytes queued in kernel socket buffers per hop "
        "(sender Send-Q + receiver Recv-Q)",
        ["t (s)", *QUEUED, "largest rcvbuf (autotuned)"],
        [[f"{s['t']:.1f}", *(mib(s[hop]) for hop in QUEUED), mib(s["largest rcvbuf"])] for s in samples],
    )
    print_table(
        "Peak RSS (VmHWM)", ["process", "peak RSS"], [[role, mib(value)] for role, value in rss.items()]
    )
    active, seconds = teardown
    print(
        f"\nafter the viewers dropped their streams: master active_streams = {active} "
        f"(waited {seconds:.1f} s)"
    )


async def run(cluster: BenchCluster, path: Path, args: argparse.Namespace) -> tuple:
    name = video_name(path.stat().st_size)
    async with http_session(args.viewers + 1) as session:
        print(f"uploading {mib(path.stat().st_size)} ...", flush=True)
        await upload(session, cluster.url, path, name)
        await asyncio.sleep(SETTLE_S)
        producers = Producers(cluster, session)
        print(f"reading {args.step_mib} MiB every {args.pause_s:g} s, {args.steps} times ...", flush=True)
        samples = await read_slowly(session, f"{cluster.url}/stream/{name}", producers, args)
        teardown = await await_teardown(producers)
    rss = {role: peak_rss_bytes(pid) for role, pid in {**cluster.roles(), "client": "self"}.items()}
    return samples, rss, teardown


async def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="myyoutube-window-") as tmp:
        root = Path(tmp)
        path = root / "payload.mp4"
        make_video_file(path, args.size_mib * MIB)
        cluster = BenchCluster(
            root / "cluster", args.datanodes, ["--scrub-bytes-per-s", str(SCRUB_BYTES_PER_S)]
        )
        try:
            cluster.start()
            samples, rss, teardown = await run(cluster, path, args)
        finally:
            cluster.stop()
    report(samples, rss, teardown, args.viewers)
    problems = judge(samples, args) + (["the relay outlived its viewer"] if teardown[0] else [])
    print(
        "\nverdict: "
        + (
            "; ".join(problems)
            if problems
            else f"bounded (held within {args.max_held_mib:g} MiB per viewer, flat)"
        )
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
