"""What every role's entry point shares: flags, certificates, start-up, clean exits.

Theory of operation
-------------------
Each role's `main()` parses its flags with `argparse`, then hands an async `serve`
coroutine to `run`. Anything that stops start-up (a busy port, an unreachable master,
unusable certificates) raises `StartupError`, which `run` turns into one readable line on stderr
and exit status 1. SIGINT and SIGTERM end the service cleanly with status 0. Once a role
listens it prints `<role> listening on HOST:PORT`, the line scripts and tests wait for
(the port is the real one even when 0 was asked for). Every role runs with umask 077:
what it writes (index, blobs, logs, keys) is readable by its own user only.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import gc
import ipaddress
import logging
import os
import resource
import signal
import socket
import sys
import tempfile
import typing
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import uvloop

from myyoutube import certs, tls_contexts
from myyoutube.formatting import SIZE_EXAMPLES, BadSize, parse_size

T = TypeVar("T")


class StartupError(Exception):
    """The service cannot start; str(exc) is the one line the operator reads."""


def address(text: str) -> tuple[str, int]:
    """argparse type for HOST:PORT."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def port_number(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    return int(text)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def ip_address(text: str) -> str:
    """argparse type: an IP address, in the form peers' addresses are compared in ("::1",
    not "0:0::1"): a host name, a typo or another spelling would match no peer, silently."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an IP address, got {text!r}") from None


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def non_negative_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, got {text!r}")
    return int(text)


def positive_size(text: str) -> int:
    """argparse type for a --...-bytes flag: bytes, written as formatting.parse_size reads
    them (4294967296, 4GiB, 4.3GB), more than none."""
    try:
        size = parse_size(text)
    except BadSize as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if size <= 0:
        raise argparse.ArgumentTypeError(f"expected a size above 0 ({SIZE_EXAMPLES}), got {text!r}")
    return size


def add_listen_flags(parser: argparse.ArgumentParser, default_port: int) -> None:
    """--host and --port, as every role takes them (loopback unless told otherwise)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=port_number,
        default=default_port,
        help=f"port (default {default_port}; 0: any free port)",
    )


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cert-dir",
        type=Path,
        default=None,
        help="directory with ca.crt, node.crt and node.key (what `myyoutube cert issue` "
        "writes): mutual TLS with the other roles; required to listen beyond loopback",
    )
    parser.add_argument(
        "--event-loop",
        choices=["uvloop", "asyncio"],
        default="uvloop",
        help="uvloop (default: libuv's loop, measurably faster here, see bench/README.md) "
        "or Python's own asyncio loop",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default: INFO"
    )


def is_loopback(host: str) -> bool:
    """Whether `host` (an IPv6 literal bracketed or not) is this machine's own."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    """Whether binding `host` means every address of the machine (any spelling of
    0.0.0.0 or ::, bracketed or not, and the empty host): an address to bind, never one
    to connect to."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return host == ""


def load_tls(cert_dir: Path | None, bind_host: str, role: str) -> tls_contexts.Tls | None:
    """This role's TLS identity; without --cert-dir, only a loopback-bound role may run,
    unencrypted and with nobody's role checked, which is said once at start."""
    if cert_dir is None:
        if not is_loopback(bind_host):
            raise StartupError(
                f"refusing to listen on {bind_host} without --cert-dir: anyone on the network "
                "could talk to this role (make certificates with `myyoutube cert`)"
            )
        logging.getLogger(__name__).warning(
            "no --cert-dir: internal links are unencrypted and unauthenticated (development "
            "only, loopback only)"
        )
        return None
    try:
        return tls_contexts.load(cert_dir, role)
    except certs.CertError as exc:
        raise StartupError(str(exc)) from exc


def lock_data_dir(directory: Path, prog: str) -> None:
    """Hold `directory` for this process until it exits, or raise StartupError if another
    process holds it. Two masters on one index, or two datanodes with one node id, would
    each undo what the other records; the second is refused at start instead. The lock
    is the kernel's (flock on the directory itself): it adds no file to the directory and
    goes with the process, however it ends (a kill -9 leaves no stale lock)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise StartupError(f"cannot use data dir {directory}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StartupError(
            f"data dir {directory} is in use by another {prog}; stop that one first, or give "
            "this one a data dir of its own"
        ) from None
    # The descriptor stays open on purpose: closing it would release the lock.


def check_writable(directory: Path) -> None:
    """Raise StartupError unless a file can be made in `directory`. A datanode on a disk
    mounted read-only would register and be picked for uploads it can only refuse."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise StartupError(f"cannot write to data dir {directory}: {exc.strerror or exc}") from exc


def read_password_file(path: Path) -> str:
    """The password in a file: its first line, without the line ending."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:  # its reason in words, not "[Errno 2] No such file ...: 'PATH'"
        raise StartupError(f"cannot read the password file {path}: {exc.strerror or exc}") from exc
    except UnicodeError as exc:
        raise StartupError(f"cannot read the password file {path}: {exc}") from exc
    return lines[0] if lines else ""


def announce(role: str, host: str, port: int) -> None:
    """Say the role listens, once it has loaded its state (see the module docstring)."""
    # What a role built at start (the master's index and registry, every imported
    # module) lives as long as the process. Frozen, the garbage collector's full passes
    # skip it: at 300,000 records such a pass takes ~150 ms, a stall every stream feels.
    gc.freeze()
    print(f"{role} listening on {host}:{port}", flush=True)


class Listening(typing.Protocol):
    """Anything with listening sockets: an asyncio.Server or a links.Listener."""

    @property
    def sockets(self) -> typing.Sequence[socket.socket]: ...


def bound_port(server: Listening) -> int:
    return server.sockets[0].getsockname()[1]


async def listen(start: Callable[[], Awaitable[T]], host: str, port: int) -> T:
    """Start a server (whatever `start` returns), turning the OS's refusal into a readable
    StartupError."""
    try:
        return await start()
    except OSError as exc:
        # The OS's words for the errno: asyncio's own strerror repeats the address as a
        # tuple ("error while attempting to bind on address ('127.0.0.1', 8080): ...").
        reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
        raise StartupError(f"cannot listen on {host}:{port}: {reason}") from exc


# Everything a role writes (index, blobs, spool files, keys) is its operator's alone:
# directories 0700, files 0600.
PRIVATE_UMASK = 0o077


def private_files() -> None:
    """From now on, files and directories this process creates are readable by its user only."""
    os.umask(PRIVATE_UMASK)


def raise_file_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit and return it.

    Every connection (browser, pooled link, datanode) and every open blob is a file
    descriptor; the usual soft limit of 1024 would make a busy web front end fail
    accept() long before its slot limits. The hard limit is what the operator allows
    (systemd's LimitNOFILE in deploy/systemd/)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def open_file_limit() -> int:
    """This process's soft limit on open files (after raise_file_limit, the hard one)."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def run(prog: str, log_level: str, serve: Callable[[], Awaitable[None]], event_loop: str = "asyncio") -> None:
    """Run `serve()` on `event_loop` ('uvloop' or 'asyncio') until it returns or a signal
    arrives; exit 0, or 1 with one line."""
    private_files()
    raise_file_limit()
    logging.basicConfig(level=log_level, format=f"%(asctime)s {prog} %(levelname)s %(name)s: %(message)s")

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None, "main() runs as asyncio.run's task"
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        try:
            await serve()
        except asyncio.CancelledError:
            pass  # A signal asked us to stop: a clean exit.

    try:
        if event_loop == "uvloop":
            uvloop.run(main())
        else:
            asyncio.run(main())
    except StartupError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        sys.exit(1)
