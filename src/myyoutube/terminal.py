"""What the `myyoutube` command prints: lines and tables on a stream whose reader may leave.

Theory of operation
-------------------
Standard output may be a pipe that its reader closes early (`myyoutube list | head`).
Python ignores SIGPIPE, so the next write fails with BrokenPipeError; every write goes
through `say`, which turns that into `ReaderGone`: the command stops at once (a listing
fetches no further page) and commandline.main exits 0 without a word, as a reader that
left is not an error. A command whose work must not stop with its reader (an upload of
many files: `myyoutube upload *.mp4 | head -n 3`) calls `outlive_reader` first: a reader
that leaves then only silences standard output, and the exit status is the work's.
Notes go to standard error through `complain`, which gives up silently when nobody reads
that either.

Under `--json` standard output holds exactly one JSON document, so `report` prints either
the document or the sentence a person reads, and `note_for` sends notes along the way to
standard error.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from myyoutube.formatting import human_size

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


class ReaderGone(Exception):
    """Whoever read standard output closed it (`myyoutube list | head`): stop, quietly."""


class _Output:
    """Whether the command at work stops when its reader leaves (the default) or goes on."""

    outlives_reader = False


def outlive_reader() -> None:
    """From now on a reader that leaves silences standard output instead of stopping the command."""
    _Output.outlives_reader = True


def stop_writing_stdout() -> None:
    """Point standard output at /dev/null, so later writes and the interpreter's last flush
    have nowhere to fail."""
    if sys.stdout is None:  # it was closed from the start: nothing writes to it
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def readable_stdout() -> None:
    """Let standard output show what it cannot encode as backslash escapes, as standard
    error does: a file name that is not valid UTF-8 (it reaches Python as lone surrogates)
    must not turn a finished download into a UnicodeEncodeError under a UTF-8 locale."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")


def say(text: str = "") -> None:
    """One line on standard output."""
    try:
        print(text)
    except BrokenPipeError:
        if not _Output.outlives_reader:
            raise ReaderGone from None
        stop_writing_stdout()


def flush() -> None:
    """Push buffered output to the reader now (a closed pipe shows here as ReaderGone)."""
    if sys.stdout is None:  # started with standard output closed (`>&-`): nobody reads it
        raise ReaderGone
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise ReaderGone from None


def complain(text: str) -> None:
    """One line on standard error; if nobody reads that either, there is no one to tell."""
    try:
        print(text, file=sys.stderr, flush=True)
    except BrokenPipeError:
        pass


def one_line(name: str) -> str:
    """A name as it can appear in one line: quoted with escapes if it holds a line break
    or another control character (file names may)."""
    return name if name.isprintable() else ascii(name)


def say_json(document: Any) -> None:
    say(json.dumps(document, indent=2, ensure_ascii=False))


def report(args: argparse.Namespace, document: Any, sentence: str) -> int:
    """What a command did: the JSON document under --json, else the sentence."""
    if args.json:
        say_json(document)
    else:
        say(sentence)
    return EXIT_OK


def note_for(args: argparse.Namespace):
    """Where notes along the way go: standard output, or standard error under --json."""
    return complain if args.json else say


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> None:
    """Print rows under headers in aligned columns; columns in `right` align right."""
    widths = [max(len(str(row[i])) for row in (headers, *rows)) for i in range(len(headers))]
    for row in (headers, *rows):
        cells = [
            str(cell).rjust(width) if i in right else str(cell).ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        say("  ".join(cells).rstrip())


def size_text(value: Any) -> str:
    """A size in bytes as a person reads it, or "-" when the server gave none."""
    return human_size(value) if isinstance(value, (int, float)) and value >= 0 else "-"
