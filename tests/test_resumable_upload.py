"""`myyoutube upload` over tus (resumable_upload.py): when the web front end goes away in
the middle (a real cluster whose web process is stopped and started again, and the
command as a user runs it, in its own process), and the state file of unfinished uploads
that several commands share."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from harness import free_box_header, tiny_mp4, web_server_in_thread
from myyoutube import commandline, resumable_upload
from myyoutube.upload_state import MAX_REMEMBERED_UPLOADS, UploadState, file_key, file_of

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


def test_uploads_running_at_once_keep_each_others_unfinished_uploads(tmp_path, capsys):
    """Several `myyoutube upload` commands at once share the state file of unfinished
    uploads: every upload each of them records is still there to resume, and none warns
    that it cannot keep track. (Each rewrote the file from what it had read, dropping the
    others' entries, and they all wrote through one temporary name, so most failed.)
    Threads stand in for the processes: each put opens the lock file anew, as a process does."""
    state = UploadState(tmp_path / "uploads.json")
    per_writer = 60

    def record(writer: int) -> None:
        for n in range(per_writer):
            state.put(f"file-{writer}-{n}", f"http://web/files/{writer}-{n}")

    writers = [threading.Thread(target=record, args=(w,)) for w in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert capsys.readouterr().err == ""
    kept = json.loads((tmp_path / "uploads.json").read_text())
    assert len(kept) == 4 * per_writer
    assert state.get("file-3-59") == "http://web/files/3-59"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["uploads.json", "uploads.json.lock"]


def test_the_state_of_unfinished_uploads_keeps_the_newest(tmp_path):
    """The state file stays bounded: past MAX_REMEMBERED_UPLOADS entries the oldest go
    (the server forgets an unfinished upload after a day anyway), and an entry that is
    recorded again counts as new; a finished upload's entry is removed."""
    state = UploadState(tmp_path / "uploads.json")
    for n in range(MAX_REMEMBERED_UPLOADS + 5):
        state.put(f"file-{n}", f"url-{n}")
        if n == 10:
            state.put("file-0", "url-0 again")
    kept = json.loads((tmp_path / "uploads.json").read_text())
    assert len(kept) == MAX_REMEMBERED_UPLOADS
    assert [state.get(f"file-{n}") for n in range(7)] == [
        "url-0 again",
        None,
        None,
        None,
        None,
        None,
        "url-6",
    ]
    state.put("file-6", None)
    assert state.get("file-6") is None


class RefusesEveryPiece(http.server.BaseHTTPRequestHandler):
    """A tus front end whose cluster cannot store anything just now: the upload is
    created, every PATCH is 503 with MyYoutube's sentence, HEAD says offset 0."""

    SENTENCE = (
        "Only 1 datanode is running and 2 are needed to store a video safely; try again once more are up."
    )

    def do_POST(self) -> None:
        self.send_response(201)
        self.send_header("Location", "/files/refused")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_PATCH(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"error": self.SENTENCE}).encode()
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Upload-Offset", "0")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


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


def test_earlier_versions_are_of_the_same_file_and_video_name_only(tmp_path):
    """The uploads a changed file cancels are those of its own earlier versions under the
    same video name: not those of a file whose path only starts like its own ("clip" and
    "clip|2024.mp4"), which a prefix test took for its own, nor one sent under another
    --name."""
    state = UploadState(tmp_path / "uploads.json")
    clip, longer = tmp_path / "clip", tmp_path / "clip|2024.mp4"
    for path in (clip, longer):
        path.write_bytes(b"v1")
    server = "http://127.0.0.1:9"
    state.put(file_key(longer, server), "/files/longer")
    state.put(file_key(clip, server, name="other.mp4"), "/files/named")
    state.put(file_key(clip, server), "/files/old")
    clip.write_bytes(b"version 2")
    earlier = state.earlier_versions(file_key(clip, server), file_of(clip, server))
    assert [url for _, url in earlier] == ["/files/old"]
