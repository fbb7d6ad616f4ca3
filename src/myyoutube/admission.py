"""Who may open one more connection: places per address and room below the file limit (pure).

Theory of operation
-------------------
Every connection costs a file descriptor, and a process that reaches its open-file limit
fails in every place at once (accept, opening a blob, reaching a datanode), which in the
issue that asked for this wrote 65,151 "Too many open files" tracebacks in 20 s. So a
server keeps headroom: a freshly accepted connection is closed at once when it leaves
fewer than `fd_headroom(limit)` descriptors free, so the work already admitted (its
links, spool files, blobs) always finds descriptors. The check costs nothing: the kernel
hands out the lowest free descriptor number, so every number below a new socket's is in
use, and the limit bounds descriptor numbers (RLIMIT_NOFILE is "one greater than the
largest descriptor number that can be opened").

`Admission` counts places per client address and overall (None: no overall bound), so
one address cannot hold every connection. `client_key` says which addresses are one
client: an IPv6 host is given a whole /64 and may send from any address in it, so every
per-client bound (connections, streams, uploads, sign-in throttling) counts an IPv6
client by its /64.
"""

from __future__ import annotations

import ipaddress

# At least this many descriptors stay free for work in progress: a web front end's upload
# holds a master link and a spool file, a master's write holds three datanode links.
MIN_FD_HEADROOM = 64
# On a larger limit, keep a tenth of it free.
FD_HEADROOM_FRACTION = 0.1


# The prefix one IPv6 client holds (SLAAC and privacy addresses are picked from it at
# will). Counted address by address, one host would get 2^64 clients' shares.
IPV6_CLIENT_PREFIX_BITS = 64


def client_key(ip: str) -> str:
    """What a per-client bound counts `ip` as: an IPv4 address as itself (also when written
    IPv4-mapped, as a dual-stack socket reports it), an IPv6 address as its /64; anything
    else (a name, '') as it is."""
    if ":" not in ip:
        return ip  # IPv4: the common case, without parsing
    try:
        address = ipaddress.IPv6Address(ip)
    except ValueError:
        return ip
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((int(address), IPV6_CLIENT_PREFIX_BITS), strict=False))


def fd_headroom(limit: int) -> int:
    """Descriptors kept free below an open-file limit of `limit`."""
    return max(MIN_FD_HEADROOM, int(limit * FD_HEADROOM_FRACTION))


def near_file_limit(newest_fd: int, limit: int) -> bool:
    """Whether a just-opened descriptor numbered `newest_fd` eats into the headroom."""
    return newest_fd >= limit - fd_headroom(limit)


class Admission:
    """Places for connections, overall (None: unbounded) and per address."""

    def __init__(self, total: int | None, per_ip: int) -> None:
        self.total, self.per_ip = total, per_ip
        self._by_ip: dict[str, int] = {}
        self._count = 0

    def admit(self, ip: str) -> bool:
        if (self.total is not None and self._count >= self.total) or self._by_ip.get(ip, 0) >= self.per_ip:
            return False
        self._count += 1
        self._by_ip[ip] = self._by_ip.get(ip, 0) + 1
        return True

    def release(self, ip: str) -> None:
        self._count -= 1
        left = self._by_ip[ip] - 1
        if left:
            self._by_ip[ip] = left
        else:
            del self._by_ip[ip]
