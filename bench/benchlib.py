"""What the benchmarks share: a real cluster, a video file on disk, uploads, /proc readings.

Theory of operation
-------------------
`BenchCluster` starts the master, N datanodes and the web front end as separate OS
processes with `myyoutube.launch.start_role` (the code `myyoutube-cluster` uses), every
one on port 0 inside a temporary directory, and stops each by its own pid. Nothing is
imported from tests/: a benchmark must not depend on test scaffolding.

Video payloads are made on disk, never in memory: `make_video_file` writes a real
one-second MP4 made with PyAV (the web sniffs the first bytes and probes the whole file
with FFmpeg before it commits) followed by a top-level `free` box, which FFmpeg skips,
holding fresh random blocks; it hashes as it goes. `upload` sends that file as a
hand-built multipart/form-data body with a known Content-Length, read from the file one
UPLOAD_READ_BYTES piece at a time, so the client's memory stays flat whatever the size.

Each role's cost is read from Linux's /proc: VmHWM (peak resident set) from
/proc/PID/status, CPU seconds (all threads) from /proc/PID/stat, and bytes read from and
written to files from /proc/PID/io (socket send/recv do not count there). Bytes on the
wire and in kernel socket queues come from `ss -tinm` instead (`tcp_sockets`).
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import re
import struct
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import av

import myyoutube
from myyoutube import certs
from myyoutube.launch import Role, start_role

MIB = 1024 * 1024
MB = 1000 * 1000  # throughput figures are decimal MB/s, like dd and iperf

# The real video at the head of every payload: one second of 160x120 H.264, ~11 KB.
TINY_WIDTH_PX, TINY_HEIGHT_PX, TINY_FPS = 160, 120, 24

# The payload file is written in fresh os.urandom blocks of this size.
PAYLOAD_BLOCK_BYTES = 4 * MIB

# The upload body is read from disk and handed to aiohttp in pieces of this size.
UPLOAD_READ_BYTES = 1 * MIB

# A 1 GiB upload crosses five processes on a small machine; give it ample time.
HTTP_TIMEOUT_S = 1800.0

# Copies of every video: the master's default, or fewer when fewer datanodes are asked for.
REPLICATION = 3

_CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")

# The bench cluster's admin password (a throwaway cluster on loopback) and the API token
# of each running bench cluster by its URL, so upload() and auth_headers() can sign
# requests without every script passing a token around.
BENCH_ADMIN_PASSWORD = "bench admin password"
_TOKENS: dict[str, str] = {}


def _sign_in(url: str, username: str, password: str) -> str:
    request = urllib.request.Request(
        f"{url}/api/login",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())["token"]


def auth_headers(url: str) -> dict[str, str]:
    """The Authorization header of the bench cluster at `url` (admin), or none."""
    token = _TOKENS.get(url)
    return {"Authorization": f"Bearer {token}"} if token else {}


class BenchCluster:
    """Master, datanodes and web as OS processes on ephemeral ports under `root`."""

    def __init__(
        self,
        root: Path,
        datanodes: int,
        datanode_args: Iterable[str] = (),
        tls: bool = False,
        master_args: Iterable[str] = (),
        transcode_slots: int = 0,
    ) -> None:
        self.root = root
        self.datanode_count = datanodes
        # No transcoding unless a benchmark asks for it: the data-path benchmarks compare
        # the stored bytes with nginx serving the same file, so /stream must keep serving
        # the original (a rendition of their synthetic payload is a few KB), and a
        # transcode worker would take the cores the measured path runs on.
        self.datanode_args = ["--transcode-slots", str(transcode_slots), *datanode_args]
        self.master_args = list(master_args)
        # With tls, every role gets a certificate of a CA made for this run, as
        # myyoutube-cluster does, so TLS's cost can be measured against plain links.
        self.tls = tls
        self.master: Role | None = None
        self.datanodes: list[Role] = []
        self.web: Role | None = None

    def _cert_args(self, role: str, name: str) -> list[str]:
        if not self.tls:
            return []
        ca = self.root / "certs" / "ca"
        if not ca.exists():
            certs.init_ca(ca)
        return ["--cert-dir", str(certs.issue(ca, role, name, self.root / "certs" / name))]

    def start(self) -> BenchCluster:
        try:
            return self._start()
        except BaseException:
            self.stop()  # a role that did not start must not leave the others running
            raise

    def _start(self) -> BenchCluster:
        spool = self.root / "web-spool"
        # Uploads and /api/status need an account: the master makes `admin` with this
        # password, and the benchmark signs in once the web is up (see auth_headers).
        self.root.mkdir(parents=True, exist_ok=True)
        password_file = self.root / "admin-password"
        password_file.write_text(BENCH_ADMIN_PASSWORD + "\n")
        password_file.chmod(0o600)
        spool.mkdir(parents=True, exist_ok=True)
        self.master = self._start_master(0)
        for number in range(self.datanode_count):
            self.datanodes.append(self._start_datanode(number))
        self.web = self._start_web(0)
        _TOKENS[self.url] = _sign_in(self.url, "admin", BENCH_ADMIN_PASSWORD)
        return self

    def _start_master(self, port: int) -> Role:
        return start_role(
            "myyoutube.master",
            [
                "--port",
                str(port),
                "--data-dir",
                str(self.root / "master"),
                "--replication",
                str(min(REPLICATION, self.datanode_count)),
                "--admin-password-file",
                str(self.root / "admin-password"),
                *self._cert_args("master", "master"),
                *self.master_args,
            ],
            self.root / "logs" / "master.log",
        )

    def _start_datanode(self, number: int) -> Role:
        return start_role(
            "myyoutube.datanode",
            [
                "--master",
                self.master.address,
                "--port",
                "0",
                "--data-dir",
                str(self.datanode_folder(number)),
                *self._cert_args("datanode", f"datanode-{number}"),
                *self.datanode_args,
            ],
            self.root / "logs" / f"datanode-{number}.log",
        )

    def _start_web(self, port: int) -> Role:
        return start_role(
            "myyoutube.web",
            [
                "--master",
                self.master.address,
                "--port",
                str(port),
                "--spool-dir",
                str(self.root / "web-spool"),
                # Every benchmark client is 127.0.0.1: per-address slots as large as the totals.
                "--max-uploads-per-client",
                "16",
                "--max-streams-per-client",
                "256",
                *self._cert_args("web", "web"),
            ],
            self.root / "logs" / "web.log",
        )

    def datanode_folder(self, number: int) -> Path:
        return self.root / "datanodes" / f"node-{number}"

    # Restarts after a crash (chaos.py): the same folder, and for the master and the web
    # the same port, so the other roles and the clients find them where they were. A
    # datanode comes back on a new port: its node id tells the master it is the same node.

    def restart_master(self) -> None:
        self.master = self._start_master(self.master.port)

    def restart_datanode(self, number: int) -> None:
        self.datanodes[number] = self._start_datanode(number)

    def restart_web(self) -> None:
        self.web = self._start_web(self.web.port)

    def stop(self) -> None:
        """Web first (no new requests), then the master while the datanodes still run, so
        that its stop-time index snapshot reaches them (stopped after them, it logged
        that snapshot as failed at the end of every run); each by its own pid."""
        for role in [self.web, self.master, *reversed(self.datanodes)]:
            if role is not None:
                role.stop()

    @property
    def url(self) -> str:
        return f"http://{self.web.address}"

    def roles(self) -> dict[str, int]:
        """Display name -> pid of every role process."""
        named = {"master": self.master.process.pid}
        for number, node in enumerate(self.datanodes):
            named[f"datanode-{number}"] = node.process.pid
        named["web"] = self.web.process.pid
        return named

    def listening_ports(self) -> dict[int, str]:
        """Listening port -> which role listens there ("master", "datanode", "web")."""
        ports = {self.master.port: "master", self.web.port: "web"}
        ports.update(dict.fromkeys((node.port for node in self.datanodes), "datanode"))
        return ports


# --- payload --------------------------------------------------------------------------


def tiny_mp4(path: Path) -> bytes:
    """A real one-second H.264 MP4 with `moov` first, made with PyAV (no numpy needed)."""
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=TINY_FPS)
        stream.width, stream.height, stream.pix_fmt = TINY_WIDTH_PX, TINY_HEIGHT_PX, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(TINY_FPS)}
        for index in range(TINY_FPS):
            frame = av.VideoFrame(TINY_WIDTH_PX, TINY_HEIGHT_PX, "yuv420p")
            for number, plane in enumerate(frame.planes):  # a gradient moving every frame
                row = bytes((index * 8 + number * 80 + x) % 256 for x in range(plane.line_size))
                plane.update(row * (plane.buffer_size // plane.line_size))
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path.read_bytes()


def free_box_header(box_bytes: int) -> bytes:
    """The header of a top-level MP4 `free` box of `box_bytes` in all (a 64-bit size from
    4 GiB on): FFmpeg and players skip its body."""
    if box_bytes < 2**32:
        return struct.pack("!I4s", box_bytes, b"free")
    return struct.pack("!I4sQ", 1, b"free", box_bytes)


def make_video_file(path: Path, size_bytes: int) -> str:
    """Write a `size_bytes` video to `path`: a real tiny MP4 (what the web sniffs and probes
    with PyAV) then a `free` box of fresh random bytes. Returns the file's sha256 hex."""
    tiny_path = path.with_suffix(".tiny.mp4")
    video = tiny_mp4(tiny_path)
    tiny_path.unlink()
    header = free_box_header(size_bytes - len(video))
    digest = hashlib.sha256(video + header)
    with open(path, "wb") as file:
        file.write(video + header)
        left = size_bytes - len(video) - len(header)
        while left > 0:
            block = os.urandom(min(PAYLOAD_BLOCK_BYTES, left))
            digest.update(block)
            file.write(block)
            left -= len(block)
    return digest.hexdigest()


