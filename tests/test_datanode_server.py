"""A datanode's request handling (datanode/server.py), with real processes and a real disk."""

from __future__ import annotations

import os
import subprocess

import pytest

from harness import mp4_bytes, wait_until


@pytest.fixture
def read_only(tmp_path):
    """Makes a folder read-only for everyone, root too (a read-only bind mount over
    itself, as a disk remounted read-only after errors is); undone at the end."""
    mounted = []

    def make(folder) -> None:
        for command in (
            ["mount", "--bind", str(folder), str(folder)],
            ["mount", "-o", "remount,ro,bind", str(folder)],
        ):
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                pytest.skip(f"cannot make a read-only mount here: {done.stderr.strip()}")
            if command[1] == "--bind":
                mounted.append(folder)

    yield make
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=True)


async def test_a_read_only_disk_is_one_log_line_and_the_upload_goes_on(fresh_cluster, read_only):
    """A datanode whose folder turned read-only answers a resumable upload's append with
    the reason (one WARNING line naming the folder), not a traceback ('Task exception was
    never retrieved') and a dropped link; the upload still completes on the others."""
    cluster = fresh_cluster()  # three datanodes: every upload has a replica on each
    broken = cluster.datanodes[0]
    read_only(cluster.folder(broken))
    client = cluster.client()
    data = mp4_bytes(os.urandom(50_000))
    session = await client.create_upload("read-only.mp4", len(data))
    upload = await client.append_upload(session["id"], 0)
    await upload.write(data)
    assert (await upload.finish())["offset"] == len(data)
    logs = sorted((cluster.root / "logs").glob("datanode-*.log"))
    broken_log = next(log for log in logs if f"as 127.0.0.1:{broken.port}" in log.read_text())
    await wait_until(lambda: "Read-only file system" in broken_log.read_text(), "the refusal logged", 5)
    text = broken_log.read_text()
    assert "Traceback" not in text and "never retrieved" not in text
    assert f"cannot use {cluster.folder(broken)}: Read-only file system" in text
    client.close()
