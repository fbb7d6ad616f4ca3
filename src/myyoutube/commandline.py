"""`myyoutube`: the command-line client of a MyYoutube web front end.

Theory of operation
-------------------
Every subcommand talks HTTP to the web front end (never to the master or the datanodes)
through `webclient.Api`, which turns whatever goes wrong into a `ToolError` whose text is
the line the user reads. `main` prints it as `myyoutube: error: ...` and exits 1; argparse
exits 2 on bad usage; Ctrl-C exits 130 without a word. Uploads and downloads (with their
`.part` files) live in transfers.py; `status`, `admin purge-orphans` and `admin backup`
in operator_commands.py.

Every command takes `--json`: standard output then holds exactly one JSON document (the
server's answer, or for upload and download what was done) and any notes go to standard
error; failures are still one `myyoutube: error:` line and a non-zero exit.

What is printed, and how a reader that leaves early (`myyoutube list | head`) is
handled, is in terminal.py; `login`, `logout` and `user ...` are in account_commands.py,
`cert ...` in certcommands.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from myyoutube import (
    account_commands,
    certcommands,
    operator_commands,
    permissions,
    resumable_upload,
    transfers,
    upload_state,
    webclient,
)
from myyoutube.certs import CertError
from myyoutube.formatting import human_duration, human_size
from myyoutube.signal_wakeup import signals_wake_the_loop
from myyoutube.terminal import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ReaderGone,
    complain,
    flush,
    note_for,
    one_line,
    outlive_reader,
    readable_stdout,
    report,
    say,
    say_json,
    size_text,
    stop_writing_stdout,
)
from myyoutube.web import playback
from myyoutube.webclient import Api, ToolError, Unauthorized, Unreachable, connect, video_path

DEFAULT_URL = "http://127.0.0.1:8080"
URL_ENV = "MYYOUTUBE_URL"

# Listing columns before the name, fixed so each page prints as it arrives (the name,
# of any length, comes last).
SIZE_COLUMN_CHARS = 9
UPLOADED_COLUMN_CHARS = 16
DURATION_COLUMN_CHARS = 8
# Who may watch, in the words of the web's "Who can watch" menu.
VISIBILITY_HELP = "who can watch: everyone (public), anyone with the link (unlisted) or only you (private)"
STATE_COLUMN_CHARS = 15  # "Processing 100%", the longest state the web's badge says
# Who may watch, in the words `upload --visibility` and `edit --visibility` take
# (public, unlisted, private): the header is the widest. With it the name starts at
# column 69, so a name of a dozen characters still fits an 80-column terminal.
VISIBILITY_COLUMN_CHARS = len("VISIBILITY")
LISTING_HEADER = ("SIZE", "UPLOADED", "DURATION", "STATE", "VISIBILITY", "NAME")


# --- upload, download --------------------------------------------------------------------


async def cmd_upload(api: Api, args: argparse.Namespace) -> int:
    outlive_reader()  # `upload *.mp4 | head -n 3` uploads every file all the same
    uploaded, failed = [], []
    state = upload_state.UploadState(upload_state.state_path())
    for path in map(Path, args.files):
        try:
            video = await resumable_upload.upload_resumable(
                api, path, args.progress, state, args.visibility, args.name or ""
            )
        except (Unreachable, Unauthorized):  # the next file would fail the same way
            raise
        except ToolError as exc:
            complain(f"myyoutube: error: {one_line(path.name)}: {exc}")
            failed.append({"file": str(path), "error": str(exc)})
            continue
        uploaded.append(video)
        if not args.json:
            say(f"uploaded {video['name']} ({human_size(video['size'])}, sha256 {video['sha256']})")
    if args.json:
        say_json({"videos": uploaded, "failed": failed})
    return EXIT_FAILED if failed else EXIT_OK


async def cmd_download(api: Api, args: argparse.Namespace) -> int:
    output = transfers.download_target(args.output, args.name)
    saved = await transfers.download(
        api, args.name, output, force=args.force, show=args.progress, note=note_for(args)
    )
    return report(
        args,
        saved,
        f"downloaded {args.name} to {output} ({human_size(saved['size'])}, sha256 {saved['sha256']})",
    )


# --- listing -----------------------------------------------------------------------------


def _local_time(timestamp: Any) -> str:
    try:
        return datetime.fromtimestamp(float(timestamp)).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError, OverflowError, OSError):
        return "?"


def listing_line(size: str, uploaded: str, duration: str, state: str, visibility: str, name: str) -> str:
    return (
        f"{size:>{SIZE_COLUMN_CHARS}}  {uploaded:<{UPLOADED_COLUMN_CHARS}}  "
        f"{duration:>{DURATION_COLUMN_CHARS}}  {state:<{STATE_COLUMN_CHARS}}  "
        f"{visibility:<{VISIBILITY_COLUMN_CHARS}}  {name}"
    )


def state_column(video: dict) -> str:
    """What the web's card badge says ("Processing 45%", "Failed"), else "Ready"."""
    badge = playback.badge(playback.playback_of(video))
    return badge.text if badge is not None else "Ready"


