"""Addresses and ports of a cluster on one machine (`myyoutube-cluster`).

Theory of operation
-------------------
The cluster tells each role where the others listen, so the addresses it hands out must
be ones a process can connect to: a wildcard (0.0.0.0, ::) binds every address but names
none (`service.is_wildcard`), and the URL printed for a browser turns it into the loopback one
(`browser_url`). Ports saved from an earlier start are reused when still free
(`port_free`); a master whose address the datanodes must know before it listens gets a
port free now (`free_port`).
"""

from __future__ import annotations

import socket

from myyoutube.service import is_wildcard


def browser_url(host: str, port: int) -> str:
    """An address a browser on this machine can open: a wildcard (0.0.0.0, ::) is no
    address to connect to, so it becomes the loopback one; IPv6 goes in brackets."""
    if is_wildcard(host):
        host = "::1" if ":" in host else "127.0.0.1"
    host = host.strip("[]")
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def port_free(host: str, port: int) -> bool:
    """Whether a role could listen on `port` now (with SO_REUSEADDR, as roles do)."""
    return bind_refusal(host, port) is None


def bind_refusal(host: str, port: int) -> str | None:
    """Why a role could not listen on `host`:`port` now ("Address already in use"), or None."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def free_port(host: str) -> int:
    """A port free now on `host` (for a master that must be known before it listens)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
