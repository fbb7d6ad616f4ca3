"""What the `myyoutube` client (webclient.py) makes of answers from a server that is not
MyYoutube (a wrong --url that reaches some other web API answering JSON objects), and of
a token that cannot be sent.

A real HTTP server in a thread of this process answers `{}` with 200 to every request;
the commands run in this process (commandline.main), as a user would type them.
"""

from __future__ import annotations

import http.server
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
