"""Every command: --help, and one readable line with a non-zero exit when it cannot start."""

from __future__ import annotations

import asyncio
import resource
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from harness import ctrl_c_while_loading, read_only_mount
from myyoutube import service
from myyoutube.client import MasterClient
from myyoutube.datanode import main as datanode_main
from myyoutube.datanode.identity import NODE_ID_FILE
from myyoutube.launch import start_role
from myyoutube.master import index_files
from myyoutube.master import main as master_main
from myyoutube.web import main as web_main

COMMANDS = ["myyoutube.master", "myyoutube.datanode", "myyoutube.web", "myyoutube.cluster"]


def entry(module: str) -> str:
    """Python code starting `module`'s command as its installed console script does."""
    command = module.rsplit(".", 1)[1]
    return f"from myyoutube.entry_points import {command}; {command}()"


def run(module: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", entry(module), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("host", "wildcard"),
    [
        ("0.0.0.0", True),
        ("::", True),
        ("[::]", True),
        ("0:0::0", True),
        ("", True),
        ("127.0.0.1", False),
        ("::1", False),
        ("192.0.2.7", False),
        ("video.example", False),
    ],
)
def test_a_wildcard_is_any_spelling_of_every_address(host, wildcard):
    """0.0.0.0, :: (however written) and the empty host bind every address; a real
    address or a name does not. The web, the datanode and the cluster all ask this."""
    assert service.is_wildcard(host) is wildcard


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.0.2.7", False),
        ("video.example", False),
    ],
)
def test_loopback_hosts_in_any_spelling(host, loopback):
    """An IPv6 loopback counts in brackets too, as a bracketed wildcard does; a routable
    address or a name is not loopback."""
    assert service.is_loopback(host) is loopback


def test_a_missing_password_file_is_named_in_words(tmp_path):
    """`--admin-password-file` naming no file said "cannot read the password file F:
    [Errno 2] No such file or directory: 'F'" (the path twice, Python's errno form); it
    says the reason in words, as the command line's own password files do."""
    missing = tmp_path / "nosuch"
    with pytest.raises(service.StartupError) as refused:
        service.read_password_file(missing)
    assert str(refused.value) == f"cannot read the password file {missing}: No such file or directory"


@pytest.mark.parametrize("module", COMMANDS)
def test_ctrl_c_while_the_command_starts_ends_it_quietly(module):
    """Ctrl-C while the command loads its libraries (uvloop, aiohttp, PyAV: up to half a
    second) ends it with status 130 and nothing on standard error. It used to print a
    Python traceback. The harness holds the command's import of uvloop until the signal."""
    command = [sys.executable, "-c", entry(module), "--help"]
    assert ctrl_c_while_loading(command, "uvloop") == (130, "", "")


@pytest.mark.parametrize("module", COMMANDS)
def test_help_describes_the_command(module):
    """--help exits 0 and lists the flags operators depend on."""
    result = run(module, "--help")
    assert result.returncode == 0
    assert "--host" in result.stdout


def test_the_master_starts_without_loading_pyav():
    """The master's command imports no PyAV (media loads it on first use): ~100 ms of CPU
    off the start of every cluster, whose other roles wait for the master to answer."""
    check = "import sys, myyoutube.master.main; print('av' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "False"


@pytest.mark.parametrize(
    "module, args",
    [
        ("myyoutube.master", ["--port", "http"]),
        # Nodes would be declared dead between their heartbeats.
        ("myyoutube.master", ["--data-dir", "x", "--heartbeat", "10", "--dead-after", "5"]),
        ("myyoutube.master", ["--data-dir", "x", "--expect-datanodes", "3"]),  # without --recover
        # Past what the index's integers hold.
        ("myyoutube.master", ["--data-dir", "x", "--quota-bytes", "9000PiB"]),
        ("myyoutube.datanode", ["--master", "nowhere", "--data-dir", "x"]),
        ("myyoutube.web", ["--master", "127.0.0.1:1", "--max-upload-bytes", "-5"]),
        ("myyoutube.web", ["--master", "127.0.0.1:1", "--max-upload-bytes", "2 gigs"]),
        ("myyoutube.datanode", ["--master", "127.0.0.1:1", "--data-dir", "x", "--capacity-bytes", "0GiB"]),
        ("myyoutube.cluster", ["--datanodes", "zero"]),
        # A typo here matched no peer, silently: the proxy's visitors shared its limits.
        ("myyoutube.web", ["--master", "127.0.0.1:1", "--trusted-proxy", "300.1.1.1"]),
    ],
)
def test_bad_flags_exit_non_zero_with_a_readable_line(module, args):
    """A malformed flag value is named in an error line, exit status 2, no traceback."""
    result = run(module, *args)
    assert result.returncode == 2
    assert "error:" in result.stderr and "Traceback" not in result.stderr


