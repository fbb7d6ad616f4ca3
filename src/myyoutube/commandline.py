"""`myyoutube`: the command-line client of a MyYoutube web front end.

Theory of operation
-------------------
Every subcommand is one HTTP request to the web front end (never to the master or the
datanodes), made through `Api.call`, the one place that turns what can go
wrong into a `ToolError` whose text is the line the user reads: the server's
`{"error": "<sentence>"}` for a refused request, "cannot reach MyYoutube at URL (...)"
when no connection can be made. `main` prints it as `myyoutube: error: ...` and exits 1;
argparse exits 2 on bad usage; Ctrl-C exits 130 without a word.

Bytes are streamed both ways a chunk at a time, so memory stays flat whatever the size.
An upload hashes the file as it sends it; the sha256 the server returns must equal ours.
A download appends as bytes arrive; the next run asks only for the rest, with `Range:
bytes=<have>-` and `If-Range: <ETag>` (kept in `FILE.part-etag`): a changed video comes
back whole (200) and the file starts over, a 416 means it is already complete. The ETag
is the video's quoted SHA-256, so the finished file is checked against it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import mimetypes
import os
import re
import sys
from collections.abc import Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

import aiohttp
import yarl
from tqdm import tqdm

from myyoutube.formatting import human_duration, human_size

DEFAULT_URL = "http://127.0.0.1:8080"
URL_ENV = "MYYOUTUBE_URL"

# Disk reads and socket writes of 1 MiB keep system calls few while memory stays flat.
FILE_CHUNK_BYTES = 1024 * 1024
# A front end that has not accepted the connection by then is down or unreachable.
CONNECT_TIMEOUT_S = 10.0
# An upload's answer comes only once every replica stored the last chunk, and a stream
# may pause while the master fails over to another replica; longer silence is a dead peer.
READ_IDLE_TIMEOUT_S = 120.0
# Error answers are one sentence of JSON; read no more of a misbehaving server's body.
MAX_ERROR_BODY_BYTES = 64 * 1024

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C

_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(\d+)$")
_SHA256_ETAG = re.compile(r'"([0-9a-f]{64})"$')


class ToolError(Exception):
    """A failure the user can understand; str(exc) is the one line they read."""


class Unreachable(ToolError):
    """No connection to the front end at all: pointless to try the next file."""


class Api:
    """The web front end at one base URL, spoken to through one client session."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url, self.session = url, session

    @asynccontextmanager
    async def call(self, method: str, path: str, ok: tuple[int, ...] = (200,), **kwargs):
        """The response to one request; any status not in `ok`, or any transport failure
        (also while the caller reads the body), raises ToolError."""
        url = yarl.URL(self.url + path, encoded=True)
        try:
            async with self.session.request(method, url, **kwargs) as response:
                if response.status not in ok:
                    raise ToolError(await _error_sentence(response))
                yield response
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise Unreachable(f"cannot reach MyYoutube at {self.url} ({_reason(exc)})") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ToolError(f"the connection to MyYoutube at {self.url} failed ({_reason(exc)})") from None

    async def json(self, path: str, method: str = "GET", ok: tuple[int, ...] = (200,), **kwargs) -> dict:
        """The JSON object answering one request (see `call`)."""
        async with self.call(method, path, ok, **kwargs) as response:
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = None
        if not isinstance(body, dict):
            raise ToolError(f"{self.url} did not answer with a JSON object; is it MyYoutube?")
        return body


async def _error_sentence(response: aiohttp.ClientResponse) -> str:
    """The server's {"error": sentence}, or the status line when there is none."""
    body = b""
    while len(body) < MAX_ERROR_BODY_BYTES and (
        data := await response.content.read(MAX_ERROR_BODY_BYTES - len(body))
    ):
        body += data
    try:
        sentence = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        sentence = None
    if isinstance(sentence, str) and sentence:
        return sentence
    return f"MyYoutube answered {response.status} {response.reason}"


