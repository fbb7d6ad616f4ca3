"""A real cluster for tests: master, datanodes and web as OS processes on ephemeral ports.

Every role is started with `myyoutube.launch.start_role` (the same code the
`myyoutube-cluster` command uses) on port 0 in a temporary directory, with short
heartbeat and dead-after values so failure tests finish in seconds. Processes are killed,
paused and restarted by pid only.

The master is started with `--admin-password-file` holding ADMIN_PASSWORD, and once the web
front end is up the cluster signs in as `admin` through `POST /api/login`: tests send
`cluster.admin_headers()` (a bearer token) where the rules need an account, and
`cluster.client()` talks to the master acting as admin.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import http.server
import inspect
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from myyoutube import certs, tls_contexts
from myyoutube.client import MasterClient
from myyoutube.datanode.identity import NODE_ID_FILE
from myyoutube.datanode.server import TRANSCODE_DIR
from myyoutube.launch import Role, await_role, spawn_role, start_role
from myyoutube.master.accounts import Accounts
from myyoutube.master.index import Index, StoredBlob
from myyoutube.master.server import Master
from myyoutube.master.state import ClusterState
from videos import make_mp4

# Short liveness timings keep fault tests quick; each test may pass its own.
TEST_HEARTBEAT_S = 0.3
TEST_DEAD_AFTER_S = 3.0
ADMIN_PASSWORD = "test admin password"
# Every test client is 127.0.0.1: per-address slot and connection caps as large as the
# totals, unless a
# test passes its own.
PER_CLIENT_SLOTS = (
    "--max-uploads-per-client",
    "16",
    "--max-streams-per-client",
    "256",
    "--max-connections-per-client",
    "1024",
)


@functools.cache
def tiny_mp4() -> bytes:
    """A real one-second H.264 MP4 with `moov` first, made once per test process."""
    with tempfile.TemporaryDirectory() as folder:
        return make_mp4(Path(folder) / "tiny.mp4", seconds=1.0).read_bytes()


def free_box_header(payload_bytes: int) -> bytes:
    """The header of a top-level MP4 `free` box: players and FFmpeg skip its contents."""
    return struct.pack("!I", 8 + payload_bytes) + b"free"


def mp4_bytes(payload: bytes) -> bytes:
    """A real tiny MP4 followed by a `free` box holding `payload`: a valid video that PyAV
    reads as one second long, as large as the test needs, with bytes of the test's choice."""
    return tiny_mp4() + free_box_header(len(payload)) + payload


@dataclass
class Spawned:
    """A role's process started but not yet announced (Spawned.of, then announced())."""

    process: subprocess.Popen
    module: str
    args: list[str]
    log_path: Path
    folder: Path | None = None  # a datanode's data directory

    @classmethod
    def of(cls, module: str, args: list[str], log_path: Path, folder: Path | None = None) -> Spawned:
        return cls(spawn_role(module, args, log_path), module, args, log_path, folder)

    def announced(self) -> Role:
        return await_role(self.process, self.module, self.args, self.log_path)


