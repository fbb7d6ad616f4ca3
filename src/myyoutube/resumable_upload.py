"""Resumable uploads from the command line: tus 1.0 over plain HTTP (no extra dependency).

Theory of operation
-------------------
`upload_resumable` creates an upload at /files/ (the file name in Upload-Metadata), then
sends the file in PATCH_BYTES pieces, each one a PATCH at the offset the server
confirmed. When a piece fails (the connection drops, the server is restarting or answers
5xx, or another offset is the server's: 409) it waits (RETRY_DELAYS_S, growing), asks
the server for its offset with HEAD and carries on from there; bytes the server already
has are never sent again.

The upload's URL is remembered in a small state file (upload_state.py), keyed by the
file's path, size and modification time: running the same command again after an
interruption (even Ctrl-C, or a reboot) resumes the same upload, while a file that
changed starts afresh, and the upload of its earlier version is cancelled on the server
(DELETE): left alone it would hold the video's name and the account's quota until it
expired, a day later. The entry is forgotten once the upload is committed, the server
refused the file (which ends the upload) or no longer knows it.

A file that gets shorter while it is sent cannot complete its upload (the server waits
for the size declared at the start): the upload is cancelled and the command says why,
rather than sending empty pieces forever. The last PATCH is answered once the server
committed the video; its headers name the video and its sha256, which must equal the
file's (a file changed while it was sent is named as the cause).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import stat
import threading
from pathlib import Path
from urllib.parse import unquote

import aiohttp

from myyoutube import upload_state
from myyoutube.permissions import PUBLIC
from myyoutube.terminal import complain
from myyoutube.transfers import FILE_CHUNK_BYTES, progress_bar
from myyoutube.webclient import Api, ToolError, Unauthorized, error_sentence, server_sentence

# tus-js-client and PeerTube send 5 MiB or more per PATCH: few requests, and a broken one
# costs at most this much again.
PATCH_BYTES = 5 * 1024 * 1024

# Waits before each retry of a failed piece; past the last one the upload stops (the
# next run of the same command resumes it).
RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)

TUS = {"Tus-Resumable": "1.0.0"}

# Answers worth retrying: the server or its cluster is busy or restarting.
RETRY_STATUSES = frozenset({409, 423, 500, 502, 503, 504})
# The same for HEAD, but for 409: there it is a commit refused (the name is taken), for
# good; to a PATCH it says another offset is the server's, which HEAD then tells.
HEAD_RETRY_STATUSES = RETRY_STATUSES - {409}
# Answers to a PATCH after which the server has ended the upload: the file is not a video
# it can store (415) or stops short of what it declares (422).
ENDING_STATUSES = frozenset({415, 422})


class _Retry(Exception):
    """This piece failed in a way a later try may not."""


async def _retry_for(response: aiohttp.ClientResponse) -> _Retry:
    """A piece the server refused for now, with its reason: the last one is what the
    command says when it gives up (it used to say only "the server answered 503", while
    the server's sentence said why: too few datanodes running, say)."""
    sentence = await server_sentence(response)
    return _Retry(f"the server answered {response.status}" + (f": {sentence}" if sentence else ""))


class _Ended(ToolError):
    """The server refused the file and ended its upload: there is nothing left to resume."""


class _FileChanged(ToolError):
    """The file got shorter while it was sent: its upload can never complete."""


async def upload_resumable(
    api: Api,
    path: Path,
    show: bool,
    state: upload_state.UploadState | None = None,
    visibility: str = PUBLIC,
    name: str = "",
) -> dict:
    """Upload one file over tus, resuming an earlier run's upload of it; the video's
    name, size and sha256, checked against the file's. `visibility` is who may watch it
    (a resumed upload keeps the one it was created with); `name` is the video's name if
    not the file's own. An upload under a chosen name is another upload than the file's
    unfinished one under its own name: resuming that would silently drop the choice."""
    state = state or upload_state.UploadState(upload_state.state_path())
    try:
        size, key = await asyncio.to_thread(_file_to_send, path, api.url, name)
    except OSError as exc:
        raise ToolError(exc.strerror or str(exc)) from None
    await _cancel_earlier_versions(api, state, key, upload_state.file_of(path, api.url))
    stop_hashing = threading.Event()
    hashing = asyncio.ensure_future(asyncio.to_thread(_sha256_of, path, stop_hashing))
    # When the upload fails first, nobody awaits the hash: its own failure is not news.
    hashing.add_done_callback(lambda task: task.cancelled() or task.exception())
    try:
        video = await _send_file(api, path, show, state, (size, key), (visibility, name))
    except BaseException:
        # A refused, failed or interrupted upload needs no hash; the command could not
        # exit before the thread had read the whole file (minutes for a big one).
        stop_hashing.set()
        raise
    sent = await hashing
    if video["sha256"] != sent:
        if await asyncio.to_thread(_changed, path, api.url, key, name):
            raise ToolError(
                f"the file changed while it was being uploaded, so the video stored as {video['name']} is "
                "not the file as it is now: delete it (`myyoutube delete NAME`) and upload the file again"
            )
        raise ToolError(
            f"the server stored sha256 {video['sha256']} but the file sent has sha256 {sent}; "
            "the copy is damaged, delete it and upload again"
        )
    return dict(video, size=size)


def _changed(path: Path, server: str, key: str, name: str) -> bool:
    """Whether the file's size or mtime are not what they were when its upload began."""
    try:
        return upload_state.file_key(path, server, name) != key
    except OSError:
        return True  # gone, or moved away


async def _cancel_earlier_versions(api: Api, state: upload_state.UploadState, key: str, file: str) -> None:
    """Cancel the unfinished uploads of this file's earlier versions (it changed since an
    interrupted run): each holds the video's name and quota on the server until it
    expires, and none can be resumed now. One the server would not cancel (another
    account's, a token expired) is kept, for a later run to cancel, and said so."""
    for other, location in state.earlier_versions(key, file):
        refusal = await _cancel(api, location)
        if refusal is None:
            state.put(other, None)
            complain("myyoutube: the file changed since its interrupted upload; that upload was cancelled")
        else:
            complain(
                f"myyoutube: warning: the file changed since its interrupted upload, which could not be cancelled ({refusal})"
            )


async def _cancel(api: Api, location: str) -> str | None:
    """DELETE an upload on the server: None once it is gone (or was already), else why
    not (the server's answer, or that none came)."""
    try:
        async with api.session.delete(api.url + location, headers=TUS) as response:
            if response.status in (204, 404, 410):
                return None
            return await error_sentence(response, api.url)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return f"no answer: {type(exc).__name__}"


async def _send_file(
    api: Api,
    path: Path,
    show: bool,
    state: upload_state.UploadState,
    size_and_key: tuple[int, str],
    asked: tuple[str, str],
) -> dict:
    """Resume this file's upload (or create one, with `asked`: visibility and chosen
    name) and send the rest; the committed video."""
    size, key = size_and_key
    location = state.get(key)
    known = await _resumable(api, location) if location else None
    if location is None or known is None:
        location, known = await _create(api, path.name, size, *asked), (0, None)
        state.put(key, location)
    offset, video = known
    try:
        with progress_bar(size, path.name, show, initial=offset) as bar:
            video = video or await _send_all(api, path, location, offset, size, bar)
    except _Ended:
        state.put(key, None)  # or every refused file stayed in the state file for good
        raise
    except _FileChanged as exc:
        refusal = await _cancel(api, location)
        if refusal is not None:  # kept in the state file: the next run cancels it (an earlier version)
            raise ToolError(
                f"{exc}; its upload could not be cancelled ({refusal}): the next run of this command "
                "cancels it, or the server drops it when it expires"
            ) from None
        state.put(key, None)
        raise ToolError(
            f"{exc}; the upload was cancelled and nothing was stored: upload it again once it is complete"
        ) from None
    state.put(key, None)
    return video


def _file_to_send(path: Path, server: str, name: str) -> tuple[int, str]:
    """The size and file_key of a regular file this user may read. Anything else fails
    here, before the server is asked for an upload: a directory or a FIFO (whose reading
    would wait for a writer forever) has no video to send, and an unreadable file none
    this user may send."""
    info = path.stat()
    if not _is_utf8(path.name):  # the name becomes the video's, which is text
        raise ToolError("The file name is not valid UTF-8 text; rename the file")
    if stat.S_ISDIR(info.st_mode):
        raise ToolError("Is a directory; name the video files in it")
    if not stat.S_ISREG(info.st_mode):
        raise ToolError("Not a regular file; upload the video file itself")
    with open(path, "rb"):  # PermissionError now, not once the upload exists
        pass
    return info.st_size, upload_state.file_key(path, server, name)


def _is_utf8(name: str) -> bool:
    """False for a name with bytes that are not UTF-8 (Python keeps them as lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _sha256_of(path: Path, stop: threading.Event) -> str:
    """The file's sha256, or "" once `stop` is set (checked between chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while data := file.read(FILE_CHUNK_BYTES):
            if stop.is_set():
                return ""
            digest.update(data)
    return digest.hexdigest()


async def _create(api: Api, filename: str, size: int, visibility: str, name: str) -> str:
    metadata = ",".join(
        f"{key} {base64.b64encode(value.encode('utf-8')).decode()}"
        for key, value in (("filename", filename), ("visibility", visibility), ("name", name))
        if value
    )
    headers = {**TUS, "Upload-Length": str(size), "Upload-Metadata": metadata}
    async with api.call("POST", "/files/", ok=(201, 409), headers=headers) as response:
        if response.status == 409:  # the name is taken (or looks like one that is)
            sentence = await error_sentence(response, api.url)
            raise ToolError(sentence + ("" if name else " Upload it under another with --name NAME."))
        return response.headers["Location"]


async def _offset_or_none(api: Api, location: str) -> tuple[int, dict | None] | None:
    """The server's offset for an upload (and the video, if asking made it commit the
    complete upload); None if it no longer knows the upload or keeps it from this account.
    _Retry when asking failed in a way a later try may not (no answer, a restarting front
    end, a busy cluster), ToolError for any other refusal (a commit refused, say)."""
    try:
        async with api.session.head(api.url + location, headers=TUS) as response:
            if response.status in (403, 404, 410):
                return None
            if response.status in HEAD_RETRY_STATUSES:
                raise await _retry_for(response)
            if response.status != 200:
                refused = Unauthorized if response.status == 401 else ToolError
                raise refused(await error_sentence(response, api.url))
            return int(response.headers["Upload-Offset"]), _video_of(response)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise _Retry(type(exc).__name__) from None


async def _resumable(api: Api, location: str) -> tuple[int, dict | None] | None:
    """Where an earlier run's upload stands, None to start afresh (also when the server
    cannot say just now)."""
    try:
        return await _offset_or_none(api, location)
    except _Retry:
        return None


def _video_of(response: aiohttp.ClientResponse) -> dict | None:
    """The committed video an answer names, or None."""
    if "Video-Sha256" not in response.headers:
        return None
    return {"name": unquote(response.headers["Video-Name"]), "sha256": response.headers["Video-Sha256"]}


async def _send_all(api: Api, path: Path, location: str, offset: int, size: int, bar) -> dict:
    """PATCH the file from `offset` to the end; the video. After a failed piece it waits
    and asks the server for its offset (HEAD); a failed ask is waited out the same way, as
    when the front end restarts. RETRY_DELAYS_S bound the failures in a row."""
    failures, asking = 0, False
    file = await asyncio.to_thread(open, path, "rb")
    with file:
        while True:
            try:
                if asking:
                    known = await _offset_or_none(api, location)
                    if known is None:
                        raise ToolError(
                            "the server no longer knows this upload (it expired, was cancelled, or was "
                            "committed while its answer was lost: see `myyoutube list`)"
                        )
                    (offset, video), asking = known, False
                else:
                    file.seek(offset)
                    wanted = min(PATCH_BYTES, size - offset)
                    piece = await asyncio.to_thread(file.read, wanted)
                    if len(piece) < wanted:
                        raise _FileChanged(
                            f"the file got shorter while it was being uploaded ({offset + len(piece)} of the "
                            f"{size} bytes it had)"
                        )
                    offset, video = await _patch(api, location, offset, piece)
                    failures = 0
            except _Retry as exc:
                if failures >= len(RETRY_DELAYS_S):
                    raise ToolError(
                        f"the upload keeps failing ({exc}); run the same command again to resume"
                    ) from None
                await asyncio.sleep(RETRY_DELAYS_S[failures])
                failures, asking = failures + 1, True
                continue
            bar.n = offset
            bar.refresh()
            if video is not None:
                return video


async def _patch(api: Api, location: str, offset: int, piece: bytes) -> tuple[int, dict | None]:
    """One PATCH; (the new offset, the video once committed)."""
    headers = {**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset)}
    try:
        async with api.session.patch(api.url + location, headers=headers, data=piece) as response:
            if response.status in RETRY_STATUSES:
                raise await _retry_for(response)
            if response.status != 204:
                refused = _Ended if response.status in ENDING_STATUSES else ToolError
                raise refused(await error_sentence(response, api.url))
            return int(response.headers["Upload-Offset"]), _video_of(response)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise _Retry(type(exc).__name__) from None
