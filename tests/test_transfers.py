"""myyoutube.transfers: pure tests of plan_download, what a download does with what it
finds on disk (no server, only files in a temporary folder); and what it makes of a server
that is not MyYoutube, or that goes away mid-answer (web servers in a thread of this
process)."""

from __future__ import annotations

import http.server
import os
import time

import pytest

from harness import serving_files, web_server_in_thread
from myyoutube import commandline
from myyoutube.transfers import DownloadPlan, part_paths, plan_download, read_plan
from myyoutube.webclient import ToolError

ETAG = '"' + "a" * 64 + '"'


def test_nothing_on_disk_starts_at_byte_zero(tmp_path):
    """No FILE and no .part: fetch the whole video."""
    assert plan_download(tmp_path / "v.mp4", None, None, force=False) == DownloadPlan(0)


def test_own_part_with_etag_resumes_with_if_range(tmp_path):
    """Our .part (sidecar holds the ETag) resumes after its last byte, only if the video is unchanged."""
    plan = plan_download(tmp_path / "v.mp4", 1234, ETAG + "\n", force=False)
    assert plan == DownloadPlan(1234, {"Range": "bytes=1234-", "If-Range": ETAG})


@pytest.mark.parametrize(("part_size", "note"), [(0, ETAG), (500, ""), (500, "  \n")])
def test_own_part_that_cannot_resume_starts_over(tmp_path, part_size, note):
    """An empty .part, or one saved from a server that sent no ETag, starts over."""
    assert plan_download(tmp_path / "v.mp4", part_size, note, force=False) == DownloadPlan(0)


def test_existing_file_is_refused_unless_forced(tmp_path):
    """An existing FILE is never overwritten without --force; with it the plan is unchanged."""
    output = tmp_path / "v.mp4"
    output.write_bytes(b"mine")
    with pytest.raises(ToolError, match=r"v\.mp4 already exists; use --force"):
        plan_download(output, None, None, force=False)
    assert plan_download(output, 10, ETAG, force=True) == DownloadPlan(
        10, {"Range": "bytes=10-", "If-Range": ETAG}
    )


def test_what_is_not_a_regular_file_is_never_replaced(tmp_path):
    """A FIFO (or a device: /dev/null) at FILE is refused even with --force, which used
    to replace it with the video; a .part that is a folder is named as in the way."""
    fifo = tmp_path / "v.mp4"
    os.mkfifo(fifo)
    for force in (False, True):
        with pytest.raises(ToolError, match=r"v\.mp4 is not a regular file; save the video elsewhere"):
            plan_download(fifo, None, None, force=force)
    output = tmp_path / "w.mp4"
    part_paths(output)[0].mkdir()
    with pytest.raises(ToolError, match=r"w\.mp4\.part is in the way and is not a file"):
        read_plan(output, force=True)


@pytest.mark.parametrize("command", ["download", "delete", "edit"])
@pytest.mark.parametrize("name", ["", ".", "..", " ", "a/b.mp4"])
def test_a_name_no_video_can_have_is_a_usage_error(capsys, command, name):
    """`download ""` or `download .` ended in a traceback (the folder itself as the file
    to save), `delete ""` said "There is nothing at this address": such a name is a usage
    error (exit 2) saying why, before anything is asked or saved."""
    with pytest.raises(SystemExit) as exit_status:
        commandline.main([command, name, "--url", "http://127.0.0.1:9"])
    assert exit_status.value.code == 2
    assert f"no video can be named {name!r}" in capsys.readouterr().err


def test_foreign_part_is_refused_unless_forced(tmp_path):
    """A .part without our sidecar is someone else's: refused, and with --force overwritten, never appended to."""
    output = tmp_path / "v.mp4"
    with pytest.raises(ToolError, match=r"v\.mp4\.part exists but was not started by myyoutube"):
        plan_download(output, 500, None, force=False)
    assert plan_download(output, 500, None, force=True) == DownloadPlan(0)


def test_part_paths_sit_beside_the_output(tmp_path):
    """FILE.part and FILE.part.etag live in FILE's folder."""
    part, sidecar = part_paths(tmp_path / "a b.mp4")
    assert (part.parent, part.name, sidecar.name) == (tmp_path, "a b.mp4.part", "a b.mp4.part.etag")


def test_a_file_from_a_server_that_is_not_myyoutube_is_not_saved(tmp_path, capsys):
    """`myyoutube download cat.mp4` against a plain web server (a wrong --url, or another
    service on the default port) that happens to serve /original/cat.mp4 without the
    sha256 ETag: one line, exit 1, nothing written. It used to save whatever came (a web
    page, an error document) as cat.mp4 and say "downloaded", with nothing to check it by."""
    site = tmp_path / "site"
    (site / "original").mkdir(parents=True)
    (site / "original" / "cat.mp4").write_text("<html>Welcome to nginx!</html>")
    out = tmp_path / "out"
    out.mkdir()
    with web_server_in_thread(serving_files(site)) as url, pytest.raises(SystemExit) as exit_status:
        commandline.main(["download", "cat.mp4", "-o", str(out / "cat.mp4"), "--url", url])
    assert exit_status.value.code == 1
    assert capsys.readouterr().err == (
        f"myyoutube: error: {url} sent cat.mp4 without the sha256 ETag MyYoutube sends with every "
        "video; is it MyYoutube? Nothing was saved\n"
    )
    assert list(out.iterdir()) == []


class CutShort(http.server.BaseHTTPRequestHandler):
    """Answers any GET as MyYoutube answers for a 1000-byte video (its sha256 ETag), sends
    300 bytes of it and closes the connection, as a web front end that dies mid-answer."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", "1000")
        self.send_header("ETag", '"' + "a" * 64 + '"')
        self.end_headers()
        self.wfile.write(b"x" * 300)
        self.wfile.flush()
        time.sleep(0.5)  # the client reads these bytes: a cut drops whatever it has not read
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


def test_a_download_cut_short_says_what_is_kept_and_how_to_resume(tmp_path, capsys):
    """When the server goes away mid-download the line says so in words, that the bytes
    received are kept and that the same command resumes (it used to end in aiohttp's
    "Response payload is not completed: <ContentLengthError: 400, message=...>" and said
    nothing of the .part)."""
    with web_server_in_thread(CutShort) as url, pytest.raises(SystemExit) as exit_status:
        commandline.main(["download", "cat.mp4", "-o", str(tmp_path / "cat.mp4"), "--url", url])
    assert exit_status.value.code == 1
    assert capsys.readouterr().err == (
        f"myyoutube: error: the connection to MyYoutube at {url} failed (the answer was cut short); "
        "the 300 bytes received are kept in cat.mp4.part, run the same command again to resume\n"
    )
    assert (tmp_path / "cat.mp4.part").read_bytes() == b"x" * 300
