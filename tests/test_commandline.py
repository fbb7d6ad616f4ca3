"""The `myyoutube` command-line client, run as a real process against a real cluster."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import aiohttp
import pytest

from videos import make_mp4

# A few MB makes a resumed download fetch many chunks, yet keeps each transfer quick.
PADDED_VIDEO_BYTES = 3 * 1024 * 1024


def commandline(
    *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "myyoutube.commandline", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    """The bytes of one short real H.264 MP4, encoded once for the module."""
    return make_mp4(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=1.0).read_bytes()


def write_video(folder: Path, name: str, clip: bytes, pad: int = 0) -> Path:
    """A valid MP4 of the clip plus a top-level `free` box of `pad` random bytes, so every
    file has its own content and the size the test wants."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(clip + (8 + pad).to_bytes(4, "big") + b"free" + os.urandom(pad))
    return path


def unique(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:10]}.mp4"


def upload(cluster, *paths: Path) -> subprocess.CompletedProcess:
    return commandline("upload", *map(str, paths), "--url", cluster.url)


def bytes_out(cluster) -> int:
    with urllib.request.urlopen(cluster.url + "/api/status", timeout=10) as response:
        return json.load(response)["counters"]["bytes_out"]


def test_upload_two_files_then_list_and_search_show_them(cluster, clip, tmp_path):
    """Two files upload in one command, each reported with its sha256, and list and search show both."""
    tag = uuid.uuid4().hex[:10]
    first = write_video(tmp_path, f"first-{tag}.mp4", clip)
    second = write_video(tmp_path, f"second {tag}.mp4", clip, pad=1000)
    result = upload(cluster, first, second)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # stderr is not a terminal: no progress bar
    for path in (first, second):
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        assert f"uploaded {path.name} (" in result.stdout and f"sha256 {sha})" in result.stdout

    listed = commandline("list", "--url", cluster.url)
    assert listed.returncode == 0 and first.name in listed.stdout and second.name in listed.stdout
    found = commandline("search", tag, "--url", cluster.url)
    lines = found.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "SIZE", "UPLOADED"] and len(lines) == 3
    assert lines[1].startswith(second.name)  # newest first
    as_json = json.loads(commandline("search", tag, "--json", "--url", cluster.url).stdout)
    assert {v["name"] for v in as_json["videos"]} == {first.name, second.name}
    nothing = commandline("search", f"no-such-{tag}", "--url", cluster.url)
    assert nothing.returncode == 0 and nothing.stdout == "No videos.\n"


async def test_taken_name_fails_with_the_409_sentence_and_the_next_file_uploads(
    cluster, clip, tmp_path, http
):
    """A name already taken prints the server's 409 sentence, exits 1, and the next file still uploads."""
    name = unique("taken")
    original = write_video(tmp_path / "a", name, clip)
    assert upload(cluster, original).returncode == 0
    form = aiohttp.FormData()
    form.add_field("file", clip, filename=name, content_type="video/mp4")
    async with http.post(cluster.url + "/upload", data=form) as response:
        assert response.status == 409
        sentence = (await response.json())["error"]

    again = write_video(tmp_path / "b", name, clip, pad=2 * 1024 * 1024)
    other = write_video(tmp_path / "b", unique("other"), clip)
    result = upload(cluster, again, other)
    assert result.returncode == 1
    assert result.stderr == f"myyoutube: error: {name}: {sentence}\n"
    assert result.stdout.startswith(f"uploaded {other.name} (")
    kept = commandline("download", name, "-o", str(tmp_path / "kept.mp4"), "--url", cluster.url)
    assert kept.returncode == 0 and (tmp_path / "kept.mp4").read_bytes() == original.read_bytes()


def test_download_is_byte_identical(cluster, clip, tmp_path):
    """A download into the current directory, with a forced progress bar, is byte-identical to the upload."""
    source = write_video(tmp_path / "src", unique("whole"), clip, pad=PADDED_VIDEO_BYTES)
    assert upload(cluster, source).returncode == 0
    out = tmp_path / "out"
    out.mkdir()
    result = commandline("download", source.name, "--progress", "--url", cluster.url, cwd=out)
    assert result.returncode == 0, result.stderr
    assert "100%" in result.stderr  # tqdm's bar, asked for with --progress
    assert (out / source.name).read_bytes() == source.read_bytes()
    assert sorted(p.name for p in out.iterdir()) == [source.name]  # no sidecar left behind


