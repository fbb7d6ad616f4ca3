"""What the `myyoutube` client (webclient.py) makes of answers from a server that is not
MyYoutube (a wrong --url that reaches some other web API answering JSON objects), and of
a token that cannot be sent.

A real HTTP server in a thread of this process answers `{}` with 200 to every request;
the commands run in this process (commandline.main), as a user would type them.
"""

from __future__ import annotations

import http.server
import json
from collections.abc import Iterator

import pytest

from harness import web_server_in_thread
from myyoutube import commandline


class AnswersEmptyObjects(http.server.BaseHTTPRequestHandler):
    """200 and `{}` to every method, as many a JSON API answers requests it ignores."""

    def answer(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def json_api() -> Iterator[str]:
    with web_server_in_thread(AnswersEmptyObjects) as url:
        yield url


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["delete", "cat.mp4"], "deleted"),
        (["edit", "cat.mp4", "--title", "Cat"], "name"),
        (["status"], "datanodes"),
        (["admin", "purge-orphans"], "purged"),
        (["user", "list"], "users"),
        (["login", "--username", "admin", "--password-file", "PASSWORD"], "token"),
    ],
)
def test_an_answer_without_what_myyoutube_says_is_one_line_not_success(
    json_api, tmp_path, capsys, monkeypatch, args, key
):
    """`{}` from another server is not taken for MyYoutube's answer: each command exits 1
    with one line naming the URL. Before, delete said "deleted cat.mp4" and edit "edited",
    status printed an empty cluster, and purge-orphans and login ended in a KeyError
    traceback; login saved no token either way."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "PASSWORD").write_text("a password\n")
    args = [str(tmp_path / arg) if arg == "PASSWORD" else arg for arg in args]
    with pytest.raises(SystemExit) as exit_status:
        commandline.main([*args, "--url", json_api])
    assert exit_status.value.code == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"myyoutube: error: {json_api} did not answer as MyYoutube does (no {key!r}); is it MyYoutube?\n"
    )
    assert not (tmp_path / "myyoutube" / "token").exists()


class AnswersOddShapes(http.server.BaseHTTPRequestHandler):
    """200 and a JSON object holding every key MyYoutube's answers have, of other shapes."""

    BODY = json.dumps({"videos": ["a", "b"], "next": None, "token": 5, "user": "x", "users": ["x"]}).encode()

    def answer(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.BODY)))
        self.end_headers()
        self.wfile.write(self.BODY)

    do_GET = do_POST = answer

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["list"], "its 'videos' are not records"),
        (["search", "cat"], "its 'videos' are not records"),
        (["user", "list"], "its 'users' are not records"),
        (["login", "--username", "admin", "--password-file", "PASSWORD"], "its 'token' is not one"),
    ],
)
def test_an_answer_of_another_shape_is_one_line_not_a_traceback(tmp_path, capsys, monkeypatch, args, what):
    """Keys of MyYoutube's answers holding something else (a list of strings, a number
    for a token) ended list, search and login in an AttributeError traceback, and login
    saved the number as the server's token. Each is now one line naming the URL."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("MYYOUTUBE_TOKEN", "")
    (tmp_path / "PASSWORD").write_text("a password\n")
    args = [str(tmp_path / arg) if arg == "PASSWORD" else arg for arg in args]
    with web_server_in_thread(AnswersOddShapes) as url, pytest.raises(SystemExit) as exit_status:
        commandline.main([*args, "--url", url])
    assert exit_status.value.code == 1
    out, err = capsys.readouterr()
    assert (out, err) == (
        "",
        f"myyoutube: error: {url} did not answer as MyYoutube does ({what}); is it MyYoutube?\n",
    )
    assert not (tmp_path / "myyoutube" / "token").exists()


def test_a_token_with_a_line_break_inside_is_one_line(json_api, tmp_path, capsys, monkeypatch):
    """$MYYOUTUBE_TOKEN pasted with a line break inside used to end in aiohttp's "Forbidden
    control character detected in headers" traceback; it is now one line saying where the
    bad token came from."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("MYYOUTUBE_TOKEN", "0123abcd\n4567ef")
    with pytest.raises(SystemExit) as exit_status:
        commandline.main(["list", "--url", json_api])
    assert exit_status.value.code == 1
    assert capsys.readouterr().err == (
        "myyoutube: error: $MYYOUTUBE_TOKEN holds no usable token (it has control or non-ASCII "
        "characters); sign in again with `myyoutube login`\n"
    )


