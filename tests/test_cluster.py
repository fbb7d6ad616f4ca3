"""`myyoutube-cluster`: one command starts the whole service, SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request

from harness import mp4_bytes, multipart


def start_cluster(data_dir) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from myyoutube.cluster import main; main()",
            "--data-dir",
            str(data_dir),
            "--web-port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    line = process.stdout.readline()
    assert line.startswith("MyYoutube at http://"), (
        line,
        process.stderr.read() if process.poll() is not None else "",
    )
    return process, line.split()[-1]


def post_video(url: str, name: str, data: bytes) -> int:
    body, content_type = multipart(name, data)
    request = urllib.request.Request(
        f"{url}/upload", data=body, method="POST", headers={"Content-Type": content_type}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def test_cluster_serves_survives_restart_and_stops_on_sigterm(tmp_path):
    """The cluster prints its URL, serves uploads, exits 0 on SIGTERM and keeps videos across runs."""
    data = mp4_bytes(os.urandom(10_000))
    process, url = start_cluster(tmp_path)
    try:
        assert post_video(url, "kept.mp4", data) == 201
        keys = [tmp_path / "certs" / name / "node.key" for name in ("master", "web", "datanode0")]
        assert all(key.stat().st_mode & 0o077 == 0 for key in [*keys, tmp_path / "certs" / "ca" / "ca.key"])
    finally:
        process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0

    process, url = start_cluster(tmp_path)
    try:
        with urllib.request.urlopen(f"{url}/stream/kept.mp4", timeout=30) as response:
            assert response.read() == data
    finally:
        process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0
