"""`myyoutube upload` over tus (resumable_upload.py): when the web front end goes away in
the middle (a real cluster whose web process is stopped and started again, and the
command as a user runs it, in its own process), when the file changes under it, and what
it says when every piece is refused. The state file of unfinished uploads is
test_upload_state.py's."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from harness import free_box_header, tiny_mp4, web_server_in_thread
from myyoutube import commandline, resumable_upload

# Big enough that the upload is still sending when the web front end stops.
VIDEO_BYTES = 200 * 1024 * 1024


def test_an_upload_rides_out_a_restart_of_the_web_front_end(fresh_cluster, tmp_path):
    """The web front end stops while a file is being sent and is back two seconds later:
    the upload waits, asks where it stands and finishes (exit 0, the server's sha256 the
    file's). It used to give up at the first failed question with "the server no longer
    knows this upload", which was not so: asking had only failed while the web was down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cluster = fresh_cluster(datanodes=2, web_args=("--port", str(port)))
    video = tmp_path / "restarted.mp4"
    clip = tiny_mp4()
    padding = VIDEO_BYTES - len(clip) - 8
    with open(video, "wb") as file:
        file.write(clip + free_box_header(padding) + os.urandom(padding))
    state = tmp_path / "uploads.json"
    env = {**os.environ, "MYYOUTUBE_TOKEN": cluster.admin_token, "MYYOUTUBE_UPLOAD_STATE": str(state)}
    upload = subprocess.Popen(
        [sys.executable, "-m", "myyoutube.commandline", "upload", str(video), "--url", cluster.url],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        # The upload exists on the server once the command has noted its URL.
        while not state.exists() or not json.loads(state.read_text() or "{}"):
            assert upload.poll() is None, upload.communicate()
            time.sleep(0.01)
        cluster.web.stop()
        time.sleep(2)
        cluster.start_web()
        out, err = upload.communicate(timeout=120)
    finally:
        upload.kill()
    assert upload.returncode == 0, err
    sha256 = hashlib.sha256(video.read_bytes()).hexdigest()
    assert out.startswith(f"uploaded {video.name} (") and f"sha256 {sha256})" in out


def start_upload(cluster, video, state, *args: str) -> subprocess.Popen:
    """`myyoutube upload VIDEO` as a user runs it, in its own process; returns once the
    upload exists on the server (the command noted its URL in the `state` file)."""
    env = {**os.environ, "MYYOUTUBE_TOKEN": cluster.admin_token, "MYYOUTUBE_UPLOAD_STATE": str(state)}
    upload = subprocess.Popen(
        [sys.executable, "-m", "myyoutube.commandline", "upload", str(video), *args, "--url", cluster.url],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    while not state.exists() or not json.loads(state.read_text() or "{}"):
        assert upload.poll() is None, upload.communicate()
        time.sleep(0.01)
    return upload


def big_video(path, size: int) -> None:
    clip = tiny_mp4()
    padding = size - len(clip) - 8
    with open(path, "wb") as file:
        file.write(clip + free_box_header(padding) + os.urandom(padding))


def test_a_file_that_gets_shorter_while_it_is_sent_ends_the_upload_with_a_sentence(fresh_cluster, tmp_path):
    """A file cut short while `myyoutube upload` sends it can never complete its upload
    (the server waits for the size declared at the start). The command sent empty pieces
    forever; now it says the file got shorter (exit 1), cancels the upload on the server,
    so the name is free at once, and forgets it."""
    cluster = fresh_cluster(datanodes=2)
    video, state = tmp_path / "shrinks.mp4", tmp_path / "uploads.json"
    big_video(video, VIDEO_BYTES)
    upload = start_upload(cluster, video, state)
    try:
        os.truncate(video, 1_000_000)
        out, err = upload.communicate(timeout=60)
    finally:
        upload.kill()
    assert upload.returncode == 1 and out == "", (out, err)
    assert "got shorter while it was being uploaded" in err and len(err.splitlines()) == 1, err
    assert json.loads(state.read_text()) == {}
    big_video(video, 2_000_000)  # the file as it was meant to be: its name is free
    again = start_upload(cluster, video, state)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err


def test_a_file_changed_since_its_interrupted_upload_starts_afresh(fresh_cluster, tmp_path):
    """Interrupted (the command killed), then the file changed (its mtime: an editor
    saved it): running the command again cancels the old upload on the server and uploads
    the file as it is now. The old upload held the video's name for a day ("is being
    uploaded right now") and the account's quota, with no command to cancel it."""
    cluster = fresh_cluster(datanodes=2)
    video, state = tmp_path / "edited.mp4", tmp_path / "uploads.json"
    big_video(video, 64 * 1024 * 1024)
    start_upload(cluster, video, state).kill()
    os.utime(video, ns=(time.time_ns(), time.time_ns() + 10**9))
    env = {**os.environ, "MYYOUTUBE_TOKEN": cluster.admin_token, "MYYOUTUBE_UPLOAD_STATE": str(state)}
    again = subprocess.run(
        [sys.executable, "-m", "myyoutube.commandline", "upload", str(video), "--url", cluster.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert again.returncode == 0, again.stderr
    assert "the file changed since its interrupted upload; that upload was cancelled" in again.stderr
    assert f"sha256 {hashlib.sha256(video.read_bytes()).hexdigest()})" in again.stdout
    assert json.loads(state.read_text()) == {}


class TusStandIn(http.server.BaseHTTPRequestHandler):
    """A tus front end that creates every upload at LOCATION; what else it does is a
    subclass's. Quiet: no request log on standard error."""

    LOCATION = "/files/made"
    SENTENCE = ""

    def do_POST(self) -> None:
        self.send_response(201)
        self.send_header("Location", self.LOCATION)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def refuse(self, status: int) -> None:
        """Answer `status` with SENTENCE, in JSON as MyYoutube's front end does."""
        body = json.dumps({"error": self.SENTENCE}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class RefusesEveryPiece(TusStandIn):
    """A tus front end whose cluster cannot store anything just now: the upload is
    created, every PATCH is 503 with MyYoutube's sentence, HEAD says offset 0."""

    LOCATION = "/files/refused"
    SENTENCE = (
        "Only 1 datanode is running and 2 are needed to store a video safely; try again once more are up."
    )

    def do_PATCH(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.refuse(503)

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Upload-Offset", "0")
        self.send_header("Content-Length", "0")
        self.end_headers()


class ShrinksThenKeepsTheUpload(TusStandIn):
    """A tus front end that takes the first piece, during which the file is cut short
    (`shrink`), and then will not cancel the upload (403 with a sentence)."""

    LOCATION = "/files/kept"
    SENTENCE = "This upload was started by another account."
    shrink: Callable[[], None] = staticmethod(lambda: None)

    def do_PATCH(self) -> None:
        offset = int(self.headers["Upload-Offset"]) + len(
            self.rfile.read(int(self.headers["Content-Length"]))
        )
        type(self).shrink()
        self.send_response(204)
        self.send_header("Upload-Offset", str(offset))
        self.end_headers()

    def do_DELETE(self) -> None:
        self.refuse(403)


def test_a_file_cut_short_whose_upload_cannot_be_cancelled_says_so(tmp_path, capsys, monkeypatch):
    """When the server refuses to cancel the upload of a file that got shorter, the
    command said all the same that "the upload was cancelled and nothing was stored".
    It now says it could not be cancelled, and why, and keeps it in the state file, so
    that the next run cancels it (the file has changed: an earlier version's upload)."""
    state = tmp_path / "uploads.json"
    monkeypatch.setenv("MYYOUTUBE_UPLOAD_STATE", str(state))
    monkeypatch.delenv("MYYOUTUBE_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    video = tmp_path / "cut.mp4"
    big_video(video, 2 * resumable_upload.PATCH_BYTES)
    monkeypatch.setattr(ShrinksThenKeepsTheUpload, "shrink", staticmethod(lambda: os.truncate(video, 1000)))
    with web_server_in_thread(ShrinksThenKeepsTheUpload) as url, pytest.raises(SystemExit) as exit_status:
        commandline.main(["upload", str(video), "--url", url])
    assert exit_status.value.code == 1
    err = capsys.readouterr().err
    assert "got shorter while it was being uploaded" in err and len(err.splitlines()) == 1, err
    assert f"its upload could not be cancelled ({ShrinksThenKeepsTheUpload.SENTENCE})" in err
    assert "nothing was stored" not in err
    assert list(json.loads(state.read_text()).values()) == ["/files/kept"]


def test_an_upload_that_keeps_failing_says_what_the_server_said(tmp_path, capsys, monkeypatch):
    """When every retry of a piece is refused with 503 (a datanode down in a cluster of
    two), the command gave up after a minute saying only "the server answered 503"; the
    server's sentence, which says why, is now in that line."""
    monkeypatch.setattr(resumable_upload, "RETRY_DELAYS_S", (0.0, 0.0))
    monkeypatch.setenv("MYYOUTUBE_UPLOAD_STATE", str(tmp_path / "uploads.json"))
    monkeypatch.delenv("MYYOUTUBE_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    video = tmp_path / "clip.mp4"
    video.write_bytes(tiny_mp4())
    with web_server_in_thread(RefusesEveryPiece) as url, pytest.raises(SystemExit) as exit_status:
        commandline.main(["upload", str(video), "--url", url])
    assert exit_status.value.code == 1
    assert capsys.readouterr().err == (
        f"myyoutube: error: clip.mp4: the upload keeps failing (the server answered 503: "
        f"{RefusesEveryPiece.SENTENCE}); run the same command again to resume\n"
    )
