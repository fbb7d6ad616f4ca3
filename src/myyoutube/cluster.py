"""`myyoutube-cluster`: the whole service on one machine, one command.

Theory of operation
-------------------
Starts the master, N datanodes and the web front end as child processes (the same
commands an operator would run by hand), each logging to DATA_DIR/logs/<role>.log, and
prints `MyYoutube at http://HOST:PORT` once the web front end answers (the loopback
address for a --host that binds every address). From then on cluster_supervision.py
watches the children until a signal stops them all, in order; a signal during the start
stops the roles started so far.

Each datanode has its own data directory (DATA_DIR/datanodes/node{N}, holding its node
id and blobs); the ports first picked (any free ones) are saved in DATA_DIR/cluster.json
and reused on every later start, so a restarted cluster finds all its videos again at
the same addresses (a node that does come back elsewhere keeps its replicas by its id,
so a saved port another program took since is replaced by a free one, with a warning).

Every internal link is mutual TLS, on loopback too: on first start a cluster CA is made
in DATA_DIR/certs/ca and one certificate per role instance (DATA_DIR/certs/master, web,
datanode0, ...; keys 0600), each handed to its role as --cert-dir. The web binds --host
(what browsers reach); the master and datanodes bind --internal-host (loopback unless
told otherwise), so exposing the web page does not expose the internal ports.

Accounts: the master owns them. With `--admin-password-file F` the master creates or
resets `admin` from F at every start; without it, the first start creates `admin` with a
random password in DATA_DIR/master/admin-password (0600), and this command prints that
path, before the address, on the start that created it. `--private` makes every page
need a sign-in.

`--recover` is for a lost DATA_DIR/master: the master is started with its own
`--recover` on the saved port and the datanodes are started before it announces itself,
since it rebuilds the index from their reports (snapshots and sidecars) first.
`--restore FILE` starts the master from a backup (`myyoutube admin backup`) with its own
`--restore`, on the saved port and with the cluster's certificates, which an operator
starting the master by hand had to find out. Both need DATA_DIR/master empty or absent.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from pathlib import Path

from myyoutube import certs, cluster_addresses, service
from myyoutube.cluster_supervision import Supervisor, stop_signals
from myyoutube.launch import STARTUP_TIMEOUT_S, LaunchError, Role, StartInterrupted, await_role, spawn_role
from myyoutube.master.main import DEFAULT_REPLICATION
from myyoutube.web.main import DEFAULT_PORT

DEFAULT_DATA_DIR = Path("myyoutube-data")
DEFAULT_DATANODES = 3

# A master rebuilding a lost index waits for every datanode's reports, then reads each
# blob's sidecar: minutes on a large cluster.
RECOVERY_TIMEOUT_S = 900.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="myyoutube-cluster", description="Run master, datanodes and web front end locally."
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"where everything is stored (default ./{DEFAULT_DATA_DIR})",
    )
    parser.add_argument(
        "--web-port",
        type=service.port_number,
        default=DEFAULT_PORT,
        help=f"web front end port (default {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--datanodes",
        type=service.positive_int,
        default=DEFAULT_DATANODES,
        help=f"how many datanodes (default {DEFAULT_DATANODES}; with fewer than "
        f"{DEFAULT_REPLICATION}, each video is kept once per datanode)",
    )
    _add_network_flags(parser)
    parser.add_argument(
        "--admin-password-file",
        type=Path,
        default=None,
        help="create the account 'admin' with the password in this file, or reset it to it "
        "(default: the first start writes a random one to DATA_DIR/master/admin-password)",
    )
    parser.add_argument("--private", action="store_true", help="every page and video needs a sign-in")
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--recover",
        action="store_true",
        help="the master's folder (DATA_DIR/master) was lost: rebuild its index from the "
        "datanodes (their index snapshots and blob sidecars) before serving; the folder must "
        "be empty or absent",
    )
    start.add_argument(
        "--restore",
        type=Path,
        metavar="FILE",
        help="start the master from an index backup made by `myyoutube admin backup`; "
        "DATA_DIR/master must be empty or absent",
    )
    parser.add_argument(
        "--max-upload-bytes",
        type=service.positive_size,
        default=None,
        help="largest accepted upload, e.g. 2GiB (default: the web front end's)",
    )
    args = parser.parse_args(argv)
    if service.is_wildcard(args.internal_host):
        # Each role is told the others' addresses, so this must be one they can connect
        # to; the datanode's own refusal would send the operator after --advertise,
        # which this command does not take.
        parser.error(
            f"--internal-host {args.internal_host} is a wildcard, which the roles cannot reach each "
            "other at; give one address of this machine (the default 127.0.0.1 keeps them private)"
        )
    return args


def _add_network_flags(parser: argparse.ArgumentParser) -> None:
    """Where the roles listen, and how the datanodes' liveness is judged."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="address the web front end binds (default 127.0.0.1)"
    )
    parser.add_argument(
        "--internal-host",
        default="127.0.0.1",
        help="address the master and datanodes bind (default 127.0.0.1: not reachable from other hosts)",
    )
    parser.add_argument(
        "--heartbeat",
        type=service.positive_float,
        default=None,
        help="datanode heartbeat seconds (default: the datanode's)",
    )
    parser.add_argument(
        "--dead-after",
        type=service.positive_float,
        default=None,
        help="seconds before a silent datanode is dead (default: the master's)",
    )


