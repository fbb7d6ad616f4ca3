"""`myyoutube cert issue` (renewal) and `myyoutube cert revoke` against a running cluster.

Real processes: a TLS cluster (as myyoutube-cluster runs it) whose certificate
directories are changed underneath it by the real command, as an operator would. Nothing
is restarted; what the tests watch is what a user and an operator notice: uploads that
were under way, the next links, the master's log and /api/status.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import Cluster, mp4_bytes, store, wait_until
from myyoutube import certs, commandline, links, tls_contexts
from myyoutube.client import MasterClient


def cert_command(*args: str) -> str:
    """Run `myyoutube cert ARGS` and return its output; it must succeed."""
    result = subprocess.run(
        [sys.executable, "-m", "myyoutube.commandline", "cert", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def serial_in(cert_dir: Path) -> int:
    return certs.read_certificate(cert_dir / certs.NODE_CERT).serial


def client_with(cluster: Cluster, name: str) -> MasterClient:
    """A client of the master acting as admin, with a web certificate `name` of its own."""
    cert_dir = certs.issue(cluster.root / "certs" / "ca", "web", name, cluster.root / "certs" / name)
    return MasterClient(
        cluster.master.host, cluster.master.port, tls_contexts.load(cert_dir, "web"), user="admin"
    )


async def test_renewal_needs_no_restart_and_cuts_no_open_link(fresh_cluster, http):
    """Certificates issued again into the live cert dirs of the master, the datanodes and
    the web: an upload whose links were open before goes on and commits, the next links
    present the renewed certificates, and uploads and streams carry on; nothing restarts."""
    cluster = fresh_cluster(tls=True)
    pids = [role.process.pid for role in (cluster.master, cluster.web, *cluster.datanodes)]
    ca = cluster.root / "certs" / "ca"
    data = mp4_bytes(os.urandom(4 * 1024 * 1024))
    client = cluster.client()
    upload = await client.start_upload("across.mp4", "video/mp4")
    await upload.write(data[: 2 * 1024 * 1024])
    old = {name: serial_in(cluster.root / "certs" / name) for name in ("master", "datanode", "web")}
    for role in ("master", "datanode", "web"):
        out = cert_command(
            "issue", "--role", role, "--name", role, "--out", str(cluster.root / "certs" / role), str(ca)
        )
        assert f"(serial {serial_in(cluster.root / 'certs' / role):x})" in out
    await upload.write(data[2 * 1024 * 1024 :])
    assert (await upload.finish())["sha256"] == hashlib.sha256(data).hexdigest()

    new = {name: serial_in(cluster.root / "certs" / name) for name in ("master", "datanode", "web")}
    assert all(new[name] != old[name] for name in new)
    link = await links.connect(cluster.master.host, cluster.master.port, client_tls(cluster), "master")
    assert link.peer_serial == new["master"]
    await link.close()
    as_master = tls_contexts.load(
        certs.issue(ca, "master", "probe", cluster.root / "certs" / "probe"), "master"
    )
    for node in cluster.datanodes:
        link = await links.connect(node.host, node.port, as_master, "datanode")
        assert link.peer_serial == new["datanode"]
        await link.close()

    later = mp4_bytes(os.urandom(1_000_000))
    await store(cluster, "later.mp4", later)
    for name, expected in (("across.mp4", data), ("later.mp4", later)):
        async with http.get(f"{cluster.url}/stream/{name}") as response:
            assert response.status == 200 and await response.read() == expected
    assert [role.process.pid for role in (cluster.master, cluster.web, *cluster.datanodes)] == pids
    assert all(role.alive() for role in (cluster.master, cluster.web, *cluster.datanodes))
    assert all(node["state"] == "alive" for node in (await client.status())["datanodes"])
    assert f"renewed certificate of master (serial {new['master']:x})" in log_of(cluster, "master")
    client.close()


def client_tls(cluster: Cluster) -> tls_contexts.Tls:
    cluster.cert_args("web", "test-client")
    return tls_contexts.load(cluster.root / "certs" / "test-client", "web")


def log_of(cluster: Cluster, role: str) -> str:
    return (cluster.root / "logs" / f"{role}.log").read_text(errors="replace")


async def test_revoked_datanode_and_client_are_refused_with_the_reason_logged(fresh_cluster, http):
    """`myyoutube cert revoke` lists a datanode's and a client's certificates in the
    master's cert dir: the client's open link serves no further request and it cannot
    reconnect, the datanode's heartbeats are refused until the master takes it for dead,
    the master's log says whose certificate and why, and the rest of the cluster carries on."""
    cluster = fresh_cluster(tls=True)
    ca = cluster.root / "certs" / "ca"
    rogue_dir = certs.issue(ca, "datanode", "rogue", cluster.root / "certs" / "rogue")
    rogue = cluster.start_datanode(extra=("--cert-dir", str(rogue_dir)))
    revoked_client = client_with(cluster, "laptop")
    admin = client_with(cluster, "operator")
    assert any(node["address"] == rogue.address for node in (await revoked_client.status())["datanodes"])

    out = cert_command(
        "revoke",
        "--cert",
        str(rogue_dir / certs.NODE_CERT),
        "--cert",
        str(cluster.root / "certs" / "laptop" / certs.NODE_CERT),
        str(cluster.root / "certs" / "master"),
    )
    assert f"datanode rogue (serial {serial_in(rogue_dir):x}) revoked" in out
    assert f"web laptop (serial {serial_in(cluster.root / 'certs' / 'laptop'):x}) revoked" in out

    async def client_refused() -> bool:
        try:
            await revoked_client.status()
        except (ConnectionError, OSError):
            return True  # its open link is cut, and a new one refused
        return False

    await wait_until(client_refused, "the revoked client refused", 10)
    with pytest.raises((ConnectionError, OSError)):
        await revoked_client.status()

    async def rogue_is_dead() -> bool:
        nodes = {node["address"]: node for node in (await admin.status())["datanodes"]}
        return nodes[rogue.address]["state"] == "dead"

    await wait_until(rogue_is_dead, "the revoked datanode taken for dead", 20)
    assert rogue.alive()  # refused, not crashed: it keeps asking
    log = log_of(cluster, "master")
    assert f"rogue's certificate (serial {serial_in(rogue_dir):x}) is revoked" in log
    assert f"laptop's certificate (serial {serial_in(cluster.root / 'certs' / 'laptop'):x}) is revoked" in log

    data = mp4_bytes(os.urandom(500_000))
    await store(cluster, "still-works.mp4", data)
    async with http.get(f"{cluster.url}/stream/still-works.mp4") as response:
        assert response.status == 200 and await response.read() == data
    assert not any((cluster.folder(rogue)).glob("*.blob"))  # nothing placed on the revoked node
    revoked_client.close()
    admin.close()


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        ([], "name what to revoke: --cert FILE or --serial HEX (repeatable)"),
        (["--serial", "xyz"], "'xyz' is not a hexadecimal serial number"),
        (["--serial", "-5"], "'-5' is not a certificate serial number (they are positive)"),
        (["--serial", "0"], "'0' is not a certificate serial number (they are positive)"),
        (["--cert", "missing.crt"], "cannot read a certificate from missing.crt: No such file or directory"),
        (
            ["--cert", "ca.key"],
            "cannot read a certificate from ca.key: it is not a PEM certificate (node.crt, ca.crt)",
        ),
    ],
)
def test_revoke_without_a_usable_certificate_is_one_line_and_changes_nothing(
    tmp_path, capsys, monkeypatch, args, sentence
):
    """`cert revoke` with nothing to revoke, a bad serial, no such file or a file that is
    no certificate (a key) exits 1 with one readable line (no "[Errno 2]", no link to
    cryptography's FAQ) and leaves no revoked.txt behind."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ca.key").write_text("-----BEGIN PRIVATE KEY-----\nnot a certificate\n")
    with pytest.raises(SystemExit) as exit_status:
        commandline.main(["cert", "revoke", *args, str(tmp_path)])
    assert exit_status.value.code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"myyoutube: error: {sentence}"
    assert not (tmp_path / certs.REVOKED).exists()


def test_cert_init_into_a_closed_pipe_succeeds_quietly(tmp_path, monkeypatch, capsys):
    """`myyoutube cert init DIR | head -c0`: the CA is made and the command exits 0 without a
    word (it used to say "myyoutube: error: [Errno 32] Broken pipe" and exit 1, although
    the CA was there: an operator would run init again and be refused)."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone; line buffering makes the first line meet it
    with os.fdopen(write_end, "w", buffering=1) as closed_pipe:
        monkeypatch.setattr(sys, "stdout", closed_pipe)
        with pytest.raises(SystemExit) as exit_status:
            commandline.main(["cert", "init", str(tmp_path / "ca")])
    assert (exit_status.value.code, capsys.readouterr().err) == (0, "")
    assert (tmp_path / "ca" / certs.CA_KEY).exists() and (tmp_path / "ca" / certs.CA_CERT).exists()


def test_cert_init_on_a_file_names_it(tmp_path, capsys):
    """`cert init FILE` said "[Errno 17] File exists: 'FILE'"; it says FILE is no folder,
    and leaves the file as it was."""
    path = tmp_path / "notes.txt"
    path.write_text("mine\n")
    with pytest.raises(SystemExit) as exit_status:
        commandline.main(["cert", "init", str(path)])
    assert exit_status.value.code == 1
    assert capsys.readouterr().err == f"myyoutube: error: {path} is a file; name a folder for the CA\n"
    assert path.read_text() == "mine\n"