def video_line(video: dict) -> str:
    duration = video.get("duration_s")
    return listing_line(
        size_text(video.get("size")),
        _local_time(video.get("uploaded_at")),
        human_duration(duration) if isinstance(duration, (int, float)) else "",
        state_column(video),
        str(video.get("visibility") or "?")[:VISIBILITY_COLUMN_CHARS],
        str(video.get("name")),
    )


async def cmd_list(api: Api, args: argparse.Namespace) -> int:
    term = getattr(args, "term", None)
    if args.json:
        videos = [video async for page in api.video_pages(term) for video in page]
        say_json({"videos": videos, "next": None})
        return EXIT_OK
    listed = 0
    async for page in api.video_pages(term):
        if page and not listed:
            say(listing_line(*LISTING_HEADER))
        for video in page:
            say(video_line(video))
        listed += len(page)
        flush()  # the reader sees each page at once, and a closed pipe stops the listing here
    if not listed:  # a search that found nothing says what was looked for, as the web does
        say(f"No videos match \u201c{one_line(term)}\u201d." if term else "No videos.")
    return EXIT_OK


# --- edit, delete ------------------------------------------------------------------------


EDITABLE = ("title", "description", "visibility")


async def cmd_edit(api: Api, args: argparse.Namespace) -> int:
    changes = {key: getattr(args, key) for key in EDITABLE if getattr(args, key) is not None}
    video = await api.json("/videos/" + video_path(args.name), "PATCH", keys=("name",), json=changes)
    fields = [f"\n  {key}: {video[key]}" for key in EDITABLE if isinstance(video.get(key), str)]
    return report(args, video, f"edited {args.name}" + "".join(fields))


async def cmd_delete(api: Api, args: argparse.Namespace) -> int:
    answer = await api.json("/videos/" + video_path(args.name), "DELETE", keys=("deleted",))
    return report(args, answer, f"deleted {args.name}")


# --- command line ------------------------------------------------------------------------


def video_name(text: str) -> str:
    """argparse type for a video's NAME: one no video can have ('', '.', '..', one with
    '/': a name is one segment of its URL) is a usage error. `download ""` used to save
    to the current folder itself and end in a traceback; `delete ""` said "There is
    nothing at this address"."""
    if text.strip() in ("", ".", "..") or "/" in text:
        raise argparse.ArgumentTypeError(f"no video can be named {text!r}; `myyoutube list` shows the names")
    return text


def _url_parts(text: str) -> SplitResult | None:
    """The parts of a URL, or None when its host or port is malformed."""
    try:
        parts = urlsplit(text)
        _ = parts.port  # a port past 65535, or not a number, fails here rather than in a request
    except ValueError:
        return None
    return parts


def base_url(text: str) -> str:
    """argparse type for --url: http(s)://HOST[:PORT][/PREFIX], without a trailing slash.
    Nothing else (a query, a fragment, a user and password) has a place in it."""
    parts = _url_parts(text.strip())
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or "@" in parts.netloc
        or parts.query
        or parts.fragment
    ):
        raise argparse.ArgumentTypeError(f"expected a URL like {DEFAULT_URL}, got {text!r}")
    return text.strip().rstrip("/")


def _add_common_flags(parser: argparse.ArgumentParser, before_command: bool) -> None:
    """--url and --json, which every command takes after its name or before it
    (`myyoutube --json list`). After it they default to nothing at all, or argparse would
    overwrite what was given before it with their defaults."""
    parser.add_argument(
        "--url",
        type=base_url,
        # None: parse_args takes $MYYOUTUBE_URL, so that a bad one is named as such.
        default=None if before_command else argparse.SUPPRESS,
        help=f"the MyYoutube web front end (default: ${URL_ENV} or {DEFAULT_URL})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if before_command else argparse.SUPPRESS,
        help="print one JSON document (notes go to standard error)",
    )


