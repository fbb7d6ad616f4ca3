"""`myyoutube-cluster`: the whole service on one machine, one command.

Theory of operation
-------------------
Starts the master, N datanodes and the web front end as child processes (the same
commands an operator would run by hand), each logging to DATA_DIR/logs/<role>.log, and
prints `MyYoutube at http://HOST:PORT` once the web front end answers. SIGINT or SIGTERM
stops every child and exits 0.

A datanode is known to the master by its address, and stores its bytes under
DATA_DIR/datanodes/uploads{PORT}; so the ports first picked (any free ones) are saved in
DATA_DIR/cluster.json and reused on every later start, and a restarted cluster finds all
its videos again. A random cluster secret is generated into DATA_DIR/cluster.secret
(mode 0600) on first start and handed to every role.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import time
from pathlib import Path

from myyoutube import service
from myyoutube.launch import LaunchError, Role, start_role
from myyoutube.web.main import DEFAULT_PORT

DEFAULT_DATA_DIR = Path("myyoutube-data")
DEFAULT_DATANODES = 3

# How often the supervisor checks that its children still run.
SUPERVISE_POLL_S = 0.5


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
        help=f"how many datanodes (default {DEFAULT_DATANODES})",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address every role binds (default 127.0.0.1)")
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
    parser.add_argument(
        "--max-upload-bytes",
        type=service.positive_int,
        default=None,
        help="largest accepted upload (default: the web front end's)",
    )
    return parser.parse_args(argv)


def ensure_secret(data_dir: Path) -> Path:
    path = data_dir / "cluster.secret"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_hex(32))
    return path


def _optional(flag: str, value) -> list[str]:
    return [] if value is None else [flag, str(value)]


class Cluster:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.data_dir: Path = args.data_dir.resolve()
        self.layout_path = self.data_dir / "cluster.json"
        self.roles: list[Role] = []

    def _saved_ports(self) -> dict:
        try:
            return json.loads(self.layout_path.read_text())
        except (OSError, ValueError):
            return {}

    def _start(self, module: str, name: str, args: list[str]) -> Role:
        role = start_role(
            module, [*args, "--secret-file", str(self.secret)], self.data_dir / "logs" / f"{name}.log"
        )
        self.roles.append(role)
        return role

    def start(self) -> Role:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.secret = ensure_secret(self.data_dir)
        saved, host = self._saved_ports(), self.args.host
        master = self._start(
            "myyoutube.master",
            "master",
            [
                "--host",
                host,
                "--port",
                str(saved.get("master", 0)),
                "--data-dir",
                str(self.data_dir / "master"),
                *_optional("--dead-after", self.args.dead_after),
                *_optional("--heartbeat", self.args.heartbeat),
            ],
        )
        node_ports = saved.get("datanodes", [])
        node_ports += [0] * (self.args.datanodes - len(node_ports))
        nodes = [
            self._start(
                "myyoutube.datanode",
                f"datanode{i}",
                [
                    "--master",
                    master.address,
                    "--host",
                    host,
                    "--port",
                    str(port),
                    "--data-dir",
                    str(self.data_dir / "datanodes"),
                    *_optional("--heartbeat", self.args.heartbeat),
                ],
            )
            for i, port in enumerate(node_ports[: self.args.datanodes])
        ]
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
                host,
                "--port",
                str(self.args.web_port),
                *_optional("--max-upload-bytes", self.args.max_upload_bytes),
            ],
        )

    def supervise(self) -> int:
        """Wait for a signal (exit 0) or the master's or web's death (exit 1).

        A datanode that dies is reported and left down: the others keep serving every
        video from their replicas, which is the point of having three.
        """
        stop, reported = [], set()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.append(True))
        while not stop:
            for role in self.roles:
                if role.alive() or role.port in reported:
                    continue
                where = f"{role.module} on port {role.port} exited (see {role.log_path})"
                if role.module != "myyoutube.datanode":
                    print(f"myyoutube-cluster: error: {where}", file=sys.stderr)
                    return 1
                print(
                    f"myyoutube-cluster: warning: {where}; serving from the other replicas",
                    file=sys.stderr,
                    flush=True,
                )
                reported.add(role.port)
            time.sleep(SUPERVISE_POLL_S)
        return 0

    def stop(self) -> None:
        # Web first so no new requests arrive, master last so datanodes can say goodbye.
        for role in reversed(self.roles):
            role.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cluster = Cluster(args)
    try:
        web = cluster.start()
    except (LaunchError, OSError) as exc:
        cluster.stop()
        print(f"myyoutube-cluster: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        cluster.stop()
        sys.exit(0)
    print(f"MyYoutube at http://{web.host}:{web.port}", flush=True)
    status = cluster.supervise()
    cluster.stop()
    sys.exit(status)