def test_size_flags_take_units():
    """Every flag counted in bytes takes a unit as well as a plain count (an operator
    types 20GiB, not 21474836480); a bare letter is binary, a decimal unit decimal."""
    assert (
        web_main.parse_args(["--master", "127.0.0.1:1", "--max-upload-bytes", "2GiB"]).max_upload_bytes
        == 2 * 1024**3
    )
    assert master_main.parse_args(["--data-dir", "x", "--quota-bytes", "20GB"]).quota_bytes == 20 * 1000**3
    # No default quota: spelled as for one account (`user set --quota-bytes unlimited`).
    assert master_main.parse_args(["--data-dir", "x", "--quota-bytes", "unlimited"]).quota_bytes == 0
    datanode = datanode_main.parse_args(
        [
            "--master",
            "127.0.0.1:1",
            "--data-dir",
            "x",
            "--capacity-bytes",
            "500G",
            "--scrub-bytes-per-s",
            "10MiB",
        ]
    )
    assert (datanode.capacity_bytes, datanode.scrub_bytes_per_s) == (500 * 1024**3, 10 * 1024**2)


def test_a_size_flag_refused_says_what_it_takes():
    """A size flag that cannot be read names what it takes, in the usage error line."""
    result = run("myyoutube.web", "--master", "127.0.0.1:1", "--max-upload-bytes", "2 gigs")
    assert result.returncode == 2
    assert "expected a number of bytes, or with a unit: 500MiB, 2GiB, 1.5GB; got '2 gigs'" in result.stderr