def test_download_resumes_a_partial_file_fetching_only_the_rest(cluster, clip, tmp_path):
    """A partial output file is completed with a Range request that reads only the missing bytes."""
    source = write_video(tmp_path, unique("resume"), clip, pad=PADDED_VIDEO_BYTES)
    assert upload(cluster, source).returncode == 0
    data = source.read_bytes()
    have = len(data) // 3
    output = tmp_path / "partial.mp4"
    output.write_bytes(data[:have])
    before = bytes_out(cluster)

    result = commandline("download", source.name, "-o", str(output), "--url", cluster.url)
    assert result.returncode == 0, result.stderr
    assert f"resuming {source.name} at {have} of {len(data)} bytes" in result.stdout
    assert output.read_bytes() == data
    assert bytes_out(cluster) - before == len(data) - have

    done = commandline("download", source.name, "-o", str(output), "--url", cluster.url)
    assert done.returncode == 0 and "already complete" in done.stdout


def test_partial_file_from_other_bytes_is_reported_as_a_mismatch(cluster, clip, tmp_path):
    """A partial file that is not a prefix of the video fails the final sha256 check with exit 1."""
    source = write_video(tmp_path, unique("mismatch"), clip, pad=100_000)
    assert upload(cluster, source).returncode == 0
    output = tmp_path / "wrong.mp4"
    output.write_bytes(os.urandom(5000))
    result = commandline("download", source.name, "-o", str(output), "--url", cluster.url)
    assert result.returncode == 1
    assert result.stderr.startswith(f"myyoutube: error: {output} does not match the video")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_partial_file_of_a_changed_video_starts_over(cluster, clip, tmp_path):
    """When the ETag a partial file was started under no longer matches, If-Range makes the download restart."""
    source = write_video(tmp_path, unique("changed"), clip, pad=100_000)
    assert upload(cluster, source).returncode == 0
    output = tmp_path / "old.mp4"
    output.write_bytes(os.urandom(5000))
    Path(f"{output}.part-etag").write_text('"' + "0" * 64 + '"')
    result = commandline("download", source.name, "-o", str(output), "--url", cluster.url)
    assert result.returncode == 0, result.stderr
    assert "starting over" in result.stdout
    assert output.read_bytes() == source.read_bytes()
    assert not Path(f"{output}.part-etag").exists()


def test_delete_then_download_fails(cluster, clip, tmp_path):
    """After delete, download and a second delete exit 1 with one error line and write no file."""
    source = write_video(tmp_path / "src", unique("gone"), clip)
    assert upload(cluster, source).returncode == 0
    deleted = commandline("delete", source.name, "--url", cluster.url)
    assert deleted.returncode == 0 and deleted.stdout == f"deleted {source.name}\n"

    for args in (("download", source.name), ("delete", source.name)):
        result = commandline(*args, "--url", cluster.url, cwd=tmp_path)
        assert result.returncode == 1
        assert result.stderr.startswith("myyoutube: error: ") and source.name in result.stderr
        assert result.stderr.count("\n") == 1
    assert not (tmp_path / source.name).exists()


def test_status_shows_three_alive_datanodes(cluster):
    """status lists every datanode as alive, with totals and an empty under-replicated list."""
    result = commandline("status", "--url", cluster.url)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    alive = [row for row in rows if len(row) > 1 and row[1] == "alive"]
    assert sorted(row[0] for row in alive) == sorted(node.address for node in cluster.datanodes)
    assert "replication: 3" in result.stdout and "under-replicated: none" in result.stdout
    report = json.loads(commandline("status", "--json", "--url", cluster.url).stdout)
    assert [node["state"] for node in report["datanodes"]] == ["alive"] * 3


def test_admin_purge_orphans_on_a_consistent_cluster_purges_nothing(cluster):
    """`admin purge-orphans` reaches the master and, with every blob known, deletes none."""
    result = commandline("admin", "purge-orphans", "--url", cluster.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("purged 0 orphaned blobs")


def test_unreachable_url_is_one_line_without_traceback(clip, tmp_path):
    """With nothing listening (URL from MYYOUTUBE_URL), every command prints one error line and exits 1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    env = {**os.environ, "MYYOUTUBE_URL": dead}
    files = [write_video(tmp_path, name, clip) for name in ("a.mp4", "b.mp4")]
    for args in (("list",), ("upload", *map(str, files)), ("download", "x.mp4")):
        result = commandline(*args, env=env, cwd=tmp_path)
        assert result.returncode == 1
        assert result.stderr.startswith(f"myyoutube: error: cannot reach MyYoutube at {dead} (")
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [(), ("download",), ("list", "--url", "ftp://x")])
def test_bad_usage_exits_2(args):
    """Missing commands or arguments and a malformed --url are usage errors (exit 2)."""
    result = commandline(*args)
    assert result.returncode == 2 and "usage: myyoutube" in result.stderr
