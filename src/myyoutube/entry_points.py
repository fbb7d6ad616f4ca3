"""Where each installed command starts (the console scripts' entry points).

The roles and the client import aiohttp, PyAV and the rest in their first quarter to half
second, and Ctrl-C pressed meanwhile ended the command with a Python traceback instead
of quietly, as it does once the command runs. This module imports nothing heavy itself:
each entry point imports its command's module inside a handler for that.
"""

from __future__ import annotations

import importlib
import sys

from myyoutube.terminal import EXIT_INTERRUPTED


def _run(module: str) -> None:
    try:
        command = importlib.import_module(module)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    command.main()


def myyoutube() -> None:
    _run("myyoutube.commandline")


def master() -> None:
    _run("myyoutube.master.main")


def datanode() -> None:
    _run("myyoutube.datanode.main")


def web() -> None:
    _run("myyoutube.web.main")


def cluster() -> None:
    _run("myyoutube.cluster")
