"""Who a datanode is: a stable node id, where its bytes live, the address it advertises.

Theory of operation
-------------------
A datanode is its data directory, not its address. On first start it writes a random
node id (`node-id`, a UUID) there; every later start reads it back, so a node restarted
on another port or host is still the same node to the master, which moves its replicas
to the new address instead of treating them as lost. Blobs live directly in the data
directory, whatever the port.

The first release kept each node's blobs in DATA_DIR/uploads{PORT} (several nodes could
share one DATA_DIR). Such a folder for our port is used as it is, with the node id inside
it, so existing data keeps working without a move.

The address registered with the master is `--advertise HOST[:PORT]` if given, else the
bound host and port. A wildcard (0.0.0.0, ::) can never be reached by peers, and a
loopback address only from the same machine: both are refused when the master is
elsewhere, with a sentence saying what to pass instead (`advertised_address` is pure).
"""

from __future__ import annotations

import ipaddress
import os
import re
import uuid
from pathlib import Path

from myyoutube.service import is_loopback, is_wildcard

NODE_ID_FILE = "node-id"


def node_directory(data_dir: Path, port: int) -> Path:
    """The folder holding this node's blobs and id (a first-release folder if one exists)."""
    legacy = data_dir / f"uploads{port}"
    return legacy if legacy.is_dir() else data_dir


def load_or_create_node_id(directory: Path) -> str:
    """This node's id, created once (atomically: a crash never leaves half an id)."""
    path = directory / NODE_ID_FILE
    try:
        node_id = path.read_text().strip()
    except FileNotFoundError:
        node_id = ""
    if node_id:
        if not _is_node_id(node_id):
            raise ValueError(f"{path} does not hold a node id; restore it or remove it to start afresh")
        return node_id
    directory.mkdir(parents=True, exist_ok=True)
    fresh = uuid.uuid4().hex
    temporary = directory / f"{NODE_ID_FILE}.tmp"
    temporary.write_text(fresh + "\n")
    os.replace(temporary, path)
    return fresh


def _is_node_id(text: str) -> bool:
    try:
        return uuid.UUID(hex=text).hex == text
    except ValueError:
        return False


# A DNS name (RFC 1123 labels, plus '_': Docker Compose names its containers so, and
# its resolver answers for them): what a peer's resolver can look up.
_HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*\.?")


def _is_host(host: str) -> bool:
    """Whether peers could connect to `host`: an IP address (IPv6 bracketed or not), a
    DNS name, or '' and the wildcards, which _kind then refuses in words."""
    if host == "" or is_wildcard(host):
        return True
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return len(host) <= 253 and _HOST_NAME.fullmatch(host) is not None
    return True


def _kind(host: str) -> str:
    """'wildcard', 'loopback' or 'routable' (a name we cannot judge counts as routable)."""
    if is_wildcard(host):
        return "wildcard"
    return "loopback" if is_loopback(host) else "routable"


def advertised_address(bind_host: str, bound_port: int, advertise: str | None, master_host: str) -> str:
    """HOST:PORT the master and peers should use to reach this node; ValueError with the
    reason when that address could not work."""
    host, port = bind_host, bound_port
    if advertise:
        given_host, sep, given_port = advertise.rpartition(":")
        if sep and given_port.isdigit() and not given_host.endswith(":"):
            host, port = given_host, int(given_port)
        else:
            host = advertise
    if not _is_host(host) or not 0 < port < 65536:
        raise ValueError(
            f"cannot advertise {advertise!r}: expected HOST or HOST:PORT, with a host name or an IP "
            "address and a port from 1 to 65535"
        )
    kind = _kind(host)
    if kind == "wildcard":
        raise ValueError(
            f"cannot advertise the wildcard address {host or '(empty)'}: peers cannot connect to it; "
            "pass --advertise HOST[:PORT] with an address they can reach"
        )
    if kind == "loopback" and _kind(master_host) != "loopback":
        raise ValueError(
            f"cannot advertise the loopback address {host} to a master at {master_host}: "
            "it could not reach us; pass --advertise HOST[:PORT]"
        )
    return f"{host}:{port}"
