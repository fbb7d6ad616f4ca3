"""The web front end's HTTP API as the `myyoutube` command-line client speaks it.

Theory of operation
-------------------
Every request goes through `Api.call`, the one place that turns what can go wrong into a
`ToolError` whose text is the line the user reads: the server's `{"error": "<sentence>"}`
for a refused request, "cannot reach MyYoutube at URL (...)" when no connection can be
made (`Unreachable`, so a command working through several files stops at once).

Listings come a page at a time: `/listar` and `/search` answer `{"videos": [...], "next":
CURSOR|null}`; `video_pages` follows `next` until it is null (or absent, as from a server
that does not page), so a caller can print each page as it arrives and stop early.

Requests are signed in with an API token (`Authorization: Bearer TOKEN`): the one in
$MYYOUTUBE_TOKEN, else the one `myyoutube login` saved for that --url in the token file
($XDG_CONFIG_HOME or ~/.config, then myyoutube/token; the folder 0700, the file 0600; a
JSON object of tokens by front end URL). Without either, requests go out anonymously. A
token is sent only to the front end that issued it: one saved file for all URLs sent one
cluster's token to any other --url (whose answer was then "The token is not valid any
more" even for an anonymous listing), and a login to a second cluster signed the first out.
A file of an earlier release holding one bare token, whose issuer is unknown, is sent to
no front end: every command but `login` (which replaces it) and `logout` (which
removes it) asks for a new sign-in.
"""

from __future__ import annotations

import json
import os
import ssl
import unicodedata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import yarl

# A front end that has not accepted the connection by then is down or unreachable.
CONNECT_TIMEOUT_S = 10.0
# An upload's answer comes only once every replica stored the last chunk, and a stream
# may pause while the master fails over to another replica; longer silence is a dead peer.
READ_IDLE_TIMEOUT_S = 120.0
# Error answers are one sentence of JSON; read no more of a misbehaving server's body.
MAX_ERROR_BODY_BYTES = 64 * 1024
# Videos asked for per listing page: the API's maximum, so a long listing takes few requests.
LIST_PAGE_VIDEOS = 200
TOKEN_ENV = "MYYOUTUBE_TOKEN"


def token_path() -> Path:
    """Where `myyoutube login` keeps the token."""
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(config) / "myyoutube" / "token"


# A token file from before tokens were kept per URL holds one bare token, which every
# --url was sent. Which server issued it is unknown, so it is sent to none (it was sent
# to whatever --url the user typed, until the next login): `login` replaces it, and
# `logout` removes it without asking any server (none can be told which session it was).
UNKNOWN_SERVER = "*"


def server_key(url: str) -> str:
    """The front end a --url names, as the token file keys it (scheme and host are
    case-insensitive: HTTP://LOCALHOST:8080 is http://localhost:8080)."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def _saved_tokens() -> dict[str, str]:
    """The token file's tokens by server_key ({} without a readable file)."""
    try:
        text = token_path().read_text().strip()
    except (OSError, UnicodeError):
        return {}
    if not text.startswith("{"):
        return {UNKNOWN_SERVER: text} if text else {}
    try:
        tokens = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(tokens, dict):
        return {}
    return {server: token for server, token in tokens.items() if isinstance(token, str)}


def saved_token(url: str) -> str:
    """The token to sign requests to `url` with: $MYYOUTUBE_TOKEN, else the one saved for
    that front end, else ''. One that no server issued and none could be sent (a line
    break or another control character inside), or a bare token of an earlier release,
    is a ToolError saying where it came from."""
    if os.environ.get(TOKEN_ENV):
        token, source = os.environ[TOKEN_ENV].strip(), f"${TOKEN_ENV}"
    else:
        tokens = _saved_tokens()
        if UNKNOWN_SERVER in tokens:
            raise ToolError(
                f"{token_path()} holds a token saved by an earlier release, which does not say "
                "which server issued it, so it is sent to none; sign in again with `myyoutube login` "
                "(which replaces it)"
            )
        token, source = tokens.get(server_key(url), ""), str(token_path())
    if not (token.isascii() and token.isprintable()):
        raise ToolError(
            f"{source} holds no usable token (it has control or non-ASCII characters); "
            "sign in again with `myyoutube login`"
        )
    return token