@pytest.mark.parametrize(
    "module, args",
    [("myyoutube.master", ["--data-dir", "DATA"]), ("myyoutube.web", ["--master", "127.0.0.1:1"])],
)
def test_busy_port_is_one_line_exit_1(tmp_path, module, args):
    """A role asked to listen on a taken port says so in one plain line and exits 1 (the
    web's used to repeat the address as a Python tuple: "error while attempting to bind
    on address ('127.0.0.1', PORT): address already in use")."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        flags = [str(tmp_path) if arg == "DATA" else arg for arg in args]
        result = run(module, "--port", str(port), *flags)
    assert result.returncode == 1
    prog = module.replace(".", "-")
    assert result.stderr.strip().splitlines()[-1] == (
        f"{prog}: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
    assert "Traceback" not in result.stderr


def test_a_spool_dir_that_is_a_file_is_refused_at_start(tmp_path):
    """--spool-dir naming a file exits 1 in one line naming it; the web used to start, and
    then answer every upload with 503 "The storage cluster is not answering"."""
    spool = tmp_path / "a.mp4"
    spool.write_bytes(b"not a folder")
    result = run("myyoutube.web", "--master", "127.0.0.1:1", "--port", "0", "--spool-dir", str(spool))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"myyoutube-web: error: cannot use --spool-dir {spool}: it is a file, not a folder"
    )


def test_restore_of_a_file_that_is_no_index_is_one_line_exit_1(tmp_path):
    """--restore FILE with a file that is not an index backup says so in one line, exits 1
    and leaves the data directory empty (so it can be tried again)."""
    not_an_index = tmp_path / "notes.txt"
    not_an_index.write_text("shopping list\n" * 100)
    data_dir = tmp_path / "master"
    result = run(
        "myyoutube.master", "--port", "0", "--data-dir", str(data_dir), "--restore", str(not_an_index)
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip().splitlines()[-1].startswith("myyoutube-master: error: cannot restore the index")
    )
    assert list(data_dir.iterdir()) == []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_restore_of_a_missing_file_names_the_reason_in_words(tmp_path):
    """--restore with a backup path that names no file said "[Errno 2] No such file or
    directory: 'FILE'" after the path; it says the reason in words, and the data
    directory stays empty for the next try."""
    (tmp_path / "master").mkdir()
    with pytest.raises(service.StartupError) as refused:
        index_files.restore(tmp_path / "nosuch.sqlite3", tmp_path / "master")
    assert str(refused.value) == (
        f"cannot restore the index from {tmp_path / 'nosuch.sqlite3'}: No such file or directory"
    )
    assert list((tmp_path / "master").iterdir()) == []


def test_start_order_does_not_matter(tmp_path):
    """A datanode and a web front end started before their master wait for it (a web
    answers 503 meanwhile) instead of exiting; once the master starts, the datanode
    registers and the web serves."""
    master_port = free_port()
    waiting = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "myyoutube.datanode",
            "--master",
            f"127.0.0.1:{master_port}",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path / "node"),
            "--heartbeat",
            "0.3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    web = start_role(
        "myyoutube.web", ["--master", f"127.0.0.1:{master_port}", "--port", "0"], tmp_path / "web.log"
    )
    master = None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{web.port}/listar", timeout=10) as response:
            raise AssertionError(f"expected 503 before the master is up, got {response.status}")
    except urllib.error.HTTPError as refused:
        assert refused.code == 503
    try:
        time.sleep(1.0)
        assert waiting.poll() is None, waiting.stderr.read()  # still waiting, not exited
        master = start_role(
            "myyoutube.master",
            ["--port", str(master_port), "--data-dir", str(tmp_path / "master")],
            tmp_path / "master.log",
        )
        assert "listening on" in waiting.stdout.readline()  # announced once registered
        with urllib.request.urlopen(f"http://127.0.0.1:{web.port}/listar", timeout=10) as response:
            assert response.status == 200
    finally:
        waiting.terminate()
        waiting.wait(10)
        web.stop()
        if master is not None:
            master.stop()


def test_a_datanode_on_a_read_only_folder_exits_in_one_line(tmp_path):
    """A datanode whose folder is on a read-only disk (its id already there, as after a
    restart) exits 1 with one line naming the folder and the reason. It used to start,
    register and be picked for uploads it could only refuse."""
    data_dir = tmp_path / "datanode"
    data_dir.mkdir()
    (data_dir / NODE_ID_FILE).write_text(uuid.uuid4().hex + "\n")
    with read_only_mount(data_dir):
        result = run(
            "myyoutube.datanode", "--port", "0", "--data-dir", str(data_dir), "--master", "127.0.0.1:9"
        )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"myyoutube-datanode: error: cannot write to data dir {data_dir}: Read-only file system"
    )


def test_a_second_master_on_the_same_data_dir_is_refused(tmp_path):
    """A master started on a data dir another running master uses exits 1 with one line
    saying so (before, it ran beside the first on the same index); once the first has
    stopped, even killed with SIGKILL, the directory can be used again."""
    data_dir = str(tmp_path / "master")
    first = start_role("myyoutube.master", ["--port", "0", "--data-dir", data_dir], tmp_path / "first.log")
    try:
        second = run("myyoutube.master", "--port", "0", "--data-dir", data_dir)
    finally:
        first.kill()
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert second.stderr.strip().splitlines()[-1] == (
        f"myyoutube-master: error: data dir {data_dir} is in use by another myyoutube-master; "
        "stop that one first, or give this one a data dir of its own"
    )
    again = start_role("myyoutube.master", ["--port", "0", "--data-dir", data_dir], tmp_path / "again.log")
    again.stop()


def test_a_second_datanode_on_the_same_data_dir_is_refused(tmp_path):
    """A datanode started on the data dir of a running datanode exits 1 with one line,
    before it registers: two processes with one node id would make the master move the
    node's replicas back and forth between their addresses."""
    master = start_role(
        "myyoutube.master", ["--port", "0", "--data-dir", str(tmp_path / "master")], tmp_path / "master.log"
    )
    node_dir = str(tmp_path / "node")
    node_args = ["--master", master.address, "--port", "0", "--data-dir", node_dir]
    try:
        node = start_role("myyoutube.datanode", node_args, tmp_path / "node.log")
        second = run("myyoutube.datanode", *node_args)
        node.stop()
    finally:
        master.stop()
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert (
        second.stderr.strip()
        .splitlines()[-1]
        .startswith(
            f"myyoutube-datanode: error: data dir {node_dir} is in use by another myyoutube-datanode;"
        )
    )
    assert (tmp_path / "master.log").read_text().count(" registered (") == 1  # the first only