def ensure_certificates(certs_dir: Path, datanodes: int) -> None:
    """The cluster CA and a certificate per role instance, made once and kept."""
    ca = certs_dir / "ca"
    if not (ca / certs.CA_KEY).exists():
        certs.init_ca(ca)
    wanted = [("master", "master"), ("web", "web")] + [("datanode", f"datanode{i}") for i in range(datanodes)]
    for role, name in wanted:
        # Any of the three files lost makes the directory useless; this cluster holds its
        # own CA, so it issues the role a new certificate rather than refusing to start.
        if not all(
            (certs_dir / name / file).is_file() for file in (certs.CA_CERT, certs.NODE_CERT, certs.NODE_KEY)
        ):
            certs.issue(ca, role, name, certs_dir / name)


def _optional(flag: str, value) -> list[str]:
    return [] if value is None else [flag, str(value)]


class Cluster(Supervisor):
    """Starts the roles this command's flags ask for; as a Supervisor, it then watches
    and stops them."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__()
        self.args = args
        self.data_dir: Path = args.data_dir.resolve()
        self.layout_path = self.data_dir / "cluster.json"

    def _saved_ports(self) -> dict:
        try:
            return json.loads(self.layout_path.read_text())
        except (OSError, ValueError):
            return {}

    def _spawn(self, module: str, name: str, args: list[str]) -> tuple[subprocess.Popen, list[str], Path]:
        if self.stop_requested:
            raise StartInterrupted("stopped while starting")
        args = [*args, "--cert-dir", str(self.data_dir / "certs" / name)]
        log_path = self.data_dir / "logs" / f"{name}.log"
        # Out of this command's process group: a Ctrl-C used to reach every role at once,
        # so the master's stop-time snapshot found its datanodes already gone (and failed).
        process = spawn_role(module, args, log_path, own_process_group=True)
        self.spawned.append(process)  # what a second Ctrl-C kills (Supervisor.stop_now)
        return process, args, log_path

    def _start(
        self,
        module: str,
        name: str,
        args: list[str],
        spawned: tuple[subprocess.Popen, list[str], Path] | None = None,
        timeout_s: float = STARTUP_TIMEOUT_S,
    ) -> Role:
        """Start a role (or wait for one `_spawn` started) and keep it."""
        process, args, log_path = spawned or self._spawn(module, name, args)
        role = await_role(process, module, args, log_path, timeout_s, lambda: self.stop_requested)
        self.roles.append(role)
        return role

    def _start_master(self, port: int) -> tuple[Role | None, str]:
        """The master and its address; with --recover, only spawned (None): it rebuilds
        its index from the datanodes' reports, so they must start before it announces."""
        master_dir = self.data_dir / "master"
        flag = "--recover" if self.args.recover else "--restore" if self.args.restore else None
        if flag and master_dir.is_dir() and any(master_dir.iterdir()):
            raise LaunchError(f"{flag} needs {master_dir} empty or absent; move its contents away first")
        if not self.args.recover:
            restore = _optional("--restore", self.args.restore)
            master = self._start("myyoutube.master", "master", [*self._master_args(port), *restore])
            return master, master.address
        port = port or cluster_addresses.free_port(self.args.internal_host)  # the datanodes must know it now
        recover = ["--recover", "--expect-datanodes", str(self.args.datanodes)]
        self.recovering = self._spawn("myyoutube.master", "master", [*self._master_args(port), *recover])
        return None, f"{self.args.internal_host}:{port}"

    def _port_or_any(self, name: str, port: int) -> int:
        """`port` if it is free now, else 0 (any free one), said in one line. A port saved
        from an earlier start (first picked by the OS) may have been taken by another
        program since; no role depends on its old port: datanodes are known by their
        node id, and the cluster tells each role where the master is now."""
        if port == 0 or cluster_addresses.port_free(self.args.internal_host, port):
            return port
        print(
            f"myyoutube-cluster: warning: {name}'s port {port} is taken by another program; "
            "it starts on another one",
            file=sys.stderr,
            flush=True,
        )
        return 0

    def _check_web_port(self) -> None:
        """Refuse a --web-port another program holds (8080 often is) before any role starts:
        the master and datanodes used to start first, and a first start then failed having
        made the admin password, which the next start, the first to serve, did not mention."""
        refusal = self.args.web_port and cluster_addresses.bind_refusal(self.args.host, self.args.web_port)
        if refusal:
            raise LaunchError(
                f"cannot listen on {self.args.host}:{self.args.web_port}: {refusal}; "
                "choose another --web-port, or stop the program using it"
            )

    def _datanode_dir(self, number: int, port: int) -> Path:
        """Datanode `number`'s data directory. A first-release cluster kept every node's
        blobs in datanodes/uploads{PORT} of one shared folder: such a node keeps using it."""
        shared = self.data_dir / "datanodes"
        if port and (shared / f"uploads{port}").is_dir():
            return shared
        return shared / f"node{number}"

    def _master_args(self, port: int) -> list[str]:
        # A copy per datanode at most: more could never be placed, and with one or two
        # datanodes every upload would be refused or stay under-replicated.
        fewer_nodes = self.args.datanodes if self.args.datanodes < DEFAULT_REPLICATION else None
        return [
            "--host",
            self.args.internal_host,
            "--port",
            str(port),
            "--data-dir",
            str(self.data_dir / "master"),
            *_optional("--admin-password-file", self.args.admin_password_file),
            *_optional("--dead-after", self.args.dead_after),
            *_optional("--heartbeat", self.args.heartbeat),
            *_optional("--replication", fewer_nodes),
            *(["--private"] if self.args.private else []),
        ]

    def start(self) -> Role:
        self._check_web_port()  # before the data folder is made: a refused start leaves none
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            service.lock_data_dir(self.data_dir, "myyoutube-cluster")
        except service.StartupError as exc:
            raise LaunchError(str(exc)) from None
        ensure_certificates(self.data_dir / "certs", self.args.datanodes)
        saved, host = self._saved_ports(), self.args.internal_host
        master, master_address = self._start_master(self._port_or_any("master", saved.get("master", 0)))
        node_ports = saved.get("datanodes", [])
        node_ports += [0] * (self.args.datanodes - len(node_ports))
        nodes = [
            self._start(
                "myyoutube.datanode",
                f"datanode{i}",
                [
                    "--master",
                    master_address,
                    "--host",
                    host,
                    "--port",
                    str(self._port_or_any(f"datanode{i}", port)),
                    "--data-dir",
                    str(self._datanode_dir(i, port)),
                    *_optional("--heartbeat", self.args.heartbeat),
                ],
            )
            for i, port in enumerate(node_ports[: self.args.datanodes])
        ]
        if master is None:  # recovering: it announces once the index is rebuilt
            # Minutes on a large cluster, with nothing else on the terminal meanwhile.
            print(
                f"Rebuilding the index from the datanodes' reports; this can take minutes "
                f"(progress in {self.data_dir / 'logs' / 'master.log'})",
                flush=True,
            )
            master = self._start("myyoutube.master", "master", [], self.recovering, RECOVERY_TIMEOUT_S)
            self.recovering = None
        self.layout_path.write_text(
            json.dumps(
                {
                    "master": master.port,
                    "datanodes": [n.port for n in nodes] + node_ports[self.args.datanodes :],
                }
            )
        )
        return self._start(
            "myyoutube.web",
            "web",
            [
                "--master",
                master.address,
                "--host",
                self.args.host,
                "--port",
                str(self.args.web_port),
                *_optional("--max-upload-bytes", self.args.max_upload_bytes),
                *(["--private"] if self.args.private else []),
            ],
        )

    @property
    def generated_password(self) -> Path:
        """Where the master leaves the admin password it generated on its first start."""
        return self.data_dir / "master" / "admin-password"