def _write_tokens(tokens: dict[str, str]) -> Path:
    """Replace the token file by one holding `tokens` (removed when there are none),
    readable by its owner only."""
    path = token_path()
    if not tokens:
        path.unlink(missing_ok=True)
        return path
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(json.dumps(tokens, indent=1) + "\n")
    return path


def save_token(url: str, token: str) -> Path:
    """Keep the token `url` issued for later commands to it; other front ends' tokens
    stay, and a bare token of an earlier release (its server unknown) goes."""
    tokens = _saved_tokens()
    tokens.pop(UNKNOWN_SERVER, None)
    tokens[server_key(url)] = token
    return _write_tokens(tokens)


def forget_token(url: str) -> bool:
    """Remove the token saved for `url` (or a bare one of an earlier release); whether there was one."""
    tokens = _saved_tokens()
    if tokens.pop(server_key(url), None) is None and tokens.pop(UNKNOWN_SERVER, None) is None:
        return False
    _write_tokens(tokens)
    return True


def forget_earlier_release_token() -> bool:
    """Remove a bare token of an earlier release from the token file (the tokens saved
    per front end stay); whether there was one."""
    tokens = _saved_tokens()
    if tokens.pop(UNKNOWN_SERVER, None) is None:
        return False
    _write_tokens(tokens)
    return True


class ToolError(Exception):
    """A failure the user can understand; str(exc) is the one line they read."""


class Unreachable(ToolError):
    """No connection to the front end at all: pointless to try the next file."""


class Unauthorized(ToolError):
    """The front end refused the credentials sent (401): an expired or revoked token."""


class ConnectionLost(ToolError):
    """The connection failed once made: cut short, or silent for too long."""


def video_path(name: str) -> str:
    """A video's name as one URL path segment (`/`, `?`, `#` and `%` included), in Unicode
    NFC as the server stores names: "é" typed or pasted decomposed (macOS file names are)
    names the same video."""
    return quote(unicodedata.normalize("NFC", name), safe="")