def test_public_bind_without_certificates_is_refused(tmp_path):
    """Listening beyond loopback without --cert-dir is refused with the reason."""
    result = run("myyoutube.master", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "without --cert-dir" in result.stderr


def test_roles_raise_their_open_file_limit_to_the_hard_limit(tmp_path):
    """A role started under a soft limit of 256 open files runs with the hard limit, so a
    busy front end is not refused connections by the usual default of 1024."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 256:
        pytest.skip(f"the hard open-file limit here ({hard}) leaves nothing to raise")
    role = start_role(
        "myyoutube.master",
        ["--port", "0", "--data-dir", str(tmp_path / "master")],
        tmp_path / "master.log",
        prefix=("prlimit", f"--nofile=256:{hard}", "--"),
    )
    try:
        limits = Path(f"/proc/{role.process.pid}/limits").read_text()
        line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        assert int(line.split()[3]) == hard
    finally:
        role.stop()


# Under this open-file limit (soft = hard, so nothing can be raised) a role keeps
# admission.fd_headroom(160) = 64 descriptors free: it takes connections while their
# descriptor numbers stay below 96.
LOW_FILE_LIMIT = 160
IDLE_CONNECTIONS = 150


def _hold_idle_connections(host: str, port: int) -> tuple[list[socket.socket], int]:
    """Open IDLE_CONNECTIONS connections that send nothing; (them, how many the role closed
    at once)."""
    held = [socket.create_connection((host, port), timeout=5) for _ in range(IDLE_CONNECTIONS)]
    time.sleep(1.0)
    closed = 0
    for sock in held:
        sock.settimeout(0.01)
        try:
            closed += sock.recv(1) == b""
        except TimeoutError:
            pass
        except ConnectionError:
            closed += 1
    return held, closed


async def _list_one(host: str, port: int) -> None:
    client = MasterClient(host, port, None)
    try:
        await client.list_page(limit=1)
    finally:
        client.close()


@pytest.mark.parametrize("module", ["myyoutube.master", "myyoutube.web"])
def test_roles_refuse_connections_before_the_open_file_limit(tmp_path, module):
    """Under `prlimit --nofile=160:160`, 150 idle connections do not exhaust a role's file
    descriptors: those past the headroom are closed at once with one clear log line and no
    "Too many open files" anywhere, and once they leave the role serves again."""
    master = None
    if module == "myyoutube.web":
        master = start_role(
            "myyoutube.master", ["--port", "0", "--data-dir", str(tmp_path / "m")], tmp_path / "m.log"
        )
        args = [
            "--master",
            master.address,
            "--port",
            "0",
            "--max-connections-per-client",
            "1000",
            "--header-timeout",
            "30",
        ]
    else:
        args = ["--port", "0", "--data-dir", str(tmp_path / "data")]
    log_path = tmp_path / "role.log"
    role = start_role(
        module, args, log_path, prefix=("prlimit", f"--nofile={LOW_FILE_LIMIT}:{LOW_FILE_LIMIT}", "--")
    )
    try:
        held, closed = _hold_idle_connections(role.host, role.port)
        assert 0 < closed < IDLE_CONNECTIONS
        assert role.alive()
        for sock in held:
            sock.close()
        log = log_path.read_text()
        assert f"of {LOW_FILE_LIMIT} open files left" in log
        assert "Too many open files" not in log
        time.sleep(0.5)
        if module == "myyoutube.web":
            with urllib.request.urlopen(f"http://{role.address}/api/me", timeout=5) as answer:
                assert answer.status == 200
        else:
            asyncio.run(_list_one(role.host, role.port))
    finally:
        role.stop()
        if master is not None:
            master.stop()


@pytest.mark.parametrize(
    ("text", "compared_as"), [("0:0::1", "::1"), ("2001:DB8::1", "2001:db8::1"), ("10.0.0.1", "10.0.0.1")]
)
def test_an_ip_address_flag_is_kept_in_the_form_peers_are_compared_in(text, compared_as):
    """--trusted-proxy 2001:DB8::1 was accepted and then matched no peer (whose address
    reads 2001:db8::1): the flag's value is the address's canonical text."""
    assert service.ip_address(text) == compared_as
