"""`myyoutube`: the command-line client of a MyYoutube web front end.

Theory of operation
-------------------
Every subcommand talks HTTP to the web front end (never to the master or the datanodes)
through `webclient.Api`, which turns whatever goes wrong into a `ToolError` whose text is
the line the user reads. `main` prints it as `myyoutube: error: ...` and exits 1; argparse
exits 2 on bad usage; Ctrl-C exits 130 without a word. Uploads and downloads (with their
`.part` files) live in transfers.py.

Every command takes `--json`: standard output then holds exactly one JSON document (the
server's answer, or for upload and download what was done) and any notes go to standard
error; failures are still one `myyoutube: error:` line and a non-zero exit.

Standard output may be a pipe that its reader closes early (`myyoutube list | head`).
Python ignores SIGPIPE, so the next write fails with BrokenPipeError; every write goes
through `say`, which turns that into `ReaderGone`: the command stops at once (a listing
fetches no further page) and exits 0 without a word, as a reader that left is not an
error. Standard output is then pointed at /dev/null, so the interpreter's final flush of
what is still buffered cannot fail again on the way out.

`login` asks the front end for an API token (POST /api/login) and saves it; every later
command sends it (webclient.py), and `logout` revokes it. `user add|list|remove|passwd`
manage accounts through /api/users, as an admin. Passwords are read from a file
(--password-file, first line) or typed at a prompt without echo, never taken as an
argument, where `ps` and shell histories would show them.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from myyoutube import backups, certcommands, resumable_upload, transfers, webclient
from myyoutube.certs import CertError
from myyoutube.formatting import human_duration, human_size
from myyoutube.web import playback
from myyoutube.webclient import Api, ToolError, Unreachable, connect, video_path

DEFAULT_URL = "http://127.0.0.1:8080"
URL_ENV = "MYYOUTUBE_URL"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C

# Listing columns before the name, fixed so each page prints as it arrives (the name,
# of any length, comes last).
SIZE_COLUMN_CHARS = 9
UPLOADED_COLUMN_CHARS = 16
DURATION_COLUMN_CHARS = 8
STATE_COLUMN_CHARS = 15  # "Processing 100%", the longest state the web's badge says


# --- output ------------------------------------------------------------------------------


class ReaderGone(Exception):
    """Whoever read standard output closed it (`myyoutube list | head`): stop, quietly."""


def say(text: str = "") -> None:
    """One line on standard output."""
    try:
        print(text)
    except BrokenPipeError:
        raise ReaderGone from None


def flush() -> None:
    """Push buffered output to the reader now (a closed pipe shows here as ReaderGone)."""
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


# --- upload, download --------------------------------------------------------------------


async def cmd_upload(api: Api, args: argparse.Namespace) -> int:
    uploaded, failed = [], []
    for path in map(Path, args.files):
        try:
            video = await resumable_upload.upload_resumable(api, path, args.progress)
        except Unreachable:
            raise
        except ToolError as exc:
            complain(f"myyoutube: error: {path.name}: {exc}")
            failed.append({"file": str(path), "error": str(exc)})
            continue
        uploaded.append(video)
        if not args.json:
            say(f"uploaded {video['name']} ({human_size(video['size'])}, sha256 {video['sha256']})")
    if args.json:
        say_json({"videos": uploaded, "failed": failed})
    return EXIT_FAILED if failed else EXIT_OK


async def cmd_download(api: Api, args: argparse.Namespace) -> int:
    output = args.output or Path(args.name)
    if output.is_dir():
        output = output / args.name
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


def _size_text(value: Any) -> str:
    return human_size(value) if isinstance(value, (int, float)) and value >= 0 else "-"


def listing_line(size: str, uploaded: str, duration: str, state: str, name: str) -> str:
    return (
        f"{size:>{SIZE_COLUMN_CHARS}}  {uploaded:<{UPLOADED_COLUMN_CHARS}}  "
        f"{duration:>{DURATION_COLUMN_CHARS}}  {state:<{STATE_COLUMN_CHARS}}  {name}"
    )


def state_column(video: dict) -> str:
    """What the web's card badge says ("Processing 45%", "Failed"), else "Ready"."""
    badge = playback.badge(playback.playback_of(video))
    return badge.text if badge is not None else "Ready"