def video_name(size_bytes: int) -> str:
    return f"bench-{size_bytes // MIB}MiB-{uuid.uuid4().hex[:8]}.mp4"


# --- HTTP -------------------------------------------------------------------------------


def _multipart_frame(name: str) -> tuple[bytes, bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{name}"\r\nContent-Type: video/mp4\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head, tail, f"multipart/form-data; boundary={boundary}"


async def _multipart_body(head: bytes, path: Path, tail: bytes) -> AsyncIterator[bytes]:
    yield head
    with open(path, "rb") as file:
        # Page-cache reads of 1 MiB take well under a millisecond: no thread needed.
        while piece := file.read(UPLOAD_READ_BYTES):
            yield piece
    yield tail


async def upload(session: aiohttp.ClientSession, url: str, path: Path, name: str) -> dict:
    """POST the file at `path` to /upload as `name`, streaming it; the JSON answer."""
    head, tail, content_type = _multipart_frame(name)
    length = len(head) + path.stat().st_size + len(tail)
    headers = {"Content-Type": content_type, "Content-Length": str(length), **auth_headers(url)}
    async with session.post(
        f"{url}/upload", data=_multipart_body(head, path, tail), headers=headers
    ) as response:
        answer = await response.json()
        if response.status != 201:
            raise RuntimeError(f"upload answered {response.status}: {answer}")
        return answer


async def upload_verified(
    session: aiohttp.ClientSession, url: str, path: Path, name: str, size: int, sha256: str
) -> float:
    """`upload`, checking the stored size and sha256 against the file's; the wall time (s)."""
    started = time.perf_counter()
    answer = await upload(session, url, path, name)
    elapsed = time.perf_counter() - started
    if answer["sha256"] != sha256 or answer["size"] != size:
        raise RuntimeError(f"upload stored {answer}, expected sha256 {sha256}")
    return elapsed


def require_loopback(url: str) -> str:
    """`url` itself, after checking that it targets 127.0.0.1: benchmarks hammer only this host."""
    host = urllib.parse.urlsplit(url).hostname
    if host != "127.0.0.1":
        raise ValueError(f"benchmarks only send requests to 127.0.0.1, not to {host}")
    return url


def http_session(connections: int = 4) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections), timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
    )