def _shared_flags() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The flags every command takes (--url, --json), and the progress bar's."""
    common = argparse.ArgumentParser(add_help=False)
    _add_common_flags(common, before_command=False)
    bar = argparse.ArgumentParser(add_help=False)
    bar.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=sys.stderr.isatty(),
        help="show a progress bar (default: only when stderr is a terminal)",
    )
    return common, bar


def build_parser() -> argparse.ArgumentParser:
    common, bar = _shared_flags()
    parser = argparse.ArgumentParser(
        prog="myyoutube",
        description="Upload, list, search, edit, download and delete videos on a MyYoutube cluster.",
    )
    _add_common_flags(parser, before_command=True)
    parser.set_defaults(anonymous=False)  # every command but login signs in with the saved token
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, run, summary: str, parents=(common,)) -> argparse.ArgumentParser:
        command = commands.add_parser(name, parents=list(parents), help=summary, description=summary)
        command.set_defaults(run=run)
        return command

    upload = add("upload", cmd_upload, "upload video files", (common, bar))
    upload.add_argument("files", nargs="+", metavar="FILE")
    upload.add_argument(
        "--visibility",
        choices=permissions.VISIBILITIES,
        default=permissions.PUBLIC,
        help=VISIBILITY_HELP + " (default: public)",
    )
    upload.add_argument("--name", help="the video's name (default: the file's name); with one FILE only")
    add("list", cmd_list, "list videos, newest first")
    add("search", cmd_list, "list videos matching TERM").add_argument("term", metavar="TERM")
    download = add(
        "download",
        cmd_download,
        "download a video: bytes go to FILE.part (resumed by the next run) and become FILE once checked",
        (common, bar),
    )
    download.add_argument("name", metavar="NAME", type=video_name)
    download.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="where to save it: a file, or a folder to save NAME in (default: the current folder)",
    )
    download.add_argument(
        "--force",
        action="store_true",
        help="replace an existing FILE (once the new one is complete) and overwrite a FILE.part "
        "that myyoutube did not start",
    )
    edit = add("edit", cmd_edit, "change a video's title, description or visibility")
    edit.add_argument("name", metavar="NAME", type=video_name)
    edit.add_argument("--title", help="the new title")
    edit.add_argument("--description", help="the new description ('' clears it)")
    edit.add_argument("--visibility", choices=permissions.VISIBILITIES, help=VISIBILITY_HELP)
    add("delete", cmd_delete, "delete a video").add_argument("name", metavar="NAME", type=video_name)
    operator_commands.register(commands, add, common)
    certcommands.register(commands)
    account_commands.register(commands, add, common)
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "edit" and all(getattr(args, key) is None for key in EDITABLE):
        parser.error("edit needs --title, --description or --visibility")
    if args.command == "upload" and args.name is not None and len(args.files) > 1:
        # One name for several videos could only store the first: refuse before any upload.
        parser.error("--name names one video: upload one FILE with it (or leave --name out)")
    if not hasattr(args, "local") and args.url is None:  # `cert ...` runs locally, needs no URL
        try:
            args.url = base_url(os.environ.get(URL_ENV) or DEFAULT_URL)
        except argparse.ArgumentTypeError as exc:
            parser.error(f"${URL_ENV}: {exc}")
    return args


async def run(args: argparse.Namespace) -> int:
    token = "" if args.anonymous else webclient.saved_token(args.url)
    with signals_wake_the_loop(asyncio.get_running_loop()):
        async with connect(args.url, token) as api:
            return await args.run(api, args)


def run_command(args: argparse.Namespace) -> int:
    """Run the command: a local one as it is, any other in an event loop, after its
    prompts (`ask`), which must come before that loop (see account_commands.py)."""
    if hasattr(args, "local"):
        return args.local(args)
    if hasattr(args, "ask"):
        args.ask(args)
    return asyncio.run(run(args))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    readable_stdout()
    try:
        status = run_command(args)
    except ReaderGone:  # the command stopped because nobody reads on
        status = EXIT_OK
    except KeyboardInterrupt:
        status = EXIT_INTERRUPTED
    except Unauthorized as exc:  # no token, or a dead one: say which command signs in
        complain(f"myyoutube: error: {exc}" + ("" if args.anonymous else " (run `myyoutube login`)"))
        status = EXIT_FAILED
    except (ToolError, OSError, CertError) as exc:  # OSError: a local file that cannot be read or written
        complain(f"myyoutube: error: {exc}")
        status = EXIT_FAILED
    try:
        flush()
    except ReaderGone:  # the reader left after the work was done: its status stands
        stop_writing_stdout()
    sys.exit(status)


if __name__ == "__main__":
    main()
