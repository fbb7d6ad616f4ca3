"""`myyoutube-web` as a process (web/main.py): how it stops."""

from __future__ import annotations

import os
import signal
import socket

from harness import mp4_bytes, store
from myyoutube.web.main import SHUTDOWN_GRACE_S

# Far more than the kernel's socket buffers hold, so the response blocks on the viewer.
STALLED_VIDEO_BYTES = 24 * 1024 * 1024


async def test_sigterm_with_a_stalled_viewer_exits_within_the_grace(fresh_cluster):
    """SIGTERM while a viewer holds a stream it does not read (a paused player) makes the
    web exit 0 within its shutdown grace. It used to take twice the grace (aiohttp waits
    its timeout once before and once after cancelling the request), past the 10 s after
    which myyoutube-cluster and systemd-like supervisors SIGKILL it."""
    cluster = fresh_cluster()
    await store(cluster, "paused.mp4", mp4_bytes(os.urandom(STALLED_VIDEO_BYTES)))
    with socket.create_connection((cluster.web.host, cluster.web.port)) as viewer:
        viewer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        request = f"GET /stream/paused.mp4 HTTP/1.1\r\nHost: 127.0.0.1:{cluster.web.port}\r\n\r\n"
        viewer.sendall(request.encode())
        assert viewer.recv(100).startswith(b"HTTP/1.1 200")  # then reads nothing more
        cluster.web.process.send_signal(signal.SIGTERM)
        assert cluster.web.process.wait(SHUTDOWN_GRACE_S + 2) == 0