def _reason(exc: BaseException) -> str:
    cause = getattr(exc, "os_error", None) or exc
    errno = getattr(cause, "errno", None)
    if isinstance(errno, int) and errno > 0:
        return os.strerror(errno)  # "Connection refused", not asyncio's wording
    return getattr(cause, "strerror", None) or str(cause) or type(cause).__name__


def _bar(total: int | None, name: str, show: bool, initial: int = 0) -> tqdm:
    return tqdm(
        total=total,
        initial=initial,
        desc=name,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=not show,
        file=sys.stderr,
        dynamic_ncols=True,
    )


# --- upload ------------------------------------------------------------------------------


def _form_filename(name: str) -> str:
    """Escape the file name as browsers do (the three characters the server decodes)."""
    return name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


async def upload_one(api: Api, path: Path, show: bool) -> dict:
    """Stream one file to POST /upload; the server's record, checked against our hash."""
    try:
        file = await asyncio.to_thread(open, path, "rb")
        size = os.fstat(file.fileno()).st_size
    except OSError as exc:
        raise ToolError(exc.strerror or str(exc)) from None
    digest = hashlib.sha256()
    with file, _bar(size, path.name, show) as bar:

        async def chunks():
            while data := await asyncio.to_thread(file.read, FILE_CHUNK_BYTES):
                digest.update(data)
                bar.update(len(data))
                yield data

        form = aiohttp.MultipartWriter("form-data")
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        part = form.append(chunks(), {"Content-Type": kind})
        part.set_content_disposition(
            "form-data", quote_fields=False, name="file", filename=_form_filename(path.name)
        )
        video = await api.json("/upload", "POST", ok=(201,), data=form)
    sent = digest.hexdigest()
    if video.get("sha256") != sent:
        raise ToolError(
            f"the server stored sha256 {video.get('sha256')} but the file sent "
            f"has sha256 {sent}; the copy is damaged, delete it and upload again"
        )
    return video


async def cmd_upload(api: Api, args: argparse.Namespace) -> int:
    failed = 0
    for path in map(Path, args.files):
        try:
            video = await upload_one(api, path, args.progress)
        except Unreachable:
            raise
        except ToolError as exc:
            print(f"myyoutube: error: {path.name}: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"uploaded {video['name']} ({human_size(video['size'])}, sha256 {video['sha256']})")
    return EXIT_FAILED if failed else 0


# --- download ----------------------------------------------------------------------------


def _hash_file(path: Path) -> hashlib._Hash:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while data := file.read(FILE_CHUNK_BYTES):
            digest.update(data)
    return digest


def _resume_headers(output: Path, sidecar: Path) -> tuple[int, dict[str, str]]:
    """How many bytes the output already holds, and the headers asking for the rest."""
    have = output.stat().st_size if output.exists() else 0
    if not have:
        return 0, {}
    headers = {"Range": f"bytes={have}-"}
    if sidecar.exists():
        headers["If-Range"] = sidecar.read_text().strip()
    return have, headers


async def cmd_download(api: Api, args: argparse.Namespace) -> int:
    name, output = args.name, args.output or Path(args.name)
    if output.is_dir():
        output = output / name
    sidecar = output.with_name(output.name + ".part-etag")
    have, headers = _resume_headers(output, sidecar)
    digest = _hash_file(output) if have else hashlib.sha256()  # before the server waits
    async with api.call(
        "GET", "/stream/" + quote(name, safe=""), ok=(200, 206, 416), headers=headers
    ) as response:
        if response.status == 416:  # "bytes */SIZE": nothing at or past byte `have`
            total = response.headers.get("Content-Range", "").rpartition("/")[2]
            if str(have) != total:
                raise ToolError(
                    f"{output} is larger than the video ({have} > {total} bytes); "
                    "remove it or choose another file with -o"
                )
            print(f"{name} is already complete in {output}")
            sidecar.unlink(missing_ok=True)
            return 0
        etag = response.headers.get("ETag", "")
        if response.status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match[1]) != have:
                raise ToolError(f"the server sent a range not starting at byte {have}")
            total = int(match[2])
            print(f"resuming {name} at {have} of {total} bytes")
        else:
            if have:
                print(f"{name} changed on the server or cannot be resumed; starting over")
            have, digest, total = 0, hashlib.sha256(), response.content_length
            sidecar.write_text(etag)
        file = await asyncio.to_thread(open, output, "ab" if have else "wb")
        with file, _bar(total, name, args.progress, initial=have) as bar:
            async for data in response.content.iter_chunked(FILE_CHUNK_BYTES):
                await asyncio.to_thread(file.write, data)
                digest.update(data)
                bar.update(len(data))
    _check_download(output, total, digest.hexdigest(), etag)
    sidecar.unlink(missing_ok=True)
    print(f"downloaded {name} to {output} ({human_size(output.stat().st_size)}, sha256 {digest.hexdigest()})")
    return 0


