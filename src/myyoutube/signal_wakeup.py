"""Signals that wake an event loop at once, whichever thread the kernel hands them to.

Theory of operation
-------------------
asyncio.run turns Ctrl-C into a cancellation from a Python signal handler, and Python
runs handlers in the main thread only, when it next runs Python code. The kernel may
hand the signal to any thread: to a worker thread hashing a big `.part`, say, while the
main thread sleeps in the loop's poll waiting for that very thread. The handler then
waited for the hash (minutes), and the `myyoutube` command with it.

`signals_wake_the_loop` gives the process a wakeup fd (`signal.set_wakeup_fd`), written
by whichever thread takes a signal, and has the loop poll it: the main thread wakes, and
runs the handler at once. asyncio.run's own Ctrl-C handling (KeyboardInterrupt, exit
130, a second Ctrl-C ending at once) is kept: only the wakeup is added. The roles need
none of this: `loop.add_signal_handler` (service.py) sets up such a wakeup fd itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Iterator


@contextlib.contextmanager
def signals_wake_the_loop(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """Within the block, every signal wakes `loop` (see the module docstring)."""
    wakeups, wake = socket.socketpair()
    wakeups.setblocking(False)
    wake.setblocking(False)
    loop.add_reader(wakeups.fileno(), _drain, wakeups)
    earlier = signal.set_wakeup_fd(wake.fileno(), warn_on_full_buffer=False)
    try:
        yield
    finally:
        signal.set_wakeup_fd(earlier)
        loop.remove_reader(wakeups.fileno())
        wakeups.close()
        wake.close()


def _drain(wakeups: socket.socket) -> None:
    """Empty the wakeup socket: being woken was the point, the signal numbers are not."""
    with contextlib.suppress(BlockingIOError):
        wakeups.recv(4096)
