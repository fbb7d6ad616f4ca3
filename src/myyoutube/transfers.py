"""Downloads of whole video files for the `myyoutube` command-line client (uploads are
resumable_upload.py's).

Theory of operation
-------------------
Bytes are streamed a chunk at a time, so memory stays flat whatever the size.

A download fetches the original, byte for byte as it was uploaded (GET /original/NAME), and
never writes to the file it was asked for until the video is complete and checked. Bytes go to `FILE.part`, and before the first byte the video's ETag is written
beside it in `FILE.part.etag`: that sidecar is how a later run knows the `.part` is its
own and which version of the video it holds. The next run asks only for the rest, with
`Range: bytes=<have>-` and `If-Range: <ETag>`: the same video answers 206 and the bytes
are appended; a changed video comes back whole (200) and the `.part` starts over. Once
the size and the sha256 (the ETag is the video's quoted SHA-256) match, the `.part` is
renamed over FILE and the sidecar removed; bytes that do not match are thrown away. An
answer without such an ETag (another server's page at a wrong --url) is refused before
anything is written.

What a download refuses (`plan_download`, pure): an existing FILE, unless --force (the
old file then stays untouched until the new one is complete); a `FILE.part` without our
sidecar (another program's, e.g. a browser's download in progress), unless --force.

Two downloads to the same FILE at once (a second terminal, a script run twice) would
append to the same `.part`, and the first to finish would rename the mixture to FILE as
checked, since it checks the bytes it received: a download holds an exclusive lock on
`FILE.part.lock` from start to end, and a second one is refused while it does.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import hashlib
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from tqdm import tqdm

from myyoutube.webclient import Api, ConnectionLost, ToolError, video_path

# Disk reads and socket writes of 1 MiB keep system calls few while memory stays flat.
FILE_CHUNK_BYTES = 1024 * 1024

PART_SUFFIX = ".part"
ETAG_SUFFIX = ".part.etag"
LOCK_SUFFIX = ".part.lock"

_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(\d+)$")
_SHA256_ETAG = re.compile(r'"([0-9a-f]{64})"$')


def progress_bar(total: int | None, name: str, show: bool, initial: int = 0) -> tqdm:
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


# --- download: what to do with what is already on disk ------------------------------------


@dataclass(frozen=True)
class DownloadPlan:
    """Where a download starts: bytes of our `.part` to keep, and the headers asking for the rest."""

    have: int
    headers: dict[str, str] = field(default_factory=dict)


def download_target(output: str | None, name: str) -> Path:
    """Where `download NAME -o OUTPUT` saves: OUTPUT, or NAME inside it if it is a folder
    (by default the current one). OUTPUT/ names a folder, as for `cp`: one that does not
    exist is an error, not a file named OUTPUT; so is `-`, which would be a file named "-"
    while the user meant standard output."""
    if output == "-":
        raise ToolError(
            "-o - (standard output) is not offered: a download is checked in FILE.part before it "
            "becomes FILE; name a file, or play the video from the web page"
        )
    target = Path(output or name)
    if target.is_dir():
        return target / name
    if output and output.endswith(os.sep):
        raise ToolError(f"there is no folder {output}; create it first, or name the file to save")
    return target


def part_paths(output: Path) -> tuple[Path, Path]:
    """The `.part` a download of `output` writes, and the ETag sidecar beside it."""
    return output.with_name(output.name + PART_SUFFIX), output.with_name(output.name + ETAG_SUFFIX)


def plan_download(output: Path, part_size: int | None, etag_note: str | None, force: bool) -> DownloadPlan:
    """Decide from what is on disk: `part_size` None when there is no `.part`, `etag_note`
    None when there is no sidecar ("" when we wrote one for a video without an ETag)."""
    part, sidecar = part_paths(output)
    if output.exists() and not output.is_file():
        # --force replaced /dev/null (or a FIFO, a socket) with the video: never.
        raise ToolError(f"{output} is not a regular file; save the video elsewhere with -o FILE")
    if output.exists() and not force:
        raise ToolError(f"{output} already exists; use --force to replace it, or -o to save elsewhere")
    if part_size is None:
        return DownloadPlan(0)
    if etag_note is None:
        if not force:
            raise ToolError(
                f"{part} exists but was not started by myyoutube (no {sidecar.name} beside it); "
                "remove it, or use --force to overwrite it"
            )
        return DownloadPlan(0)
    if part_size == 0 or not etag_note.strip():
        return DownloadPlan(0)
    return DownloadPlan(part_size, {"Range": f"bytes={part_size}-", "If-Range": etag_note.strip()})


def read_plan(output: Path, force: bool) -> DownloadPlan:
    part, sidecar = part_paths(output)
    if part.exists() and not part.is_file():
        raise ToolError(
            f"{part} is in the way and is not a file; move it away, or save elsewhere with -o FILE"
        )
    part_size = part.stat().st_size if part.is_file() else None
    etag_note = sidecar.read_text(encoding="ascii", errors="replace") if sidecar.is_file() else None
    return plan_download(output, part_size, etag_note, force)


def _hash_prefix(path: Path, size: int, stop: threading.Event) -> hashlib._Hash:
    """The sha256 of the `.part` so far (in progress, to go on with); it stops early once
    `stop` is set, its value then unused."""
    digest = hashlib.sha256()
    if size:
        with open(path, "rb") as file:
            while not stop.is_set() and (data := file.read(FILE_CHUNK_BYTES)):
                digest.update(data)
    return digest


async def _hash_of_part(path: Path, size: int) -> hashlib._Hash:
    """_hash_prefix in a thread, stopped when the download is (Ctrl-C): the command could
    not exit before the thread had read the whole `.part`, minutes for a big one."""
    stop = threading.Event()
    try:
        return await asyncio.to_thread(_hash_prefix, path, size, stop)
    except BaseException:
        stop.set()
        raise


# --- download ----------------------------------------------------------------------------


@dataclass
class _Progress:
    """What the download holds so far: bytes kept in the `.part`, their hash, the total."""

    have: int
    digest: Any
    total: int | None = None
    etag: str = ""


async def download(
    api: Api, name: str, output: Path, *, force: bool, show: bool, note: Callable[[str], None]
) -> dict:
    """Fetch video `name` into `output` through its `.part` (see the module docstring);
    what was saved: name, path, size, sha256 and the byte it resumed at. A local file that
    cannot be written (no such folder, a read-only one, a full disk) is a ToolError naming
    `output`, not the `.part` or sidecar the user never asked for. Either failure, and a
    connection lost on the way, says whether the bytes received are kept for a rerun."""
    try:
        with _sole_download_to(output):
            return await _fetch(api, name, output, force=force, show=show, note=note)
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            # A name of up to 255 bytes is a valid video name, and a valid file name,
            # until ".part.lock" is added to it.
            raise ToolError(
                f"cannot save {name} under its own name here: with {LOCK_SUFFIX} added it is too long "
                "for a file name; save it under a shorter one with -o FILE"
            ) from None
        raise ToolError(
            f"cannot save {name} to {output}: {exc.strerror or exc}{_resume_hint(output)}"
        ) from None
    except ConnectionLost as exc:
        raise ConnectionLost(f"{exc}{_resume_hint(output)}") from None


@contextmanager
def _sole_download_to(output: Path) -> Iterator[None]:
    """Hold the exclusive lock on `FILE.part.lock`, or refuse: another download to the
    same FILE holds it. The lock file goes at the end, while still held (a download that
    opened it just before and locks it just after sees it was removed, and is refused)."""
    lock_path = output.with_name(output.name + LOCK_SUFFIX)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except (BlockingIOError, FileNotFoundError):
            held = False
        if not held:
            raise ToolError(
                f"another myyoutube is downloading to {output} right now; let it finish, or save elsewhere with -o"
            )
        try:
            yield
        finally:
            lock_path.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _resume_hint(output: Path) -> str:
    """What a failed download leaves to resume from, as the end of its error line."""
    part = part_paths(output)[0]
    try:
        kept = part.stat().st_size
    except OSError:
        kept = 0
    return (
        f"; the {kept} bytes received are kept in {part.name}, run the same command again to resume"
        if kept
        else ""
    )


async def _fetch(
    api: Api, name: str, output: Path, *, force: bool, show: bool, note: Callable[[str], None]
) -> dict:
    part, sidecar = part_paths(output)
    plan = await asyncio.to_thread(read_plan, output, force)
    digest = await _hash_of_part(part, plan.have)  # before the server waits
    got = _Progress(plan.have, digest)
    resumed_at = plan.have
    async with api.call(
        "GET", "/original/" + video_path(name), ok=(200, 206, 416), headers=plan.headers
    ) as response:
        got.etag = response.headers.get("ETag", "")
        if response.status != 416 and not _SHA256_ETAG.match(got.etag):
            # MyYoutube names every video's sha256 in its ETag; without it nothing can be
            # checked, and the answer is most likely another server's page.
            raise ToolError(
                f"{api.url} sent {name} without the sha256 ETag MyYoutube sends with every video; "
                "is it MyYoutube? Nothing was saved"
            )
        if response.status == 416:  # "bytes */SIZE": nothing at or past byte `have`
            got.total = _int_or_none(response.headers.get("Content-Range", "").rpartition("/")[2])
            got.etag = plan.headers.get("If-Range", "")
            if got.total != got.have:
                _discard(part, sidecar)
                raise ToolError(
                    f"{part} held more bytes than the video; it was removed, run the command again"
                )
        else:
            if response.status == 206:
                got.total = _resumed_total(response, got.have)
                note(f"resuming {name} at {got.have} of {got.total} bytes")
            else:
                if got.have:
                    note(f"{name} changed on the server or cannot be resumed; starting over")
                got.have, got.digest, got.total = 0, hashlib.sha256(), response.content_length
                resumed_at = 0
                # Before any byte: the sidecar is what marks the .part as ours.
                await asyncio.to_thread(sidecar.write_text, got.etag, encoding="ascii")
            await _receive(response, part, got, name, show)
    _finish(name, output, got)
    return {
        "name": name,
        "path": str(output),
        "size": got.have,
        "sha256": got.digest.hexdigest(),
        "resumed_at": resumed_at,
    }


def _int_or_none(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _resumed_total(response: aiohttp.ClientResponse, have: int) -> int:
    match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
    if not match or int(match[1]) != have:
        raise ToolError(f"the server sent a range not starting at byte {have}")
    return int(match[2])


async def _receive(
    response: aiohttp.ClientResponse, part: Path, got: _Progress, name: str, show: bool
) -> None:
    file = await asyncio.to_thread(open, part, "ab" if got.have else "wb")
    with file, progress_bar(got.total, name, show, initial=got.have) as bar:
        async for data in response.content.iter_chunked(FILE_CHUNK_BYTES):
            await asyncio.to_thread(file.write, data)
            got.digest.update(data)
            got.have += len(data)
            bar.update(len(data))


def _discard(part: Path, sidecar: Path) -> None:
    part.unlink(missing_ok=True)
    sidecar.unlink(missing_ok=True)


def _finish(name: str, output: Path, got: _Progress) -> None:
    """Check the `.part` and rename it over `output`, or say why not."""
    part, sidecar = part_paths(output)
    if got.total is not None and got.have != got.total:
        raise ToolError(
            f"the download of {name} stopped at {got.have} of {got.total} bytes; "
            "run the same command again to resume"
        )
    expected = _SHA256_ETAG.match(got.etag)
    sha256 = got.digest.hexdigest()
    if expected and expected[1] != sha256:
        _discard(part, sidecar)
        raise ToolError(
            f"the bytes received for {name} do not match the video (sha256 {sha256}, expected "
            f"{expected[1]}); they were thrown away, run the same command again"
        )
    os.replace(part, output)
    sidecar.unlink(missing_ok=True)