# --- /proc ------------------------------------------------------------------------------


def peak_rss_bytes(pid: int | str = "self") -> int:
    """VmHWM: the most resident memory the process ever had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmHWM")


def cpu_seconds(pid: int | str = "self") -> float:
    """User plus system CPU time the process has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the name may hold spaces
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS_PER_S


def io_counters(pid: int | str = "self") -> dict[str, int]:
    """/proc/PID/io: rchar/wchar count every read/write syscall's bytes (sockets too);
    read_bytes/write_bytes count what reached the block device (page cache excluded)."""
    counters = {}
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        key, _, value = line.partition(":")
        counters[key.strip()] = int(value)
    return counters


@dataclass(frozen=True)
class TcpSocket:
    """One established loopback TCP socket as `ss -tinm` shows it."""

    local_port: int
    peer_port: int
    recv_q: int  # bytes received by the kernel, not yet read by the process
    send_q: int  # bytes written by the process, not yet acknowledged by the peer
    bytes_acked: int  # bytes this socket sent that the peer's kernel acknowledged
    rcvbuf: int  # the receive buffer's current size (autotuned unless set)
    sndbuf: int


def tcp_sockets() -> list[TcpSocket]:
    """Every established TCP socket on this host. /proc/PID/io cannot see socket traffic
    (send/recv syscalls bypass rchar/wchar), so bytes on the wire are read from `ss`."""
    lines = subprocess.run(
        ["ss", "-tinmH", "state", "established"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    sockets = []
    for head, info in zip(lines[::2], lines[1::2], strict=True):
        recv_q, send_q, local, peer = head.split()[:4]
        fields = dict(_SS_FIELD.findall(info))
        sockets.append(
            TcpSocket(
                int(local.rpartition(":")[2]),
                int(peer.rpartition(":")[2]),
                int(recv_q),
                int(send_q),
                int(fields.get("bytes_acked", 0)),
                int(fields.get("rb", 0)),
                int(fields.get("tb", 0)),
            )
        )
    return sockets


_SS_FIELD = re.compile(r"\b(bytes_acked|rb|tb):?(\d+)")


# A process using more than this share of one core during a phase is called its bottleneck.
SATURATED_SHARE = 0.8


def bytes_written(pid: int) -> int:
    """Bytes a process passed to write()/send() so far, files and sockets alike (wchar)."""
    with open(f"/proc/{pid}/io") as io:
        return int(next(line for line in io if line.startswith("wchar:")).split()[1])


class CpuMeter:
    """CPU seconds each process spent between `start()` and `stop()`."""

    def __init__(self, pids: dict[str, int | str]) -> None:
        self.pids = pids
        self._before: dict[str, float] = {}
        self.spent: dict[str, float] = {}
        self.wall_s = 0.0

    def start(self) -> CpuMeter:
        self._before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._started = time.perf_counter()
        return self

    def stop(self) -> CpuMeter:
        self.wall_s = time.perf_counter() - self._started
        self.spent = {name: cpu_seconds(pid) - self._before[name] for name, pid in self.pids.items()}
        return self

    def saturated(self) -> list[str]:
        """The processes that used more than SATURATED_SHARE of one core: the bottleneck."""
        return [name for name, spent in self.spent.items() if spent / self.wall_s > SATURATED_SHARE]

    def summary(self) -> str:
        """'master 12.3s (45%), ...': each process's CPU share of the wall time."""
        return ", ".join(
            f"{name} {spent:.1f}s ({100 * spent / self.wall_s:.0f}%)" for name, spent in self.spent.items()
        )


# --- payload checks, figures and context ------------------------------------------------


@contextmanager
def mapped(path: Path) -> Iterator[mmap.mmap]:
    """The file read-only in memory (page cache, not a copy): slices check response bodies."""
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapping:
        yield mapping


def percentile_ms(values: list[float], fraction: float) -> float:
    """The `fraction` quantile of `values` (seconds), in milliseconds (nearest rank)."""
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_context() -> str:
    """Date, the code under test, cores and load average. The package is installed editable,
    so what runs is src/ as it is on disk: the commit, plus a warning if src/ differs from it;
    or, if myyoutube is imported from elsewhere (PYTHONPATH), that directory."""
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    imported_from = Path(myyoutube.__file__).resolve().parent.parent
    if imported_from == here.parent / "src":
        dirty = " + uncommitted changes in src/" if git("status", "--porcelain", "--", "../src") else ""
        code = f"commit {git('rev-parse', '--short', 'HEAD') or 'unknown'}{dirty}"
    else:
        code = f"myyoutube imported from {imported_from}"
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {code}, {os.cpu_count()} cores, load average {load}"


# --- output -----------------------------------------------------------------------------


def print_table(title: str, headers: list[str], rows: list[list[object]]) -> None:
    cells = [[str(cell) for cell in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    rule = "-+-".join("-" * width for width in widths)
    print(f"\n{title}\n{rule}")
    for number, row in enumerate(cells):
        # Figures (cells starting with a digit) line up on the right, words on the left.
        print(
            " | ".join(
                cell.rjust(width) if number and cell[:1].isdigit() else cell.ljust(width)
                for cell, width in zip(row, widths, strict=True)
            )
        )
        if number == 0:
            print(rule)
    print(rule)


def mib(nbytes: float) -> str:
    return f"{nbytes / MIB:.1f} MiB"
