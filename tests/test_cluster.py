"""`myyoutube-cluster`: one command starts the whole service with an admin account, SIGTERM
stops it cleanly."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from harness import mp4_bytes, multipart
from myyoutube import launch


def cluster_command(data_dir) -> list[str]:
    """`myyoutube-cluster` on `data_dir`, the web on any free port."""
    return [
        sys.executable,
        "-c",
        "from myyoutube.cluster import main; main()",
        "--data-dir",
        str(data_dir),
        "--web-port",
        "0",
    ]


def start_cluster(data_dir, *flags: str) -> tuple[subprocess.Popen, str, str]:
    """(process, URL, whatever it printed before the URL: the admin password's whereabouts).
    The command leads a process group of its own, as a shell's job does, so a test can
    press Ctrl-C (SIGINT to the whole group)."""
    process = subprocess.Popen(
        [*cluster_command(data_dir), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        process_group=0,
    )
    before = []
    while not (line := process.stdout.readline()).startswith("MyYoutube at http://"):
        assert line, process.stderr.read() if process.poll() is not None else "no URL printed"
        before.append(line)
    return process, line.split()[-1], "".join(before)


def run_cluster(data_dir, *flags: str) -> subprocess.CompletedProcess:
    """`myyoutube-cluster` on `data_dir` run to its end (a start it refuses)."""
    return subprocess.run(
        [*cluster_command(data_dir), *flags],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def sign_in(url: str, password: str) -> str:
    request = urllib.request.Request(
        f"{url}/api/login",
        data=json.dumps({"username": "admin", "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["token"]


def post_video(url: str, token: str, name: str, data: bytes) -> int:
    body, content_type = multipart(name, data)
    request = urllib.request.Request(
        f"{url}/upload",
        data=body,
        method="POST",
        headers={"Content-Type": content_type, "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def test_cluster_serves_survives_restart_and_stops_on_sigterm(tmp_path):
    """With no setup, the cluster prints its URL and, on its first start only, where the
    generated admin password is (a 0600 file); that password signs in and uploads; it exits
    0 on SIGTERM, on Ctrl-C and on SIGHUP, each time leaving an index snapshot on the
    datanodes and no role running, and keeps videos across runs."""
    data = mp4_bytes(os.urandom(10_000))
    process, url, password_line = start_cluster(tmp_path)
    password_file = tmp_path / "master" / "admin-password"
    try:
        assert str(password_file) in password_line
        assert password_file.stat().st_mode & 0o777 == 0o600
        token = sign_in(url, password_file.read_text().strip())
        assert post_video(url, token, "kept.mp4", data) == 201
        keys = [tmp_path / "certs" / name / "node.key" for name in ("master", "web", "datanode0")]
        assert all(key.stat().st_mode & 0o077 == 0 for key in [*keys, tmp_path / "certs" / "ca" / "ca.key"])
    finally:
        process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    # The master stopped before its datanodes: its stop-time index snapshot reached them.
    kinds = [json.loads(meta.read_text())["kind"] for meta in (tmp_path / "datanodes").rglob("*.meta")]
    assert kinds.count("index-snapshot") >= 2

    process, url, password_line = start_cluster(tmp_path)
    try:
        assert password_line == ""  # said once, on the start that made it
        with urllib.request.urlopen(f"{url}/original/kept.mp4", timeout=30) as response:
            assert response.read() == data
    finally:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the whole job gets it
    assert process.wait(30) == 0
    # The roles are not in the job: the cluster stopped them in order, and the master's
    # stop-time snapshot reached the datanodes (it failed when they got the Ctrl-C too).
    snapshots = re.findall(
        r"index snapshot (?:\w+ taken|failed)", (tmp_path / "logs" / "master.log").read_text()
    )
    assert snapshots[-1].endswith("taken"), snapshots

    process, _, _ = start_cluster(tmp_path)
    process.send_signal(signal.SIGHUP)  # the terminal closed: the roles go with the command
    assert process.wait(30) == 0
    assert processes_using(tmp_path) == []


def role_pid(data_dir, module: str) -> int:
    """The pid of the one running `module` (myyoutube.master...) of the cluster on `data_dir`."""
    (pid,) = [pid for pid in processes_using(data_dir) if module.encode() in command_line(pid)]
    return pid


def command_line(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read()
    except OSError:
        return b""


def test_a_master_killed_under_the_cluster_is_started_again_and_serves(tmp_path):
    """`kill -9` of the master under `myyoutube-cluster` (the OOM killer, a crash): the
    command says so and starts it again on its port and data, and the videos play again
    through the same URL; it used to stop the whole service (exit 1)."""
    data = mp4_bytes(os.urandom(10_000))
    process, url, _ = start_cluster(tmp_path)
    try:
        token = sign_in(url, (tmp_path / "master" / "admin-password").read_text().strip())
        assert post_video(url, token, "survivor.mp4", data) == 201
        os.kill(role_pid(tmp_path, "myyoutube.master"), signal.SIGKILL)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/original/survivor.mp4", timeout=10) as response:
                    assert response.read() == data
                    break
            except OSError:
                assert time.monotonic() < deadline, "the master was not started again"
                assert process.poll() is None, process.stderr.read()
                time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    said = process.stderr.read()
    assert "myyoutube.master on port" in said and "killed by SIGKILL" in said and "starting it again" in said


def processes_using(data_dir) -> list[int]:
    """Pids of the processes whose command line names `data_dir`."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                if str(data_dir).encode() in file.read():
                    found.append(int(entry))
        except (OSError, ValueError):
            continue
    return found


def test_sigterm_while_starting_leaves_no_role_running(tmp_path):
    """SIGTERM while the cluster is still starting (systemd stopping it, `timeout`) stops
    the roles already started and exits 0. It used to kill only myyoutube-cluster and leave
    the master and datanodes running without it, holding the index, so the next start put
    a second master on the same data directory."""
    data_dir = tmp_path / "data"
    process = subprocess.Popen(
        cluster_command(data_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        # A datanode's log appears once the master is up: the start is under way.
        while not (data_dir / "logs" / "datanode0.log").exists():
            assert process.poll() is None, process.stderr.read()
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        assert processes_using(data_dir) == []
    finally:
        process.kill()
        for pid in processes_using(data_dir):  # what the bug leaves behind: ours, by pid
            os.kill(pid, signal.SIGKILL)


def test_a_damaged_cluster_ca_is_one_line_not_a_traceback(tmp_path):
    """A data directory whose cluster CA key is damaged (a botched copy, a truncated disk)
    stops the start with one line naming the CA, exit 1 (it used to end in a CertError
    traceback), and starts no role."""
    data_dir = tmp_path / "data"
    (data_dir / "certs" / "ca").mkdir(parents=True)
    (data_dir / "certs" / "ca" / "ca.key").write_text("not a key\n")
    result = run_cluster(data_dir)
    assert result.returncode == 1
    assert result.stderr.startswith(f"myyoutube-cluster: error: cannot read the CA in {data_dir}/certs/ca: ")
    assert result.stderr.count("\n") == 1
    assert not (data_dir / "logs").exists()


def test_a_data_dir_that_is_a_file_is_named_in_words(tmp_path):
    """`--data-dir` naming a file stops the start with one line saying the path is a
    file, exit 1; it used to read "[Errno 17] File exists: 'PATH'", which suggests that
    something exists that should not."""
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("notes\n")
    result = run_cluster(not_a_folder)
    assert result.returncode == 1
    assert (
        result.stderr == f"myyoutube-cluster: error: cannot use {not_a_folder}: it is a file, not a folder\n"
    )


def test_a_cluster_of_one_datanode_stores_videos_and_a_second_ctrl_c_stops_at_once(tmp_path):
    """`--datanodes 1` makes a cluster that stores uploads (one copy each); it used to
    start, then refuse every upload because the master still wanted 2 copies. A second
    Ctrl-C during the ordered stop (here the master's snapshot waits on a hung datanode)
    kills every role at once, says so in one line and exits 130; it used to be ignored,
    and the stop took its full course (10 s per role that does not stop)."""
    process, url, _ = start_cluster(tmp_path, "--datanodes", "1")
    try:
        token = sign_in(url, (tmp_path / "master" / "admin-password").read_text().strip())
        assert post_video(url, token, "alone.mp4", mp4_bytes(os.urandom(10_000))) == 201
        (datanode,) = role_pids(tmp_path, "myyoutube.datanode")
        os.kill(datanode, signal.SIGSTOP)  # hung: the master's stop-time snapshot waits for it
        os.killpg(process.pid, signal.SIGINT)
        while role_pids(tmp_path, "myyoutube.web"):  # stopped first: the stop is under way
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(launch.STOP_TIMEOUT_S) == 130  # no role waited for
    finally:
        process.kill()
        for pid in processes_using(tmp_path):  # what the bug leaves behind: ours, by pid
            os.kill(pid, signal.SIGKILL)
    assert process.stderr.read().splitlines()[-1].startswith("myyoutube-cluster: interrupted again:")
    assert processes_using(tmp_path) == []


def role_pids(data_dir, module: str) -> list[int]:
    """Pids of the `module` roles working on `data_dir`."""
    found = []
    for pid in processes_using(data_dir):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                if module.encode() in file.read().split(b"\0"):
                    found.append(pid)
        except OSError:
            continue
    return found


def test_recover_rebuilds_a_lost_master_folder_from_the_datanodes(tmp_path):
    """After DATA_DIR/master is lost, `myyoutube-cluster --recover` rebuilds the index
    from the datanodes (the snapshot the master left at its last stop) and serves every
    video and account again; `--restore FILE` starts from a backup (`myyoutube admin
    backup`) the same way. Before, a cluster's operator had no way to run the master's
    --recover or --restore, short of starting the master by hand on the port saved in
    cluster.json with the cluster's certificates, then stopping it."""
    data = mp4_bytes(os.urandom(10_000))
    data_dir, backup = tmp_path / "data", tmp_path / "index-backup.sqlite3"
    process, url, _ = start_cluster(data_dir)
    password = (data_dir / "master" / "admin-password").read_text().strip()
    try:
        token = sign_in(url, password)
        assert post_video(url, token, "kept.mp4", data) == 201
        request = urllib.request.Request(
            f"{url}/api/admin/backup", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            backup.write_bytes(response.read())
    finally:
        process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    for start in (("--recover",), ("--restore", str(backup))):
        shutil.rmtree(data_dir / "master")
        process, url, said = start_cluster(data_dir, *start)
        # A recovery can take minutes: the terminal says what is going on and where to look.
        assert ("Rebuilding the index from the datanodes' reports" in said) == (start[0] == "--recover")
        try:
            sign_in(url, password)  # the account came back with the index
            with urllib.request.urlopen(f"{url}/original/kept.mp4", timeout=30) as response:
                assert response.read() == data
        finally:
            process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, start
    assert processes_using(data_dir) == []


@pytest.mark.parametrize("start", [("--recover",), ("--restore", "backup.sqlite3")])
def test_recover_refuses_a_master_folder_that_holds_an_index(tmp_path, start):
    """`--recover` or `--restore FILE` with DATA_DIR/master still holding files is one
    line saying to move them away, exit 1, and no role is left running: an index is never
    overwritten."""
    (tmp_path / "master").mkdir()
    (tmp_path / "master" / "index.sqlite3").write_bytes(b"kept")
    result = run_cluster(tmp_path, *start)
    assert result.returncode == 1
    assert result.stderr == (
        f"myyoutube-cluster: error: {start[0]} needs {tmp_path}/master empty or absent; "
        "move its contents away first\n"
    )
    assert (tmp_path / "master" / "index.sqlite3").read_bytes() == b"kept"
    assert processes_using(tmp_path) == []


def test_a_saved_port_taken_since_is_replaced_and_the_videos_stay(tmp_path):
    """A datanode's and the master's ports saved by the first start (picked by the OS)
    but taken by another program since make the next start use other ports, with one
    warning line each, and every video is still served; the cluster used to refuse to
    start ('cannot listen on 127.0.0.1:PORT: Address already in use')."""
    data = mp4_bytes(os.urandom(10_000))
    process, url, _ = start_cluster(tmp_path)
    try:
        token = sign_in(url, (tmp_path / "master" / "admin-password").read_text().strip())
        assert post_video(url, token, "kept.mp4", data) == 201
    finally:
        process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    saved = json.loads((tmp_path / "cluster.json").read_text())
    squatters = []
    for port in (saved["master"], saved["datanodes"][1]):
        squatter = socket.socket()
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        squatters.append(squatter)
    try:
        process, url, _ = start_cluster(tmp_path)
        try:
            with urllib.request.urlopen(f"{url}/original/kept.mp4", timeout=30) as response:
                assert response.read() == data
        finally:
            process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        for squatter in squatters:
            squatter.close()
    warnings = process.stderr.read().splitlines()
    assert warnings == [
        f"myyoutube-cluster: warning: master's port {saved['master']} is taken by another program; "
        "it starts on another one",
        f"myyoutube-cluster: warning: datanode1's port {saved['datanodes'][1]} is taken by another "
        "program; it starts on another one",
    ]


def test_a_busy_web_port_is_refused_before_any_role_starts(tmp_path):
    """`myyoutube-cluster` with its web port taken (8080 often is) exits 1 with one line
    naming the port and the flag, before the master starts: it used to start the master
    and datanodes first, and that failed first start made the admin password, which the
    next start, the first to serve, never mentioned. A data folder it would have made is
    not left behind, empty."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = run_cluster(tmp_path / "data", "--web-port", str(port))
    assert result.returncode == 1
    assert result.stderr == (
        f"myyoutube-cluster: error: cannot listen on 127.0.0.1:{port}: Address already in use; "
        "choose another --web-port, or stop the program using it\n"
    )
    assert not (tmp_path / "data").exists()


def test_a_wildcard_internal_host_is_refused_naming_the_flag(tmp_path):
    """`--internal-host 0.0.0.0` is refused at once (exit 2) with a line about that flag;
    it used to start the master, then fail on a datanode's advice to pass --advertise,
    a flag myyoutube-cluster does not take."""
    result = run_cluster(tmp_path, "--internal-host", "0.0.0.0")
    assert result.returncode == 2
    assert "error: --internal-host 0.0.0.0 is a wildcard" in result.stderr.splitlines()[-1]
    assert not (tmp_path / "logs").exists()


def test_a_lost_role_key_is_issued_again(tmp_path):
    """A role's node.key lost from DATA_DIR/certs (a botched copy) gets that role a new
    certificate from the cluster's own CA at the next start, which serves as before; the
    cluster used to refuse to start ('cannot use the certificates in ...')."""
    process, _, _ = start_cluster(tmp_path)
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    (tmp_path / "certs" / "datanode1" / "node.key").unlink()
    process, url, _ = start_cluster(tmp_path)
    try:
        with urllib.request.urlopen(f"{url}/listar", timeout=30) as response:
            assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert (tmp_path / "certs" / "datanode1" / "node.key").stat().st_mode & 0o077 == 0


def test_a_second_cluster_on_the_same_data_dir_is_refused_in_one_line(tmp_path):
    """A second myyoutube-cluster on a data dir a running one uses exits 1 with one line
    saying so, before any role starts; it used to warn that the first one's saved ports
    were 'taken by another program' and then fail on its master's refusal."""
    process, _, _ = start_cluster(tmp_path)
    try:
        second = run_cluster(tmp_path)
    finally:
        process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert second.returncode == 1
    assert second.stderr == (
        f"myyoutube-cluster: error: data dir {tmp_path} is in use by another myyoutube-cluster; "
        "stop that one first, or give this one a data dir of its own\n"
    )


def test_a_web_on_every_address_prints_a_url_a_browser_can_open(tmp_path):
    """With --host 0.0.0.0 the cluster says it listens on every address and prints the
    loopback URL, which serves; it printed http://0.0.0.0:PORT, an address to bind, not
    one a browser connects to."""
    process, url, said = start_cluster(tmp_path, "--host", "0.0.0.0")
    try:
        assert url.startswith("http://127.0.0.1:"), url
        assert "Listening on every address of this machine (--host 0.0.0.0)" in said
        with urllib.request.urlopen(f"{url}/", timeout=10) as page:
            assert page.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
