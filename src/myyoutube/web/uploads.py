"""POST /upload: from a multipart body to a committed, replicated, described video.

Theory of operation
-------------------
The file part is read chunk by chunk (never `post()`, which buffers the whole body) with
a deadline on every read. Its first bytes are sniffed: not a known container is 415
before anything is stored. Then each chunk is written to the master, which fans it out
to the replicas, and also to a spool file on the web host's disk (memory stays flat).
The original is kept byte for byte (what /upload's sha256 and GET /original are); the
web renditions players use are made later by the cluster's transcode jobs.

Before the master is told to commit (`commit`, shared with resumable uploads), the spooled file is read once with
PyAV (media.probe): a file FFmpeg cannot read as a video, or whose picture is larger than
media.MAX_PIXELS, is refused (415), one whose data ends well before its declared duration
(cut short) is refused (422), and its replicas are dropped; otherwise its duration, size,
codec and bitrate, and a JPEG poster, travel with the commit. Bytes
are counted against `--max-upload-bytes` as they arrive (multipart ignores aiohttp's body
limit). Any failure aborts the master's upload, which removes every partial replica.

Only uploaders and admins may upload (401/403 before the body is read), within their
quota: an upload whose Content-Length already exceeds the room left is 413 at once, and
the master refuses as soon as the bytes pass it otherwise. Form fields other than the
file (`visibility` and `name`, which must come before it; a `name` replaces the
file's own name as the video's) are read up to MAX_FIELD_BYTES each; the
form after the file is read before the commit, and one of those fields there is refused
(400) rather than ignored. A body that ends inside the file part (the boundary after it
never came) is refused (400) as incomplete, whatever its bytes look like.
Upload slots are bounded in all and per client address, and a body arriving slower than
`--min-upload-rate` over a window is cut off (pace.py) and its slot freed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from pathlib import Path

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from myyoutube import media, names, permissions
from myyoutube.batched_writes import BatchedWriter
from myyoutube.client import MasterClient
from myyoutube.formatting import human_size
from myyoutube.master_streams import Upload
from myyoutube.protocol import CHUNK_BYTES
from myyoutube.web import media_processes
from myyoutube.web.auth import client_address
from myyoutube.web.common import (
    LIMITS,
    METRICS,
    SPOOL_BATCH_BYTES,
    VISITOR,
    account_of,
    error,
    master_for,
    on_local_disk,
)
from myyoutube.web.pace import enforce_rate
from myyoutube.web.spool import spool_folder

# A form part's `filename="..."` parameter, its value as sent (an RFC quoted string: up
# to the first quote not escaped by a backslash).
_QUOTED_FILENAME = re.compile(r';\s*filename="((?:[^"\\]|\\.)*)"')

# Multipart framing around the file (boundaries, part headers) is small; Content-Length may
# exceed --max-upload-bytes by this much before we refuse it up front.
MULTIPART_OVERHEAD_BYTES = 64 * 1024

# A client that sends no upload bytes for this long is gone or hostile; its slot is freed.
CLIENT_IDLE_TIMEOUT_S = 60.0

# Every upload's probe and poster, in child processes (media_processes.py).
MEDIA_WORK = media_processes.MediaProcesses()
MEDIA_TIMED_OUT = (
    f"Reading this video took this server over {media_processes.MEDIA_STEP_TIMEOUT_S / 60:g} minutes, "
    "so it was not stored. Try again later; if it happens again, the file may be damaged."
)
MEDIA_CRASHED = (
    "This file made the video reader crash, twice, so it was not stored. It may be damaged, "
    "or made to harm video software."
)
MEDIA_LOST = "This server stopped reading this video before it was done; try again shortly."
MEDIA_TOO_BIG = (
    "Reading this video needs more memory than this server gives a video reader, so it was not stored."
)

# Form fields besides the file hold a word or a line (visibility, name); anything longer is
# not ours, and reading it whole would let a client make us buffer without bound.
MAX_FIELD_BYTES = 4 * 1024
# The form fields besides the file that an upload uses; other fields are skipped unread.
FORM_FIELDS = ("visibility", "name")


CUT_SHORT = (
    "The upload ended before the form did (the boundary after the file never came), so the "
    "file may be incomplete; nothing was stored. Send it again."
)
NOT_A_VIDEO = "This file is not a video we can play (MP4, MOV, WebM, MKV, Ogg, AVI, MPEG-TS or MPEG-PS)."


class UploadRefused(Exception):
    """The upload is refused; `status` and the sentence go back to the user, with the
    `headers` it needs (Retry-After for a 503: `retryable`, the same bytes may succeed
    later, where a 4xx refuses the file itself)."""

    def __init__(self, status: int, message: str, **headers: str) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers

    @property
    def retryable(self) -> bool:
        return self.status >= 500


def too_large(limit: int) -> UploadRefused:
    return UploadRefused(413, f"The file is larger than the {human_size(limit)} upload limit.")


@contextmanager
def well_formed():
    """Around every read of the client's body. aiohttp's multipart parser refuses a
    malformed form (bad part headers, a missing or wrong boundary) with the first two;
    to the user that is a 400, not our failure. A client that went silent, or was cut off
    below the minimum rate (pace.py), is the client's doing too, not the master's."""
    try:
        yield
    except (HttpProcessingError, ValueError) as exc:
        raise UploadRefused(
            400, "The request is malformed; send the video as a standard multipart/form-data upload."
        ) from exc
    except (ConnectionError, TimeoutError) as exc:
        raise UploadRefused(408, "The upload stopped or was too slow; try again.") from exc


async def file_part(request: web.Request):
    """(the form's reader, its part named 'file', the form fields before it); each field
    is read up to MAX_FIELD_BYTES, a longer one is refused; other parts are skipped."""
    fields: dict[str, str] = {}
    with well_formed():
        reader = await request.multipart()
        async with asyncio.timeout(CLIENT_IDLE_TIMEOUT_S):
            while (part := await reader.next()) is not None:
                if isinstance(part, BodyPartReader) and part.name == "file":
                    return reader, part, fields
                field = await _form_field(part)
                if field is not None:
                    fields[field[0]] = field[1]
    raise UploadRefused(400, "The form has no 'file' field; attach the video as 'file'.")


async def _form_field(part) -> tuple[str, str] | None:
    """(name, value) of a form field we use (FORM_FIELDS), read up to MAX_FIELD_BYTES;
    any other part (a nested multipart, another file, an unknown field) is skipped, so
    a form of countless small fields holds nothing in memory."""
    if not isinstance(part, BodyPartReader) or part.filename is not None or part.name not in FORM_FIELDS:
        await part.release()
        return None
    value = b""
    while data := await part.read_chunk(MAX_FIELD_BYTES + 1 - len(value)):
        value += data
        if len(value) > MAX_FIELD_BYTES:
            raise UploadRefused(413, f"A form field is longer than {MAX_FIELD_BYTES // 1024} KiB.")
    return str(part.name), value.decode(errors="replace")


async def rest_of_form(reader) -> None:
    """Read the form's text fields past the file, before the upload is committed: a field
    we use after the file would be ignored (the video is already stored under the
    settings read before it), so it is refused rather than, say, a private video going
    public. The form is left unread from another file on: its bytes are not ours to wait
    for (a second video behind the first would cost its whole transfer)."""
    with well_formed():
        async with asyncio.timeout(CLIENT_IDLE_TIMEOUT_S):
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader) or part.filename is not None:
                    return
                field = await _form_field(part)
                if field is not None:
                    raise UploadRefused(
                        400,
                        f"The form's '{field[0]}' field comes after the file, where it cannot be used; "
                        f"put it before the file (curl: -F {field[0]}=... -F file=@video.mp4). "
                        "Nothing was stored.",
                    )


def form_filename(part) -> str:
    """The file name as the user's OS had it. Browsers escape exactly three characters in
    a form's file name (HTML standard, "multipart/form-data encoding algorithm"), and not
    the backslash, while aiohttp reads `filename="..."` as an RFC quoted string, whose
    backslashes escape: "C:\\Users\\bob\\win.mp4" (an old Windows browser's full path)
    became "C:Usersbobwin.mp4". So the raw value is kept unless it holds an RFC escape
    (\\" or \\\\, which some clients send and browsers never do) or the client sent an RFC
    5987 `filename*`: aiohttp decodes those."""
    disposition = part.headers.get("Content-Disposition", "")
    raw = _QUOTED_FILENAME.search(disposition)
    if raw and "filename*" not in disposition and '\\"' not in raw.group(1) and "\\\\" not in raw.group(1):
        escaped = raw.group(1)
    else:
        escaped = part.filename or ""
    return escaped.replace("%22", '"').replace("%0D", "\r").replace("%0A", "\n")


class BodyReader:
    """The file part's bytes, with a deadline per read and the size limit enforced."""

    def __init__(self, part, limit: int) -> None:
        self.part, self.limit, self.size = part, limit, 0

    async def read(self) -> bytes:
        with well_formed():
            async with asyncio.timeout(CLIENT_IDLE_TIMEOUT_S):
                data = await self.part.read_chunk(CHUNK_BYTES)
        if not data and not self.part.at_eof():
            # The body ended inside the file: the form's closing boundary never came.
            raise UploadRefused(400, CUT_SHORT)
        self.size += len(data)
        if self.size > self.limit:
            raise too_large(self.limit)
        return data

    async def read_at_least(self, count: int) -> bytes:
        head = b""
        while len(head) < count and (data := await self.read()):
            head += data
        return head


async def receive(request: web.Request, master: MasterClient, limit: int, spool_dir: Path | None) -> dict:
    """Store the upload in `request`; the committed video's record, or UploadRefused."""
    reader, part, fields = await file_part(request)
    visibility = fields.get("visibility", permissions.PUBLIC).strip()
    if visibility not in permissions.VISIBILITIES:
        raise UploadRefused(400, f"The visibility must be one of {', '.join(permissions.VISIBILITIES)}.")
    try:
        name = upload_name(fields.get("name", ""), form_filename(part))
    except names.BadName as exc:
        raise UploadRefused(400, str(exc)) from exc
    body = BodyReader(part, limit)
    head = await body.read_at_least(media.SNIFF_BYTES)
    if not head:
        raise UploadRefused(400, "The file is empty; choose a video file.")
    content_type = media.sniff(head)
    if content_type is None:
        raise UploadRefused(415, NOT_A_VIDEO)
    async with spool_folder(spool_dir) as folder:
        spooled = folder / "upload"
        return await _store(
            master,
            (name, content_type, visibility),
            spooled,
            lambda upload: _spool(body, head, spooled, upload, reader),
        )


def upload_name(chosen: str, filename: str) -> str:
    """The video's name: the one the uploader chose (the form's `name`, tus's `name`
    metadata), or else the file's own name; BadName if it breaks the naming rules."""
    if chosen.strip():
        return names.chosen_name(chosen)
    return names.clean_name(filename)


async def _spool(body: BodyReader, head: bytes, path: Path, upload: Upload, reader) -> None:
    """Write the file part (head first) to `path` and to `upload` as it goes, then read
    the rest of the form (`reader`, see rest_of_form).

    The spool file is written in batches by a worker thread while the chunks travel on to
    the master (batched_writes.py): the two waits overlap instead of adding up."""
    spool = await on_local_disk(asyncio.to_thread(open, path, "wb"))
    writes = BatchedWriter(spool.writelines, SPOOL_BATCH_BYTES)
    try:
        data = head
        while data:
            await on_local_disk(writes.write(data))
            await upload.write(data)
            data = await body.read()
        await on_local_disk(writes.flush())
        await rest_of_form(reader)
    except BaseException:
        await writes.abandon()
        raise
    finally:
        await asyncio.to_thread(spool.close)


async def _store(
    master: MasterClient,
    video: tuple[str, str, str],
    path: Path,
    send: Callable[[Upload], Awaitable[None]],
) -> dict:
    """Open an upload of `video` (name, content type, visibility), `send` the bytes, probe
    `path` and commit; any failure aborts it."""
    upload = await master.start_upload(*video)
    try:
        await send(upload)
        return await commit(upload, path)
    except BaseException:
        upload.abort()
        raise


async def commit(upload: Upload, path: Path) -> dict:
    """Probe the complete file at `path` (every byte already sent to `upload`), make its
    poster, and commit: the one way an upload becomes a video (POST /upload and resumable
    uploads alike). UploadRefused (415/422) for a file that is not a whole video; the
    caller aborts the upload then. The master queues the transcode jobs at the commit."""
    async with upload.keepalive():  # probing is work, not an uploader gone silent
        details = await _media_work(media.inspect, path)
        poster = await _media_work(media.make_poster, path, details.get("duration_s"))
    return await upload.finish(details, poster or b"")


async def _media_work(function, *args):
    """`function(*args)` in a media worker (media_processes.py); media's refusals, a step
    past MEDIA_STEP_TIMEOUT_S or out of memory, a file that kills decoders and a worker
    killed from outside, as UploadRefused."""
    try:
        return await MEDIA_WORK.run(function, *args)
    except media_processes.StepTimedOut as exc:
        raise UploadRefused(503, MEDIA_TIMED_OUT, **{"Retry-After": "60"}) from exc
    except media_processes.StepCrashed as exc:
        raise UploadRefused(422, MEDIA_CRASHED) from exc
    except media_processes.StepLost as exc:
        raise UploadRefused(503, MEDIA_LOST, **{"Retry-After": "10"}) from exc
    except MemoryError as exc:  # past the worker's address space ceiling
        raise UploadRefused(422, MEDIA_TOO_BIG) from exc
    except media.Truncated as exc:
        raise UploadRefused(422, str(exc)) from exc  # a video, but not all of it arrived
    except media.NotAVideo as exc:
        raise UploadRefused(415, str(exc)) from exc


def _refusal_up_front(request: web.Request, limit: int) -> web.Response | None:
    """Refuse what can be refused before reading the body: who, how much, what form."""
    user = request[VISITOR].user
    if user is None:
        return error(401, "Sign in to upload videos.")
    if not permissions.may_upload(user):
        return error(403, "Your account may watch videos but not upload them.")
    declared = request.content_length
    if declared is not None and declared > limit + MULTIPART_OVERHEAD_BYTES:
        return error(413, str(too_large(limit)))
    if declared is not None and not permissions.within_quota(user, declared - MULTIPART_OVERHEAD_BYTES):
        return error(413, permissions.quota_sentence(user))
    if request.content_type != "multipart/form-data":
        return error(400, "Send the video as multipart/form-data with a field named 'file'.")
    return None


async def upload(request: web.Request) -> web.Response:
    limits = request.app[LIMITS]
    limit = limits["max_upload_bytes"]
    refusal = _refusal_up_front(request, limit)
    if refusal is not None:
        return refusal
    body = request.content
    with limits["uploads"].take(client_address(request), account_of(request)):
        try:
            with enforce_rate(
                request, limits["upload_rate"], lambda: None if body.is_eof() else body.total_bytes, "upload"
            ):
                video = await receive(request, master_for(request), limit, limits["spool_dir"])
        except UploadRefused as exc:
            return error(exc.status, str(exc), **exc.headers)
    request.app[METRICS].uploads.inc()
    request.app[METRICS].upload_bytes.inc(video["size"])
    return web.json_response({k: video[k] for k in ("name", "size", "sha256")}, status=201)