class Cluster:
    def __init__(
        self,
        root: Path,
        datanodes: int = 3,
        heartbeat_s: float = TEST_HEARTBEAT_S,
        dead_after_s: float = TEST_DEAD_AFTER_S,
        master_args: tuple[str, ...] = (),
        web_args: tuple[str, ...] = (),
        datanode_args: tuple[str, ...] = (),
        tls: bool = False,
    ) -> None:
        self.root = root
        self.heartbeat_s = heartbeat_s
        self.dead_after_s = dead_after_s
        self.master_args = list(master_args)
        self.web_args = list(web_args)
        self.datanode_args = list(datanode_args)
        self.master: Role | None = None
        self.datanodes: list[Role] = []
        self.web: Role | None = None
        self._datanode_count = datanodes
        self._folders: dict[int, Path] = {}  # datanode port -> its data directory
        self._new_folders = 0  # data directories made for new datanodes so far
        self._datanodes_started = 0  # datanode processes started so far (one log each)
        # With tls, every role gets a certificate of a CA made for this cluster, as
        # myyoutube-cluster does; without, links are plain (a development cluster).
        self.tls = tls
        if tls:
            certs.init_ca(root / "certs" / "ca")
        self.admin_token = ""

    def cert_args(self, role: str, name: str) -> list[str]:
        """--cert-dir for a role instance (issued on first use), or nothing without tls."""
        if not self.tls:
            return []
        cert_dir = self.root / "certs" / name
        if not cert_dir.exists():
            certs.issue(self.root / "certs" / "ca", role, name, cert_dir)
        return ["--cert-dir", str(cert_dir)]

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> Cluster:
        spawned: list[Spawned] = []
        try:
            self.start_master()
            # The datanodes and the web need only the master's address: spawned together,
            # their interpreters load on both cores at once, which takes about a second
            # off every cluster a test starts.
            spawned = [self._spawn_datanode() for _ in range(self._datanode_count)]
            spawned.append(self._spawn_web())
            for role in spawned[:-1]:
                self._datanode_started(role)
            self._web_started(spawned[-1])
        except BaseException:
            # A role that did not start must not leave the others running for ever: the
            # fixture that asked for the cluster never gets it, so never stops it.
            for role in spawned:
                if role.process.poll() is None:
                    role.process.kill()
                    role.process.wait()
            self.stop()
            raise
        # Each datanode registered with the master before announcing itself: ready now.
        return self

    def start_web(self) -> Role:
        return self._web_started(self._spawn_web())

    def _spawn_web(self) -> Spawned:
        args = [
            "--master",
            self.master.address,
            "--port",
            "0",
            *self.cert_args("web", "web"),
            *PER_CLIENT_SLOTS,
            *self.web_args,
        ]
        return Spawned.of("myyoutube.web", args, self.root / "logs" / "web.log")

    def _web_started(self, spawned: Spawned) -> Role:
        self.web = spawned.announced()
        self.admin_token = self.sign_in("admin", ADMIN_PASSWORD)
        return self.web

    def sign_in(self, username: str, password: str) -> str:
        """An API token for the account (POST /api/login, as the CLI does)."""
        request = urllib.request.Request(
            f"{self.url}/api/login",
            data=json.dumps({"username": username, "password": password}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())["token"]

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def start_master(self, port: int = 0) -> Role:
        password_file = self.root / "admin-password.txt"
        password_file.write_text(ADMIN_PASSWORD + "\n")
        self.master = start_role(
            "myyoutube.master",
            [
                "--port",
                str(port),
                "--data-dir",
                str(self.root / "master"),
                "--heartbeat",
                str(self.heartbeat_s),
                "--dead-after",
                str(self.dead_after_s),
                *self.cert_args("master", "master"),
                "--admin-password-file",
                str(password_file),
                *self.master_args,
            ],
            self.root / "logs" / "master.log",
        )
        return self.master

    def restart_master(self) -> Role:
        return self.start_master(self.master.port)

    def start_datanode(self, port: int = 0, extra: tuple[str, ...] = (), folder: Path | None = None) -> Role:
        """A datanode in its own data directory; port= the port of an earlier one reuses
        that one's directory (the same node, restarted); folder= reuses a directory on a
        new port (the same node, moved)."""
        return self._datanode_started(self._spawn_datanode(port, extra, folder))

    def _spawn_datanode(
        self, port: int = 0, extra: tuple[str, ...] = (), folder: Path | None = None
    ) -> Spawned:
        if folder is None and port not in self._folders:
            folder = self.root / "datanodes" / f"node-{self._new_folders}"
            self._new_folders += 1
        args = [
            "--master",
            self.master.address,
            "--port",
            str(port),
            "--data-dir",
            str(folder or self._folders[port]),
            "--heartbeat",
            str(self.heartbeat_s),
            *self.cert_args("datanode", "datanode"),
            *self.datanode_args,
            *extra,
        ]
        log_path = self.root / "logs" / f"datanode-{self._datanodes_started}.log"
        self._datanodes_started += 1
        return Spawned.of("myyoutube.datanode", args, log_path, folder or self._folders[port])

    def _datanode_started(self, spawned: Spawned) -> Role:
        node = spawned.announced()
        assert spawned.folder is not None
        self._folders[node.port] = spawned.folder
        self.datanodes = [n for n in self.datanodes if n.port != node.port] + [node]
        return node

    def stop(self) -> None:
        # The master before the datanodes, so its stop-time index snapshot reaches them.
        for role in [self.web, self.master, *self.datanodes]:
            if role is not None and role.alive():
                role.resume()  # a paused process cannot act on SIGTERM
                role.stop()

    # --- observation --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.web.host}:{self.web.port}"

    def client(self) -> MasterClient:
        tls = None
        if self.tls:
            self.cert_args("web", "test-client")
            tls = tls_contexts.load(self.root / "certs" / "test-client", "web")
        return MasterClient(self.master.host, self.master.port, tls, user="admin")

    def folder(self, node: Role) -> Path:
        return self._folders[node.port]

    def blob_files(self) -> dict[int, list[Path]]:
        """Each datanode port -> the committed blob files in its folder."""
        return {node.port: sorted(self.folder(node).glob("*.blob")) for node in self.datanodes}

    def data_files(self, node: Role) -> list[Path]:
        """Every file a datanode keeps for blobs (committed or partial), not its node id."""
        return [path for path in self.folder(node).iterdir() if path.name != NODE_ID_FILE]

    def stray_files(self) -> list[Path]:
        """Anything but committed blobs, their checksums and sidecars and node ids in the datanodes' folders
        (transcode jobs' work files aside: see work_files)."""
        return [
            path
            for path in (self.root / "datanodes").rglob("*")
            if path.is_file()
            and path.suffix not in (".blob", ".crc", ".meta")
            and path.name != NODE_ID_FILE
            and path.parent.name != TRANSCODE_DIR
        ]

    def work_files(self) -> list[Path]:
        """What running transcode jobs keep in the datanodes' folders (sources, renditions)."""
        return list((self.root / "datanodes").rglob(f"{TRANSCODE_DIR}/*"))


async def wait_until(
    check: Callable[[], Awaitable[bool] | bool], what: str, timeout_s: float = 30.0
) -> float:
    """Poll `check` until true; returns the seconds it took, fails the test on timeout."""
    started = time.monotonic()
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"timed out after {timeout_s}s waiting for: {what}")
        await asyncio.sleep(0.1)