def _reason(exc: Exception) -> str:
    """The one line saying why the cluster could not start. An OSError names the file it
    concerns and its reason in words, not as "[Errno 17] File exists: 'DIR'"."""
    if isinstance(exc, FileExistsError):  # mkdir on a file: "File exists" misleads
        return f"cannot use {exc.filename}: it is a file, not a folder"
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot use {exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    service.private_files()  # logs, layout and certificates too
    if args.admin_password_file is not None:
        args.admin_password_file = args.admin_password_file.resolve()
    if args.restore is not None:
        args.restore = args.restore.resolve()
    cluster = Cluster(args)
    had_password_file = cluster.generated_password.exists()
    for signum in stop_signals():
        signal.signal(signum, cluster.request_stop)
    try:
        web = cluster.start()
    except (StartInterrupted, LaunchError, OSError, certs.CertError) as exc:
        cluster.stop()
        if cluster.stop_requested:  # a role that the same Ctrl-C stopped failed to start: no news
            sys.exit(0)
        print(f"myyoutube-cluster: error: {_reason(exc)}", file=sys.stderr)
        sys.exit(1)
    if cluster.generated_password.exists() and not had_password_file:
        print(
            f"Sign in as admin with the password in {cluster.generated_password} "
            "(myyoutube login --username admin --password-file that file)",
            flush=True,
        )
    if service.is_wildcard(args.host):
        print(
            f"Listening on every address of this machine (--host {args.host}), port {web.port}: "
            "other machines use one of its names or addresses",
            flush=True,
        )
    print(f"MyYoutube at {cluster_addresses.browser_url(args.host, web.port)}", flush=True)
    status = cluster.supervise()
    cluster.stop()
    sys.exit(status)


if __name__ == "__main__":
    main()