def video_line(video: dict) -> str:
    duration = video.get("duration_s")
    return listing_line(
        _size_text(video.get("size")),
        _local_time(video.get("uploaded_at")),
        human_duration(duration) if isinstance(duration, (int, float)) else "",
        state_column(video),
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
            say(listing_line("SIZE", "UPLOADED", "DURATION", "STATE", "NAME"))
        for video in page:
            say(video_line(video))
        listed += len(page)
        flush()  # the reader sees each page at once, and a closed pipe stops the listing here
    if not listed:
        say("No videos.")
    return EXIT_OK


# --- edit, delete, status, admin ---------------------------------------------------------


async def cmd_edit(api: Api, args: argparse.Namespace) -> int:
    changes = {key: getattr(args, key) for key in ("title", "description") if getattr(args, key) is not None}
    video = await api.json("/videos/" + video_path(args.name), "PATCH", json=changes)
    fields = [
        f"\n  {key}: {video[key]}" for key in ("title", "description") if isinstance(video.get(key), str)
    ]
    return report(args, video, f"edited {args.name}" + "".join(fields))


async def cmd_delete(api: Api, args: argparse.Namespace) -> int:
    answer = await api.json("/videos/" + video_path(args.name), "DELETE")
    return report(args, answer, f"deleted {args.name}")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> None:
    """Print rows under headers in aligned columns; columns in `right` align right."""
    widths = [max(len(str(row[i])) for row in (headers, *rows)) for i in range(len(headers))]
    for row in (headers, *rows):
        cells = [
            str(cell).rjust(width) if i in right else str(cell).ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        say("  ".join(cells).rstrip())


def _heartbeat_text(seconds_ago: Any) -> str:
    return "never" if seconds_ago is None else f"{seconds_ago:.1f} s ago"


def transcoding_line(summary: dict) -> str:
    """The transcode queue as /api/status gives it, in one line: jobs by state and the
    slots of the datanodes that transcode."""
    counts = summary.get("jobs") or {}
    slots = {node: n for node, n in (summary.get("slots") or {}).items() if isinstance(n, int) and n > 0}
    jobs = ", ".join(f"{counts.get(state, 0)} {state}" for state in ("queued", "running", "failed"))
    nodes = f"{sum(slots.values())} slots on {len(slots)} datanode{'s' if len(slots) != 1 else ''}"
    return f"transcoding: {jobs}; {nodes}"


async def cmd_status(api: Api, args: argparse.Namespace) -> int:
    report = await api.json("/api/status")
    if args.json:
        say_json(report)
        return EXIT_OK
    rows = [
        (
            str(node["address"]),
            str(node["state"]),
            _heartbeat_text(node.get("last_heartbeat_s_ago")),
            _size_text(node.get("used_bytes")),
            _size_text(node.get("free_bytes")),
            str(node.get("replicas", 0)),
        )
        for node in report.get("datanodes", [])
    ]
    _table(("DATANODE", "STATE", "LAST HEARTBEAT", "USED", "FREE", "REPLICAS"), rows, right={2, 3, 4, 5})
    say(
        f"\nvideos: {report.get('videos', 0)}, stored: "
        f"{_size_text(report.get('stored_bytes'))}, replication: "
        f"{report.get('replication', '?')}, repairs running: {report.get('repairs_running', 0)}"
    )
    counters = report.get("counters") or {}
    if counters:
        say("counters: " + ", ".join(f"{key} {value}" for key, value in counters.items()))
    transcoding = report.get("transcoding")
    if isinstance(transcoding, dict):
        say(transcoding_line(transcoding))
    under = report.get("under_replicated") or []
    say("under-replicated: " + ("none" if not under else f"{len(under)}"))
    if report.get("orphaned_blobs"):
        say(
            f"orphaned blobs: {report['orphaned_blobs']} (kept; restore the master's index, "
            "or `myyoutube admin purge-orphans` if they are garbage)"
        )
    for video in under:
        repairing = " (repairing)" if video.get("repairing") else ""
        say(
            f"  {video['name']}: {video['live_replicas']} live of {report.get('replication', '?')}{repairing}"
        )
    return EXIT_OK


async def cmd_purge_orphans(api: Api, args: argparse.Namespace) -> int:
    answer = await api.json("/api/admin/purge-orphans", method="POST")
    return report(
        args,
        answer,
        f"purged {answer['purged']} orphaned blobs; datanodes delete them at their next heartbeat",
    )


async def cmd_backup(api: Api, args: argparse.Namespace) -> int:
    saved = await backups.save_backup(api, args.file, args.force)
    return report(
        args,
        saved,
        f"saved the index to {args.file} ({human_size(saved['size'])}, sha256 {saved['sha256']}); "
        f"`myyoutube-master --restore {args.file}` starts a master from it",
    )


# --- accounts ----------------------------------------------------------------------------


def _password(args: argparse.Namespace, prompt: str, confirm: bool = False) -> str:
    """The password from --password-file (its first line), else typed without echo."""
    if args.password_file is not None:
        lines = args.password_file.read_text().splitlines()
        return lines[0] if lines else ""
    if not sys.stdin.isatty():
        raise ToolError("no terminal to type a password at; use --password-file FILE")
    password = getpass.getpass(prompt)
    if confirm and getpass.getpass("Again: ") != password:
        raise ToolError("the two passwords differ")
    return password


async def cmd_login(api: Api, args: argparse.Namespace) -> int:
    username = args.username
    if username is None:
        if not sys.stdin.isatty():
            raise ToolError("give the account with --username NAME")
        username = await asyncio.to_thread(input, "Username: ")
    password = _password(args, "Password: ")
    answer = await api.json("/api/login", "POST", json={"username": username, "password": password})
    path = webclient.save_token(answer["token"])
    user = answer.get("user") or {}
    return report(
        args,
        {"user": user, "token_file": str(path)},
        f"signed in as {user.get('name')}; token saved in {path}",
    )


async def cmd_logout(api: Api, args: argparse.Namespace) -> int:
    answer = await api.json("/api/logout", "POST")
    forgot = webclient.forget_token()
    return report(args, dict(answer, token_file_removed=forgot), "signed out")


async def cmd_user_add(api: Api, args: argparse.Namespace) -> int:
    password = _password(args, f"Password for {args.name}: ", confirm=True)
    fields = {"username": args.name, "password": password, "role": args.role, "quota_bytes": args.quota_bytes}
    answer = await api.json("/api/users", "POST", ok=(201,), json=fields)
    return report(args, answer, f"added {args.name} ({args.role})")


async def cmd_user_list(api: Api, args: argparse.Namespace) -> int:
    answer = await api.json("/api/users")
    if args.json:
        say_json(answer)
        return EXIT_OK
    rows = [
        (
            str(user["name"]),
            str(user["role"]),
            _size_text(user.get("used_bytes")),
            "unlimited" if user.get("quota_bytes") is None else _size_text(user["quota_bytes"]),
            str(user.get("sessions", 0)),
        )
        for user in answer.get("users", [])
    ]
    _table(("NAME", "ROLE", "USED", "QUOTA", "SESSIONS"), rows, right={2, 3, 4})
    return EXIT_OK


async def cmd_user_remove(api: Api, args: argparse.Namespace) -> int:
    answer = await api.json("/api/users/" + video_path(args.name), "DELETE")
    return report(args, answer, f"removed {args.name}; its sessions ended, its videos stay")


async def cmd_user_passwd(api: Api, args: argparse.Namespace) -> int:
    password = _password(args, f"New password for {args.name}: ", confirm=True)
    answer = await api.json(
        f"/api/users/{video_path(args.name)}/password", "PUT", json={"password": password}
    )
    return report(args, answer, f"changed the password of {args.name}; its sessions ended")


def _add_account_commands(commands, add, common: argparse.ArgumentParser) -> None:
    password = argparse.ArgumentParser(add_help=False)
    password.add_argument(
        "--password-file", type=Path, help="read the password from this file's first line (default: prompt)"
    )
    login = add("login", cmd_login, "sign in and save the token for later commands", (common, password))
    login.add_argument("--username", help="the account (default: prompt)")
    add("logout", cmd_logout, "revoke the saved token and forget it")
    user = commands.add_parser("user", help="manage accounts (admins)").add_subparsers(
        dest="user_command", required=True, metavar="USER_COMMAND"
    )

    def sub(name: str, run, summary: str, parents=(common,)) -> argparse.ArgumentParser:
        command = user.add_parser(name, parents=list(parents), help=summary, description=summary)
        command.set_defaults(run=run)
        return command

    added = sub("add", cmd_user_add, "add an account", (common, password))
    added.add_argument("name", metavar="NAME")
    added.add_argument("--role", choices=("admin", "uploader", "viewer"), required=True)
    added.add_argument(
        "--quota-bytes", type=int, default=None, help="bytes it may store (default: the master's default)"
    )
    sub("list", cmd_user_list, "list accounts")
    sub("remove", cmd_user_remove, "remove an account (its videos stay)").add_argument("name", metavar="NAME")
    sub("passwd", cmd_user_passwd, "set an account's password", (common, password)).add_argument(
        "name", metavar="NAME"
    )


# --- command line ------------------------------------------------------------------------


def base_url(text: str) -> str:
    """argparse type for --url: http(s)://HOST[:PORT][/PREFIX], without a trailing slash."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise argparse.ArgumentTypeError(f"expected a URL like {DEFAULT_URL}, got {text!r}")
    return text.strip().rstrip("/")


def _shared_flags() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The flags every command takes (--url, --json), and the progress bar's."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        type=base_url,
        default=os.environ.get(URL_ENV) or DEFAULT_URL,
        help=f"the MyYoutube web front end (default: ${URL_ENV} or {DEFAULT_URL})",
    )
    common.add_argument(
        "--json", action="store_true", help="print one JSON document (notes go to standard error)"
    )
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
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, run, summary: str, parents=(common,)) -> argparse.ArgumentParser:
        command = commands.add_parser(name, parents=list(parents), help=summary, description=summary)
        command.set_defaults(run=run)
        return command

    add("upload", cmd_upload, "upload video files", (common, bar)).add_argument(
        "files", nargs="+", metavar="FILE"
    )
    add("list", cmd_list, "list videos, newest first")
    add("search", cmd_list, "list videos matching TERM").add_argument("term", metavar="TERM")
    download = add(
        "download",
        cmd_download,
        "download a video: bytes go to FILE.part (resumed by the next run) and become FILE once checked",
        (common, bar),
    )
    download.add_argument("name", metavar="NAME")
    download.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="where to save it (default: NAME in the current directory)",
    )
    download.add_argument(
        "--force",
        action="store_true",
        help="replace an existing FILE (once the new one is complete) and overwrite a FILE.part "
        "that myyoutube did not start",
    )
    edit = add("edit", cmd_edit, "change a video's title or description")
    edit.add_argument("name", metavar="NAME")
    edit.add_argument("--title", help="the new title")
    edit.add_argument("--description", help="the new description ('' clears it)")
    add("delete", cmd_delete, "delete a video").add_argument("name", metavar="NAME")
    add("status", cmd_status, "datanodes, replication health, counters")
    admin = commands.add_parser("admin", help="operator commands").add_subparsers(
        dest="admin_command", required=True, metavar="ADMIN_COMMAND"
    )
    admin.add_parser(
        "purge-orphans",
        parents=[common],
        help="delete blobs the datanodes hold that the master's index does not know "
        "(only once you are sure the index is the right one)",
    ).set_defaults(run=cmd_purge_orphans)
    saving = admin.add_parser(
        "backup",
        parents=[common],
        help="save a consistent copy of the master's index (accounts, videos, views) to FILE",
    )
    saving.add_argument("file", type=Path, metavar="FILE")
    saving.add_argument("--force", action="store_true", help="replace FILE if it exists")
    saving.set_defaults(run=cmd_backup)
    certcommands.register(commands)
    _add_account_commands(commands, add, common)
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "edit" and args.title is None and args.description is None:
        parser.error("edit needs --title, --description or both")
    return args


async def run(args: argparse.Namespace) -> int:
    async with connect(args.url, webclient.saved_token()) as api:
        return await args.run(api, args)


def _stop_writing_stdout() -> None:
    """Point standard output at /dev/null, so the interpreter's last flush has nowhere to fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        status = args.local(args) if hasattr(args, "local") else asyncio.run(run(args))
        flush()
    except ReaderGone:
        status = EXIT_OK
    except KeyboardInterrupt:
        status = EXIT_INTERRUPTED
    except (ToolError, OSError, CertError) as exc:  # OSError: a local file that cannot be read or written
        complain(f"myyoutube: error: {exc}")
        status = EXIT_FAILED
    try:
        flush()
    except ReaderGone:
        _stop_writing_stdout()
    sys.exit(status)


if __name__ == "__main__":
    main()