class RemembersTokens(http.server.BaseHTTPRequestHandler):
    """A front end as the command line sees it: login issues a token naming this server,
    logout says so, a listing is empty; every request's Authorization header is kept in
    the class's `seen` (one list per server, set by `_recording_server`)."""

    seen: list[str]

    def answer(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        port = self.server.server_address[1]
        if self.path == "/api/login":
            body = {"token": f"token-of-{port}", "user": {"name": "admin"}}
        elif self.path == "/api/logout":
            body = {"signed_out": True}
        else:
            body = {"videos": [], "next": None}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = answer

    def log_message(self, *args) -> None:
        pass


def _recording_server(seen: list[str]):
    return type("Recording", (RemembersTokens,), {"seen": seen})


def test_a_saved_token_goes_only_to_the_front_end_that_issued_it(tmp_path, capsys, monkeypatch):
    """Signed in to one cluster, a command with another --url sent that cluster's token
    there (where `list`, allowed anonymously, then failed with "The token is not valid any
    more"), and signing in to the second cluster signed the first out. Each front end now
    gets its own token and no other's; logging out of one keeps the other's."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("MYYOUTUBE_TOKEN", raising=False)
    (tmp_path / "PASSWORD").write_text("a password\n")
    seen_a: list[str] = []
    seen_b: list[str] = []

    def run(*args: str) -> None:
        with pytest.raises(SystemExit) as exit_status:
            commandline.main(list(args))
        assert exit_status.value.code == 0, capsys.readouterr().err

    with (
        web_server_in_thread(_recording_server(seen_a)) as a,
        web_server_in_thread(_recording_server(seen_b)) as b,
    ):
        token_a, token_b = f"Bearer token-of-{a.rsplit(':', 1)[1]}", f"Bearer token-of-{b.rsplit(':', 1)[1]}"
        run("login", "--username", "admin", "--password-file", str(tmp_path / "PASSWORD"), "--url", a)
        run("list", "--url", b)
        assert seen_b == [""]
        run("login", "--username", "admin", "--password-file", str(tmp_path / "PASSWORD"), "--url", b)
        run("list", "--url", a.upper().replace("HTTP://", "http://") + "/")
        run("list", "--url", b)
        assert seen_a[-1] == token_a and seen_b[-1] == token_b
        run("logout", "--url", b)
        run("list", "--url", b)
        run("list", "--url", a)
        assert seen_b[-1] == "" and seen_a[-1] == token_a


def test_a_token_saved_by_an_earlier_release_is_sent_nowhere(tmp_path, capsys, monkeypatch):
    """A token file holding one bare token (saved before tokens were kept per front end)
    was sent to whatever --url a command named, until the next login; its server is
    unknown, so it now goes to none: a command says in one line to sign in again, and
    the login (the one command that runs) replaces the file with the new token."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("MYYOUTUBE_TOKEN", raising=False)
    (tmp_path / "myyoutube").mkdir()
    (tmp_path / "myyoutube" / "token").write_text("an-old-token\n")
    (tmp_path / "PASSWORD").write_text("a password\n")
    seen: list[str] = []

    def run(*args: str) -> int:
        with pytest.raises(SystemExit) as exit_status:
            commandline.main(list(args))
        return exit_status.value.code

    with web_server_in_thread(_recording_server(seen)) as url:
        assert run("list", "--url", url) == 1
        assert capsys.readouterr().err == (
            f"myyoutube: error: {tmp_path / 'myyoutube' / 'token'} holds a token saved by an earlier "
            "release, which does not say which server issued it, so it is sent to none; sign in "
            "again with `myyoutube login` (which replaces it)\n"
        )
        assert seen == []  # not even asked
        assert (
            run("login", "--username", "admin", "--password-file", str(tmp_path / "PASSWORD"), "--url", url)
            == 0
        )
        assert "an-old-token" not in seen
        assert run("list", "--url", url) == 0
    assert seen[-1] == f"Bearer token-of-{url.rsplit(':', 1)[1]}"
    assert "an-old-token" not in (tmp_path / "myyoutube" / "token").read_text()


def test_logout_removes_a_token_saved_by_an_earlier_release(tmp_path, capsys, monkeypatch):
    """`myyoutube logout` with an earlier release's bare token refused to run, like every
    command but login, telling the user to sign in first. It now removes that token,
    without sending it anywhere, and says so."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("MYYOUTUBE_TOKEN", raising=False)
    token_file = tmp_path / "myyoutube" / "token"
    token_file.parent.mkdir()
    token_file.write_text("an-old-token\n")
    seen: list[str] = []
    with web_server_in_thread(_recording_server(seen)) as url:
        with pytest.raises(SystemExit) as exit_status:
            commandline.main(["logout", "--url", url])
        err = capsys.readouterr().err
        assert exit_status.value.code == 0, err
        assert f"removed the token an earlier release saved in {token_file}" in err
        assert "an-old-token" not in "".join(seen)
    assert not token_file.exists()


class HangsUpWithoutAnswer(http.server.BaseHTTPRequestHandler):
    """Closes every connection without an answer, as an https front end does with a plain
    http request (the bytes are no TLS handshake)."""

    def do_GET(self) -> None:
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


def test_a_server_that_hangs_up_on_http_suggests_https(tmp_path, capsys, monkeypatch):
    """`--url http://...` for a front end serving HTTPS said only "failed (Server
    disconnected)"; it now says that an https:// URL may be the one meant."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("MYYOUTUBE_TOKEN", "")
    with web_server_in_thread(HangsUpWithoutAnswer) as url, pytest.raises(SystemExit) as exit_status:
        commandline.main(["list", "--url", url])
    assert exit_status.value.code == 1
    assert capsys.readouterr().err == (
        f"myyoutube: error: the connection to MyYoutube at {url} failed (Server disconnected; "
        "if it serves HTTPS, its URL starts with https://)\n"
    )