def holders_of(cluster: Cluster, data: bytes) -> list[Role]:
    """The datanodes (live or not) whose folder has a committed copy equal to `data`."""
    found = []
    for node in cluster.datanodes:
        for path in cluster.folder(node).glob("*.blob"):
            try:
                if path.stat().st_size == len(data) and path.read_bytes() == data:
                    found.append(node)
            except FileNotFoundError:
                continue  # deleted between the listing and the read: the very thing tests wait for
    return found


def multipart(filename: str, data: bytes, field: str = "file") -> tuple[bytes, str]:
    """A form body as browsers and curl write it: the file name raw, only quotes escaped;
    returns (body, Content-Type)."""
    boundary = uuid.uuid4().hex
    quoted = filename.replace('"', "%22").encode("utf-8", "surrogatepass")
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="'.encode()
        + quoted
        + b'"\r\nContent-Type: video/mp4\r\n\r\n'
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


async def upload(http, cluster: Cluster, filename: str, data: bytes, field: str = "file") -> tuple[int, dict]:
    """POST /upload as a browser would; returns (status, JSON answer)."""
    body, content_type = multipart(filename, data, field)
    headers = {"Content-Type": content_type, **cluster.admin_headers()}
    async with http.post(f"{cluster.url}/upload", data=body, headers=headers) as response:
        return response.status, await response.json()


async def store(cluster: Cluster, name: str, data: bytes) -> None:
    """Upload `data` straight to the master (no web, no probing): the quickest way to
    have a committed video of exact bytes."""
    client = cluster.client()
    upload = await client.start_upload(name, "video/mp4")
    await upload.write(data)
    await upload.finish()
    client.close()


def read_chars(node: Role) -> int:
    """Bytes the process has read so far (rchar), to tell which datanode serves a stream."""
    with open(f"/proc/{node.process.pid}/io") as io:
        return int(next(line for line in io if line.startswith("rchar:")).split()[1])


def receiving(folder: Path) -> bool:
    """Whether a datanode's folder holds a blob being written: a fan-out write's `.part`
    or a write pipeline's open blob."""
    return any(folder.glob("*.part")) or any(folder.glob("*.open"))


def run_myyoutube(cluster: Cluster, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The `myyoutube` command line against the cluster's web, as a user runs it: its own
    process, no terminal (a prompt would fail at once rather than wait), output captured.
    `env` is laid over this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "myyoutube.commandline", *args, "--url", cluster.url],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def ctrl_c_once(
    args: list[str],
    ready: Callable[[int], bool],
    env: dict[str, str] | None = None,
    to_a_worker_thread: bool = False,
) -> tuple:
    """Start the command `args`, press Ctrl-C (SIGINT) as soon as `ready(its pid)` holds,
    and return its (exit status, standard output, standard error). With
    `to_a_worker_thread`, the signal is handed to a thread of the command other than the
    main one, as the kernel may do with any signal sent to a process."""
    command = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL
    )
    try:
        # With `to_a_worker_thread`, a worker thread must exist too: what `ready` looks
        # for may come first (a file opened by the main thread just before it hands the
        # reading to a worker), and the signal then had no other thread to go to.
        while not ready(command.pid) or (to_a_worker_thread and not _worker_threads(command.pid)):
            assert command.poll() is None, command.communicate()
            time.sleep(0.002)
        if to_a_worker_thread:
            worker = max(_worker_threads(command.pid))
            # tgkill(2): glibc's wrapper; Python's own signal.pthread_kill reaches only
            # threads of the calling process.
            assert ctypes.CDLL(None, use_errno=True).tgkill(command.pid, worker, signal.SIGINT) == 0
        else:
            command.send_signal(signal.SIGINT)
        out, err = command.communicate(timeout=30)
    finally:
        command.kill()
    return command.returncode, out, err


def _worker_threads(pid: int) -> list[int]:
    """The ids of process `pid`'s threads other than its main one."""
    return [int(tid) for tid in os.listdir(f"/proc/{pid}/task") if int(tid) != pid]


