"""Resumable uploads over tus 1.0 at /files/: Core, Creation, Creation-With-Upload,
Termination and Expiration.

Theory of operation
-------------------
The web front end holds nothing of an upload: the master keeps the session (its offset,
its replicas, its expiry; master/resumable.py) and the bytes are on the datanodes, so a
client may resume through any web process, a restarted one included. tus's headers are
read and checked by tus.py; this module does the I/O.

* `POST /files/` checks the same rules as `POST /upload` before anything is stored: who
  may upload, the size limit and the quota (from Upload-Length), the name (cleaned, then
  reserved by the master: 409 at once if taken). With a body (Creation-With-Upload) the
  first bytes are appended as a PATCH would; if they are refused the new upload is ended
  at once (the client never got its address), and a body that completes the upload is
  answered with the video, as the last PATCH is.
* `PATCH /files/{id}` appends at the session's offset (409 otherwise, 413 past its
  length). The first bytes of an upload are sniffed: not a known container is 415, and
  the session ends. Bytes are relayed chunk by chunk to the master, which confirms them
  only once every replica fsynced them. A client whose connection breaks mid-PATCH keeps
  what arrived: the append is ended with the bytes relayed so far.
* When the last byte is confirmed, the bytes are read back into the spool (or this
  process's own copy is taken, local_copy.py) and the upload goes through the validation
  and commit of a plain upload (uploads.commit): the session's blob, already replicated,
  becomes the video's original byte for byte, and the master queues its transcode jobs.
  A refused file ends the session (415/422). A completion cut
  short (the master unreachable) is tried again by the next HEAD, which a tus client
  sends when it resumes (or a PATCH at the final offset with an empty body): a client
  told the final offset is never left with an upload that is not a video.
* `HEAD` tells the offset, `DELETE` terminates; sessions expire on the master.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from urllib.parse import quote

import aiofiles
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from myyoutube import media, names, permissions
from myyoutube.client import MasterClient, RequestFailed
from myyoutube.protocol import CHUNK_BYTES
from myyoutube.web import tus, uploads
from myyoutube.web.auth import client_address
from myyoutube.web.common import LIMITS, METRICS, VISITOR, account_of, error, master_for
from myyoutube.web.local_copy import LocalCopy
from myyoutube.web.pace import enforce_rate
from myyoutube.web.spool import spool_folder

# Upload ids are the master's uuid4 hex; anything else names nothing.
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}\Z")

# What a client that goes away mid-body looks like to the reading side.
_CLIENT_GONE = (HttpProcessingError, ConnectionError, TimeoutError)


def setup(app: web.Application) -> None:
    app.router.add_route("OPTIONS", "/files/", options)
    app.router.add_post("/files/", create)
    app.router.add_route("HEAD", "/files/{upload_id}", head)
    app.router.add_patch("/files/{upload_id}", patch)
    app.router.add_delete("/files/{upload_id}", terminate)


def _tus_error(exc: tus.TusError) -> web.Response:
    return error(exc.status, str(exc), **tus.answer_headers(), **exc.headers)


def _refusal(request: web.Request) -> web.Response | None:
    """Who may use resumable uploads: the same as for /upload."""
    user = request[VISITOR].user
    if user is None:
        return error(401, "Sign in to upload videos.")
    if not permissions.may_upload(user):
        return error(403, "Your account may watch videos but not upload them.")
    return None


def _upload_id(request: web.Request) -> str:
    upload_id = request.match_info["upload_id"]
    if not _UPLOAD_ID.match(upload_id):
        raise web.HTTPNotFound()
    return upload_id


def _offset_headers(upload: dict) -> dict[str, str]:
    return tus.answer_headers(
        Upload_Offset=str(upload["offset"]),
        Upload_Length=str(upload["length"]),
        Upload_Expires=tus.expires(upload["expires_at"]),
        Cache_Control="no-store",
    )


async def options(request: web.Request) -> web.Response:
    return web.Response(status=204, headers=tus.options_headers(request.app[LIMITS]["max_upload_bytes"]))


async def create(request: web.Request) -> web.Response:
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    user = request[VISITOR].user
    assert user is not None, "_refusal answered anonymous visitors"
    try:
        asked = tus.creation(request.headers, request.app[LIMITS]["max_upload_bytes"])
        name = uploads.upload_name(asked.name, asked.filename)
    except tus.TusError as exc:
        return _tus_error(exc)
    except names.BadName as exc:
        # Said to be about the name: the upload page then offers to type another one,
        # which cures this refusal and no other (an empty file, a bad title).
        return web.json_response({"error": str(exc), "field": "name"}, status=400)
    if not permissions.within_quota(user, asked.length):
        return error(413, permissions.quota_sentence(user))
    if tus.has_body(request.headers) and (request.content_length or 0) > asked.length:
        return _tus_error(tus.TusError(413, tus.past_end(asked.length)))
    master = master_for(request)
    upload = await master.create_upload(name, asked.length, asked.visibility, asked.title)
    headers = _offset_headers(upload)
    if tus.has_body(request.headers):
        # The client never learns this upload's address unless it is answered 201: nothing
        # could resume or end it, and its name and quota would stay taken until it expired
        # (a day). So a refusal ends it, answered (413, 415...) or raised (503 when every
        # upload slot is taken, the cluster unreachable).
        copy = LocalCopy(request.app[LIMITS]["spool_dir"], upload["id"])
        try:
            answer = await _append_then_complete(request, master, upload)
        except Exception:
            await _give_up(master, upload["id"], copy)
            raise
        if answer.status >= 400:
            await _give_up(master, upload["id"], copy)
            return answer
        headers = dict(answer.headers)  # the new offset, and the video if it is complete
    return web.Response(status=201, headers=dict(headers, Location=f"/files/{upload['id']}"))


async def head(request: web.Request) -> web.Response:
    try:
        tus.check_version(request.headers)
    except tus.TusError as exc:
        return _tus_error(exc)
    master = master_for(request)
    upload = await master.upload_status(_upload_id(request))
    if upload["offset"] == upload["length"] and request[VISITOR].user is not None:
        # Every byte is in but the commit did not happen (it failed, or the client never
        # heard): a tus client takes this offset for "done", so commit first.
        completed = await _append_then_complete(request, master, upload)
        if completed.status >= 400:
            return completed
        return web.Response(status=200, headers=completed.headers)
    return web.Response(status=200, headers=_offset_headers(upload))


async def terminate(request: web.Request) -> web.Response:
    try:
        tus.check_version(request.headers)
    except tus.TusError as exc:
        return _tus_error(exc)
    upload_id = _upload_id(request)
    await master_for(request).terminate_upload(upload_id)
    await LocalCopy(request.app[LIMITS]["spool_dir"], upload_id).discard()
    return web.Response(status=204, headers=tus.answer_headers())


async def patch(request: web.Request) -> web.Response:
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    upload_id = _upload_id(request)
    try:
        offset = tus.patch_offset(request.headers)
    except tus.TusError as exc:
        return _tus_error(exc)
    master = master_for(request)
    upload = await master.upload_status(upload_id)
    try:
        tus.check_patch(offset, upload, request.content_length)
    except tus.TusError as exc:
        return _tus_error(exc)
    return await _append_then_complete(request, master, upload)


async def _append_then_complete(request: web.Request, master: MasterClient, upload: dict) -> web.Response:
    """Append the body at the upload's offset, then commit if it is complete: 204 with
    the new offset, or the refusal."""
    limits = request.app[LIMITS]
    with limits["uploads"].take(client_address(request), account_of(request)):
        video: dict = {}
        body, copy = request.content, LocalCopy(limits["spool_dir"], upload["id"])
        try:
            # A body slower than --min-upload-rate is cut off (pace.py): what arrived counts.
            with enforce_rate(
                request, limits["upload_rate"], lambda: None if body.is_eof() else body.total_bytes, "upload"
            ):
                upload = await _append(body, master, upload, copy)
            if upload["offset"] == upload["length"]:
                video = await _complete(master, upload, copy, limits["spool_dir"])
                request.app[METRICS].uploads.inc()
                request.app[METRICS].upload_bytes.inc(upload["length"])
        except tus.TusError as exc:
            return _tus_error(exc)
        except uploads.UploadRefused as exc:
            return error(exc.status, str(exc), **exc.headers, **tus.answer_headers())
    headers = _offset_headers(upload)
    if video:
        # The upload is a video now: which, and its checksum (the CLI checks it).
        headers.update({"Video-Name": quote(video["name"], safe=""), "Video-Sha256": video["sha256"]})
    return web.Response(status=204, headers=headers)


class _Body:
    """A PATCH body, read chunk by chunk; a client that goes away (or stays silent past
    uploads.CLIENT_IDLE_TIMEOUT_S) ends it, as if it had ended there."""

    def __init__(self, content) -> None:
        self.content, self.gone = content, False

    async def read(self, count: int = CHUNK_BYTES) -> bytes:
        if self.gone:
            return b""
        try:
            async with asyncio.timeout(uploads.CLIENT_IDLE_TIMEOUT_S):
                return await self.content.read(count)
        except _CLIENT_GONE:
            self.gone = True
            return b""

    async def read_at_least(self, count: int) -> bytes:
        head = b""
        while len(head) < count and (data := await self.read(min(CHUNK_BYTES, count - len(head)))):
            head += data
        return head


async def _append(content, master: MasterClient, upload: dict, copy: LocalCopy) -> dict:
    """Relay the body to the master as one append (and to this process's copy); the
    session with its new offset."""
    body = _Body(content)
    offset, length = upload["offset"], upload["length"]
    first = await body.read_at_least(min(media.SNIFF_BYTES, length)) if offset == 0 else await body.read()
    if not first:
        return upload  # nothing arrived (or a retry of the completion)
    if offset == 0 and len(first) == min(media.SNIFF_BYTES, length) and media.sniff(first) is None:
        await master.terminate_upload(upload["id"])
        raise uploads.UploadRefused(415, uploads.NOT_A_VIDEO)
    try:
        append = await master.append_upload(upload["id"], offset)
    except RequestFailed as exc:
        if exc.code == "conflict":  # another PATCH moved the offset meanwhile
            raise tus.TusError(409, exc.message) from exc
        raise
    try:
        await copy.start(offset)
        data = first
        while data:
            if offset + append.size + len(data) > length:
                raise tus.TusError(413, tus.past_end(length))
            await append.write(data)
            await copy.write(data)
            data = await body.read()
        upload = await append.finish()
    except BaseException:
        append.abort()  # nothing of this append is confirmed; the client resumes at the old offset
        await copy.end(offset)
        raise
    await copy.end(upload["offset"])
    return upload


async def _complete(master: MasterClient, upload: dict, copy: LocalCopy, spool_dir: Path | None) -> dict:
    """Take this process's copy of the finished upload, or read it back; validate and
    commit it as a plain upload is."""
    async with spool_folder(spool_dir) as folder:
        spooled = folder / "upload"
        if not await copy.take(upload["length"], spooled):
            async with aiofiles.open(spooled, "wb") as spool:
                async for data in master.read_upload(upload["id"]):
                    await spool.write(data)
        async with aiofiles.open(spooled, "rb") as spool:
            head = await spool.read(media.SNIFF_BYTES)
        content_type = media.sniff(head)
        try:
            if content_type is None:
                raise uploads.UploadRefused(415, uploads.NOT_A_VIDEO)
            # The session's blob, already on its replicas, becomes the video's original
            # (kept byte for byte, as a plain upload's); nothing is sent again.
            finish = await master.finish_upload(upload["id"], content_type)
            try:
                return await uploads.commit(finish, spooled)
            except BaseException:
                finish.abort()
                raise
        except uploads.UploadRefused as refused:
            if not refused.retryable:
                await _give_up(master, upload["id"], copy)  # the file itself is refused: no retry helps
            # A refusal to retry later (this server too busy to read the file in time)
            # keeps the session: every byte is stored, and the client's next HEAD
            # commits it (reading the bytes back) instead of finding it gone.
            raise


async def _give_up(master: MasterClient, upload_id: str, copy: LocalCopy) -> None:
    """End the upload, and this process's copy of it, which nothing would take or remove
    now (it stayed until the sweep of a day-old copy, if another upload ever started)."""
    await copy.discard()
    try:
        await master.terminate_upload(upload_id)
    except (RequestFailed, OSError, TimeoutError):
        pass  # it expires on the master in any case
