"""Handing a blob's files from a datanode to the web front end on the same machine.

Theory of operation
-------------------
The web reads blobs held by a datanode on its own machine from the files (local_reads.py
says why and how). This is how it gets them, and what both sides share of it: every
datanode listens on a Unix socket in Linux's abstract namespace named after its TCP port
(`socket_name`; datanode/local_files.py serves it), which only a process on the same
machine (and in the same network namespace) can reach. One connection is one handover:
the web sends OpenLocalBlob (the node it means, the blob, the master's grant); the
datanode checks the grant as for a network read and answers Ok with its advertised
address and the blob's size, carrying read-only descriptors of the blob's file and its
checksum file (SCM_RIGHTS), or Error. The web takes the files only from a process of its
own user (or root), and only if the address is the node it asked about; the datanode
hands them only to a process of its own user (or root). `ask_for_files` is the web's
side, blocking, for a worker thread: a handover happens once per blob, not per read.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import sys
from collections.abc import Iterator

from myyoutube import protocol
from myyoutube.datanode.blob_writer import BLOCK_BYTES, CRC
from myyoutube.protocol import Error, Ok, OpenLocalBlob

# Only Linux has the abstract socket namespace and RWF_NOWAIT reads; elsewhere every read
# goes over the network, as before.
SUPPORTED = sys.platform == "linux" and hasattr(os, "RWF_NOWAIT")

# How long the whole handover may take. A datanode answers it from memory and two opens
# in about a millisecond, tens under load; a frozen one never does, and this is what a
# viewer then waits before the read goes over the network (the node is not asked again
# for local_reads.NOT_LOCAL_RETRY_S). Half the hedge before a second replica is asked
# (replica_reads.FIRST_BYTE_HEDGE_S).
HANDOVER_TIMEOUT_S = 0.25

# An OpenLocalBlob is a blob id and a grant, and its answer an address and a size: a few
# hundred bytes. Anything larger is not one.
MAX_HANDOVER_BYTES = 4096

# struct ucred {pid_t pid; uid_t uid; gid_t gid;}, as SO_PEERCRED fills it.
_PEER_CREDENTIALS = struct.Struct("iII")


def socket_name(port: int) -> str:
    """The abstract Unix socket of the datanode listening on TCP `port` on this machine."""
    return f"\0myyoutube-datanode-{port}"


class NotLocal(Exception):
    """The node is not on this machine, or not ours, or did not answer in time."""


class Refused(Exception):
    """The node is local but would not hand over this blob (its Error's message)."""


def ask_for_files(node: str, request: OpenLocalBlob, size: int) -> tuple[int, bytes]:
    """Blocking (run in a worker thread): the blob's open file and its checksums from the
    datanode `node` (HOST:PORT) on this machine; NotLocal or Refused."""
    _, _, port = node.rpartition(":")
    if not port.isascii() or not port.isdigit():
        raise NotLocal(f"{node!r} names no port")
    answer, fds = _exchange(socket_name(int(port)), request)
    with _closed_on_failure(fds):
        if isinstance(answer, Error):
            if answer.code == "other_node":
                raise NotLocal(answer.message)
            raise Refused(answer.message)
        if not isinstance(answer, Ok) or len(fds) != 2:
            raise NotLocal(f"unexpected answer {type(answer).__name__} with {len(fds)} descriptors")
        if answer.info.get("address") != node:
            raise NotLocal(f"the local datanode on that port is {answer.info.get('address')!r}")
        blob_fd, crc_fd = fds
        if os.fstat(blob_fd).st_size != size or answer.info.get("size") != size:
            raise Refused(f"its blob is not {size} bytes long")
        expected = -(-size // BLOCK_BYTES) * CRC.size
        crcs = os.pread(crc_fd, expected + 1, 0)
        if len(crcs) != expected:
            raise Refused("its checksum file does not match the blob's size")
        os.close(crc_fd)
        return blob_fd, crcs


def _exchange(name: str, request: OpenLocalBlob) -> tuple[protocol.Message, list[int]]:
    """Send `request` on the abstract socket `name`; the answer and the descriptors
    that came with it (the caller closes them)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(HANDOVER_TIMEOUT_S)
        try:
            sock.connect(name)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise NotLocal("no datanode listens on that port here") from exc
        if not same_user(sock):
            # Anyone may bind an abstract name first: only our own user's files are trusted.
            raise NotLocal("the process on that socket runs as another user")
        try:
            sock.sendall(protocol.encode(request))
            return _answer(sock)
        except (TimeoutError, OSError, protocol.ProtocolError) as exc:
            raise NotLocal(f"the handover failed: {exc}") from exc


def _answer(sock: socket.socket) -> tuple[protocol.Message, list[int]]:
    decoder = protocol.FrameDecoder()
    fds: list[int] = []
    received = 0
    with _closed_on_failure(fds):
        while (answer := decoder.next_frame()) is None:
            data, more, _, _ = socket.recv_fds(sock, MAX_HANDOVER_BYTES, 2, socket.MSG_CMSG_CLOEXEC)
            fds += more
            received += len(data)
            if not data or received > MAX_HANDOVER_BYTES or len(fds) > 2:
                raise protocol.RemoteProtocolError("the datanode's answer is cut short or too long")
            decoder.feed(data)
    return answer, fds


@contextlib.contextmanager
def _closed_on_failure(fds: list[int]) -> Iterator[None]:
    """Close every descriptor in `fds` (as it is when the block fails) if the block fails."""
    try:
        yield
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def same_user(sock: socket.socket) -> bool:
    """Whether the process at the other end of a Unix socket runs as our user (or root).
    OSError if the socket cannot say (it is not a connected Unix socket)."""
    _, uid, _ = _PEER_CREDENTIALS.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEER_CREDENTIALS.size)
    )
    return uid in (os.getuid(), 0)