def _check_download(output: Path, total: int | None, sha256: str, etag: str) -> None:
    size = output.stat().st_size
    if total is not None and size != total:
        raise ToolError(
            f"{output} holds {size} bytes, the video {total}; run the same command again to resume"
        )
    expected = _SHA256_ETAG.match(etag)
    if expected and expected[1] != sha256:
        raise ToolError(
            f"{output} does not match the video (sha256 {sha256}, expected "
            f"{expected[1]}); delete it and download again"
        )


# --- listing, delete, status -------------------------------------------------------------


def _table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]], right: set[int]) -> None:
    """Print rows under headers in aligned columns; columns in `right` align right."""
    widths = [max(len(str(row[i])) for row in (headers, *rows)) for i in range(len(headers))]
    for row in (headers, *rows):
        cells = [
            str(cell).rjust(width) if i in right else str(cell).ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())


def _local_time(timestamp) -> str:
    try:
        return datetime.fromtimestamp(float(timestamp)).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError, OverflowError, OSError):
        return "?"


async def cmd_list(api: Api, args: argparse.Namespace) -> int:
    term = getattr(args, "term", None)
    body = await api.json("/listar" if term is None else "/search?q=" + quote(term, safe=""))
    if args.json:
        print(json.dumps(body, indent=2, ensure_ascii=False))
        return 0
    videos = body.get("videos") or []
    if not videos:
        print("No videos.")
        return 0
    headers: tuple[str, ...] = ("NAME", "SIZE", "UPLOADED", "DURATION")
    rows: list[tuple[str, ...]] = [
        (
            v["name"],
            human_size(v["size"]),
            _local_time(v.get("uploaded_at")),
            human_duration(v["duration_s"]) if v.get("duration_s") is not None else "",
        )
        for v in videos
    ]
    if not any(row[3] for row in rows):
        headers, rows = headers[:3], [row[:3] for row in rows]
    _table(headers, rows, right={1, 3})
    return 0


async def cmd_delete(api: Api, args: argparse.Namespace) -> int:
    async with api.call("DELETE", "/videos/" + quote(args.name, safe="")):
        pass
    print(f"deleted {args.name}")
    return 0


def _bytes_or_dash(value) -> str:
    return human_size(value) if isinstance(value, (int, float)) and value >= 0 else "-"