# Python code put before a command's own: the first import of the named library touches
# the marker file, then sleeps, so that Ctrl-C is sure to land inside the command's imports.
# Polling /proc/PID/maps for the library's extension instead raced the command: once in a
# few hundred runs it finished loading, and printed its --help, before the signal arrived.
# The sleep is many short ones: a signal that arrives after the touch but before one long
# sleep's system call starts is noted by Python but does not cut that sleep short, and the
# command slept its full minute (a CI run timed out so); a short sleep's return checks it.
_HOLD_IMPORT = """
import pathlib, sys, time
class _Hold:
    def find_spec(self, name, path=None, target=None):
        if name == {library!r}:
            pathlib.Path({marker!r}).touch()
            for _ in range(6000):
                time.sleep(0.01)
        return None
sys.meta_path.insert(0, _Hold())
"""


def ctrl_c_while_loading(args: list[str], library: str, env: dict[str, str] | None = None) -> tuple:
    """ctrl_c_once while the command `args` (`python -c CODE ...`) imports `library`, i.e.
    while it is still loading its libraries: the import is held until the signal comes."""
    python, flag, code, *rest = args
    assert flag == "-c", args
    with tempfile.TemporaryDirectory() as folder:
        marker = Path(folder) / "importing"
        held = _HOLD_IMPORT.format(library=library, marker=str(marker)) + code
        return ctrl_c_once([python, "-c", held, *rest], lambda pid: marker.exists(), env)


@contextmanager
def web_server_in_thread(handler: Callable[..., http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """A plain HTTP server answering with `handler` in a thread of this process, as some
    other server a wrong --url reaches: its URL, until the block ends."""
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()


class QuietFileServer(http.server.SimpleHTTPRequestHandler):
    """Python's static file server, without its request log on standard error."""

    def log_message(self, *args) -> None:
        pass


def serving_files(folder: Path):
    """A handler for web_server_in_thread that serves the files under `folder`."""
    return functools.partial(QuietFileServer, directory=str(folder))


@contextmanager
def read_only_mount(*folders: Path) -> Iterator[None]:
    """Make folders read-only for everyone, root too (each bind-mounted read-only over
    itself, as a disk the kernel remounted read-only after errors is); undone on leaving.
    Skips the test where mounts cannot be made (not root)."""
    import pytest

    mounted: list[Path] = []
    try:
        for folder in folders:
            bind = subprocess.run(
                ["mount", "--bind", str(folder), str(folder)], capture_output=True, text=True
            )
            if bind.returncode != 0:
                pytest.skip(f"cannot make a read-only mount here: {bind.stderr.strip()}")
            mounted.append(folder)
            subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True, capture_output=True)
        yield
    finally:
        for folder in mounted:
            # Lazily: a role still running may hold a file it opened through the mount,
            # which would make a plain umount fail with "target is busy".
            subprocess.run(["umount", "--lazy", str(folder)], check=True)


@contextmanager
def small_disk(folder: Path, size: str) -> Iterator[None]:
    """A tmpfs of `size` (mount's notation: 700k, 80m) mounted on `folder`: a disk that
    fills up. Unmounted on leaving; skips the test where mounts cannot be made."""
    import pytest

    folder.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a small disk here: {mount.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def fill_disk(path: Path) -> None:
    """Write to `path` until its disk (a small_disk) is full."""
    with open(path, "wb", buffering=0) as file, contextlib.suppress(OSError):
        while True:
            file.write(bytes(64 * 1024))


def in_process_master(data_dir: Path, datanodes: int = 3) -> Master:
    """A master on a real index in `data_dir`, in the test's own process (its background
    tasks not started), whose cluster state holds `datanodes` live datanodes at addresses
    nobody listens on: a write to them is refused at once, as by nodes that just died."""
    now = time.time()
    index = Index(data_dir / "index.sqlite3", now)
    state = ClusterState(dead_after_s=60.0, heartbeat_s=1.0, started_at=now)
    for port in range(1, datanodes + 1):
        state.registered(f"127.0.0.1:{port}", "incarnation", now, capacity_bytes=2**40, used_bytes=0)
    return Master(index, state, None, replication=3, min_replicas=2, accounts=Accounts(index, None, data_dir))


def commit_one_video(master: Master, now: float) -> None:
    """Commit `kept.mp4` (10 bytes, blob "a" * 32 held by a datanode "x") to the master's
    index, as a finished upload would: for tests that need an index that is not empty."""
    video = {
        "name": "kept.mp4",
        "blob_id": "a" * 32,
        "size": 10,
        "sha256": "0" * 64,
        "content_type": "video/mp4",
        "uploaded_at": now,
    }
    master.index.commit_video(video, [StoredBlob("a" * 32, 10, "0" * 64, ["x"])], now)
