"""What the page cache holds of a file, for tests of the datanode's disk writes and reads.

mincore(2) on a read-only shared mapping says which pages of a file are cached without
bringing any in (reading them would); the mapping is made through libc, since Python's
mmap wants a writable one to give its address.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import subprocess
import sys
from pathlib import Path

import pytest


def require_real_disk(folder: Path) -> Path:
    """`folder`, or skip the test where it is not on a disk with a page cache and writeback
    (not Linux, or a folder in memory)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("sync_file_range and the page cache's calls are Linux's")
    kind = subprocess.run(["stat", "-f", "-c", "%T", folder], capture_output=True, text=True).stdout.strip()
    if kind in ("tmpfs", "ramfs"):
        pytest.skip(f"{folder} is in memory ({kind}): there is no writeback to see")
    return folder


def libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    return libc


def map_read_only(libc: ctypes.CDLL, fd: int, size: int) -> int:
    """The address of a read-only shared mapping of the file (made through libc: Python's
    mmap wants a writable one to give its address)."""
    address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    assert address not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
    return address


def cached_bytes(path: Path) -> int:
    """How many bytes of the file are in the page cache (mincore: touches no page)."""
    libc_, page = libc(), mmap.PAGESIZE
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        address = map_read_only(libc_, fd, size)
        try:
            pages = (size + page - 1) // page
            vector = ctypes.create_string_buffer(pages)
            assert libc_.mincore(address, size, vector) == 0, os.strerror(ctypes.get_errno())
        finally:
            libc_.munmap(address, size)
    finally:
        os.close(fd)
    return page * sum(flag & 1 for flag in vector.raw)
