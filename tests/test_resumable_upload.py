"""`myyoutube upload` over tus (resumable_upload.py) when the web front end goes away in
the middle: a real cluster whose web process is stopped and started again, and the
command as a user runs it, in its own process."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time

from harness import free_box_header, tiny_mp4

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
