"""Where the `myyoutube` command starts (the console script's entry point).

The client's libraries (aiohttp above all) take a quarter of a second to import, and
Ctrl-C pressed meanwhile ended the command with a Python traceback instead of quietly,
as it does once the command runs. This module imports nothing heavy itself, so it can
catch that.
"""

from __future__ import annotations

import sys

from myyoutube.terminal import EXIT_INTERRUPTED


def main() -> None:
    try:
        from myyoutube import commandline
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    commandline.main()