async def cmd_status(api: Api, args: argparse.Namespace) -> int:
    report = await api.json("/api/status")
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    rows = [
        (
            node["address"],
            node["state"],
            "never"
            if node.get("last_heartbeat_s_ago") is None
            else f"{node['last_heartbeat_s_ago']:.1f} s ago",
            _bytes_or_dash(node.get("used_bytes")),
            _bytes_or_dash(node.get("free_bytes")),
            str(node.get("replicas", 0)),
        )
        for node in report.get("datanodes", [])
    ]
    _table(("DATANODE", "STATE", "LAST HEARTBEAT", "USED", "FREE", "REPLICAS"), rows, right={2, 3, 4, 5})
    print(
        f"\nvideos: {report.get('videos', 0)}, stored: "
        f"{_bytes_or_dash(report.get('stored_bytes'))}, replication: "
        f"{report.get('replication', '?')}, repairs running: {report.get('repairs_running', 0)}"
    )
    counters = report.get("counters") or {}
    if counters:
        print("counters: " + ", ".join(f"{key} {value}" for key, value in counters.items()))
    under = report.get("under_replicated") or []
    print("under-replicated: " + ("none" if not under else f"{len(under)}"))
    if report.get("orphaned_blobs"):
        print(
            f"orphaned blobs: {report['orphaned_blobs']} (kept; restore the master's index, "
            "or `myyoutube admin purge-orphans` if they are garbage)"
        )
    for video in under:
        repairing = " (repairing)" if video.get("repairing") else ""
        print(
            f"  {video['name']}: {video['live_replicas']} live of {report.get('replication', '?')}{repairing}"
        )
    return 0


async def cmd_purge_orphans(api: Api, args: argparse.Namespace) -> int:
    answer = await api.json("/api/admin/purge-orphans", method="POST")
    print(f"purged {answer['purged']} orphaned blobs; datanodes delete them at their next heartbeat")
    return 0


# --- command line ------------------------------------------------------------------------


def base_url(text: str) -> str:
    """argparse type for --url: http(s)://HOST[:PORT][/PREFIX], without a trailing slash."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise argparse.ArgumentTypeError(f"expected a URL like {DEFAULT_URL}, got {text!r}")
    return text.strip().rstrip("/")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        type=base_url,
        default=os.environ.get(URL_ENV) or DEFAULT_URL,
        help=f"the MyYoutube web front end (default: ${URL_ENV} or {DEFAULT_URL})",
    )
    bar = argparse.ArgumentParser(add_help=False)
    bar.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=sys.stderr.isatty(),
        help="show a progress bar (default: only when stderr is a terminal)",
    )
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print the server's raw JSON")

    parser = argparse.ArgumentParser(
        prog="myyoutube",
        description="Upload, list, search, download and delete videos on a MyYoutube cluster.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = commands.add_parser
    upload = add("upload", parents=[common, bar], help="upload video files")
    upload.add_argument("files", nargs="+", metavar="FILE")
    upload.set_defaults(run=cmd_upload)
    add("list", parents=[common, as_json], help="list videos, newest first").set_defaults(run=cmd_list)
    search = add("search", parents=[common, as_json], help="list videos whose name matches")
    search.add_argument("term", metavar="TERM")
    search.set_defaults(run=cmd_list)
    download = add("download", parents=[common, bar], help="download (or resume) a video")
    download.add_argument("name", metavar="NAME")
    download.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="where to save it (default: NAME in the current directory)",
    )
    download.set_defaults(run=cmd_download)
    delete = add("delete", parents=[common], help="delete a video")
    delete.add_argument("name", metavar="NAME")
    delete.set_defaults(run=cmd_delete)
    add("status", parents=[common, as_json], help="datanodes, replication health, counters").set_defaults(
        run=cmd_status
    )
    admin = add("admin", help="operator commands").add_subparsers(
        dest="admin_command", required=True, metavar="ADMIN_COMMAND"
    )
    admin.add_parser(
        "purge-orphans",
        parents=[common],
        help="delete blobs the datanodes hold that the master's index does not know "
        "(only once you are sure the index is the right one)",
    ).set_defaults(run=cmd_purge_orphans)
    return parser


async def run(args: argparse.Namespace) -> int:
    timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S, sock_read=READ_IDLE_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        return await args.run(Api(args.url, session), args)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        status = asyncio.run(run(args))
    except KeyboardInterrupt:
        status = EXIT_INTERRUPTED
    except (ToolError, OSError) as exc:  # OSError: a local file that cannot be read or written
        print(f"myyoutube: error: {exc}", file=sys.stderr)
        status = EXIT_FAILED
    sys.exit(status)


if __name__ == "__main__":
    main()