class Api:
    """The web front end at one base URL, spoken to through one client session."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url, self.session = url, session

    @asynccontextmanager
    async def call(
        self, method: str, path: str, ok: tuple[int, ...] = (200,), **kwargs: Any
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """The response to one request; any status not in `ok`, or any transport failure
        (also while the caller reads the body), raises ToolError."""
        url = yarl.URL(self.url + path, encoded=True)
        try:
            async with self.session.request(method, url, **kwargs) as response:
                if response.status not in ok:
                    refused = Unauthorized if response.status == 401 else ToolError
                    raise refused(await error_sentence(response, self.url))
                yield response
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise Unreachable(f"cannot reach MyYoutube at {self.url} ({_reason(exc)})") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            # An https front end closes a plain request at once, with no answer: the
            # opposite mistake (https:// to plain http) gets a hint from _reason.
            hint = (
                "; if it serves HTTPS, its URL starts with https://"
                if isinstance(exc, aiohttp.ServerDisconnectedError) and self.url.startswith("http://")
                else ""
            )
            raise ConnectionLost(
                f"the connection to MyYoutube at {self.url} failed ({_reason(exc)}{hint})"
            ) from None

    async def json(
        self,
        path: str,
        method: str = "GET",
        ok: tuple[int, ...] = (200,),
        keys: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> dict:
        """The JSON object answering one request (see `call`). It must hold `keys`, as
        MyYoutube's answer does: another server at a wrong --url may well answer a JSON
        object too, and its `{}` is no sign that a video was deleted."""
        async with self.call(method, path, ok, **kwargs) as response:
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = None
        if not isinstance(body, dict):
            raise ToolError(f"{self.url} did not answer with a JSON object; is it MyYoutube?")
        missing = [key for key in keys if key not in body]
        if missing:
            raise self.not_myyoutube(f"no {missing[0]!r}")
        return body

    def not_myyoutube(self, what: str) -> ToolError:
        """The error for an answer that is not MyYoutube's: `what` is wrong with it."""
        return ToolError(f"{self.url} did not answer as MyYoutube does ({what}); is it MyYoutube?")

    async def records(self, path: str, key: str) -> list[dict]:
        """The list of JSON objects under `key` in the answer to GET `path`."""
        found = (await self.json(path, keys=(key,)))[key]
        if not isinstance(found, list) or not all(isinstance(record, dict) for record in found):
            raise self.not_myyoutube(f"its {key!r} are not records")
        return found

    async def video_pages(self, term: str | None) -> AsyncIterator[list[dict]]:
        """Every video (or every match for `term`), one page of the listing at a time."""
        path = "/listar" if term is None else "/search"
        query: dict[str, str] = {"limit": str(LIST_PAGE_VIDEOS)}
        if term is not None:
            query["q"] = term
        while True:
            body = await self.json(f"{path}?{urlencode(query)}")
            videos = body.get("videos")
            if not isinstance(videos, list):
                raise ToolError(f"{self.url} answered a listing without videos; is it MyYoutube?")
            if not all(isinstance(video, dict) for video in videos):
                raise self.not_myyoutube("its 'videos' are not records")
            yield videos
            cursor = body.get("next")
            if cursor is None:
                return
            if not isinstance(cursor, str) or cursor == query.get("cursor"):
                raise ToolError(f"{self.url} answered a listing whose next page never ends")
            query["cursor"] = cursor


async def server_sentence(response: aiohttp.ClientResponse) -> str | None:
    """The server's {"error": sentence}, None without one."""
    body = b""
    while len(body) < MAX_ERROR_BODY_BYTES and (
        data := await response.content.read(MAX_ERROR_BODY_BYTES - len(body))
    ):
        body += data
    try:
        sentence = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return None
    return sentence if isinstance(sentence, str) and sentence else None


async def error_sentence(response: aiohttp.ClientResponse, url: str) -> str:
    """The server's {"error": sentence}, or, when there is none, which server answered
    what: every refusal of MyYoutube's own says why, so a bare 404 is most likely another
    server at a wrong --url."""
    sentence = await server_sentence(response)
    if sentence:
        return sentence
    wrong_url = " (is it MyYoutube, and is that the right address?)" if response.status == 404 else ""
    return f"{url} answered {response.status} {response.reason}{wrong_url}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientPayloadError):  # its text is a nested repr, for developers
        return "the answer was cut short"
    cause: Any = getattr(exc, "os_error", None) or exc
    # TLS errors carry errno 1, which strerror reads as "Operation not permitted".
    if isinstance(cause, ssl.SSLCertVerificationError):
        return (
            f"its TLS certificate is not trusted: {cause.verify_message}; "
            "SSL_CERT_FILE=CA.pem makes myyoutube trust the CA that signed it"
        )
    if isinstance(cause, ssl.SSLError):
        if cause.reason == "WRONG_VERSION_NUMBER":
            return "it does not speak TLS; is its URL http:// rather than https://?"
        return f"TLS failed: {cause.reason or cause}"
    if isinstance(getattr(cause, "errno", None), int) and cause.errno > 0:
        return os.strerror(cause.errno)  # "Connection refused", not asyncio's wording
    return getattr(cause, "strerror", None) or str(cause) or type(cause).__name__


@asynccontextmanager
async def connect(url: str, token: str = "") -> AsyncIterator[Api]:
    """An Api on a fresh client session with the client's timeouts, signed in with
    `token` if one is given."""
    timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S, sock_read=READ_IDLE_TIMEOUT_S)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
        yield Api(url, session)
