"""`myyoutube admin backup FILE` (backups.py): a FILE that cannot be written, a server
that is not MyYoutube.

The command runs in this process: against a URL where nothing listens for what it must
refuse before asking the server, against a real cluster for a disk that fills up during
the download, against Python's static file server for another server at --url. The
backup itself, saved and restored, is tested in test_recovery.py.
"""

from __future__ import annotations

import os
import socket
import stat

import pytest

from harness import serving_files, web_server_in_thread
from myyoutube import commandline


@pytest.fixture
def nothing_listening() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_a_folder_as_the_backup_file_is_refused_first(tmp_path, capsys, nothing_listening, force):
    """`admin backup FOLDER` says FOLDER is a folder, with or without --force, before any
    download (it used to advise --force, which then downloaded the whole index and failed
    with "[Errno 21] Is a directory: 'FOLDER.part' -> 'FOLDER'"); the folder is untouched."""
    folder = tmp_path / "backups"
    folder.mkdir()
    (folder / "older.sqlite3").write_bytes(b"kept")
    with pytest.raises(SystemExit) as exit_status:
        commandline.main(["admin", "backup", str(folder), *force, "--url", nothing_listening])
    assert exit_status.value.code == 1
    assert capsys.readouterr().err == (
        f"myyoutube: error: {folder} is a folder; name the file to save the backup in\n"
    )
    assert [path.name for path in folder.iterdir()] == ["older.sqlite3"]


@pytest.mark.parametrize("target", ["-", "FIFO"])
def test_standard_output_or_a_fifo_is_refused_before_any_download(
    tmp_path, capsys, nothing_listening, target
):
    """`admin backup -` wrote a file named "-" (and advised `--restore -`); a FIFO or a
    device given --force was replaced by the backup. Both are refused in a line first."""
    if target == "FIFO":
        target = str(tmp_path / "pipe")
        os.mkfifo(target)
    with pytest.raises(SystemExit) as exit_status:
        commandline.main(["admin", "backup", target, "--force", "--url", nothing_listening])
    assert exit_status.value.code == 1
    said = capsys.readouterr().err
    assert said.startswith("myyoutube: error: ") and "name " in said and said.count("\n") == 1, said
    assert not (tmp_path / "-").exists() and not os.path.exists("-")


def test_a_backup_into_a_missing_folder_names_the_file_asked_for(tmp_path, capsys, nothing_listening):
    """`admin backup missing/index.sqlite3` says it cannot save the backup to that path,
    before any download; it used to name 'missing/index.sqlite3.part', a file the
    operator never asked for."""
    target = tmp_path / "missing" / "index.sqlite3"
    with pytest.raises(SystemExit) as exit_status:
        commandline.main(["admin", "backup", str(target), "--url", nothing_listening])
    assert exit_status.value.code == 1
    assert capsys.readouterr().err == (
        f"myyoutube: error: cannot save the backup to {target}: No such file or directory\n"
    )


def test_a_full_disk_is_one_line_naming_the_backup_and_leaves_nothing(cluster, tmp_path, capsys, monkeypatch):
    """When the disk fills up during the download (FILE.part here leads to /dev/full, where
    every write fails with ENOSPC) the line names FILE and the reason (it used to be a bare
    "[Errno 28] No space left on device"), and neither FILE nor FILE.part is left."""
    monkeypatch.setenv("MYYOUTUBE_TOKEN", cluster.admin_token)
    target = tmp_path / "index.sqlite3"
    (tmp_path / "index.sqlite3.part").symlink_to("/dev/full")
    with pytest.raises(SystemExit) as exit_status:
        commandline.main(["admin", "backup", str(target), "--url", cluster.url])
    assert exit_status.value.code == 1
    assert capsys.readouterr().err == (
        f"myyoutube: error: cannot save the backup to {target}: No space left on device\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_the_backup_is_readable_by_its_owner_only(cluster, tmp_path, capsys, monkeypatch):
    """Under the usual umask 022 the saved backup is 0600, also over a leftover FILE.part
    that others could read: it holds every account's password hash and sessions (it used
    to be saved 0644, readable by every user of the machine)."""
    monkeypatch.setenv("MYYOUTUBE_TOKEN", cluster.admin_token)
    target = tmp_path / "index.sqlite3"
    leftover = tmp_path / "index.sqlite3.part"
    leftover.write_bytes(b"an interrupted download")
    leftover.chmod(0o644)
    usual = os.umask(0o022)
    try:
        with pytest.raises(SystemExit) as exit_status:
            commandline.main(["admin", "backup", str(target), "--url", cluster.url])
    finally:
        os.umask(usual)
    said = capsys.readouterr().out
    assert exit_status.value.code == 0 and "saved the index" in said
    assert f"`myyoutube-cluster --restore {target}`" in said  # the one-command start restores it too
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert list(tmp_path.iterdir()) == [target]


def test_a_backup_from_a_server_that_is_not_myyoutube_is_not_called_damaged(tmp_path, capsys, monkeypatch):
    """A plain web server at --url that serves something at /api/admin/backup: one line
    saying what it sent and asking whether it is MyYoutube (it used to say "the backup
    arrived damaged ... try again", which no retry fixes), and nothing is saved."""
    site = tmp_path / "site"
    (site / "api" / "admin").mkdir(parents=True)
    (site / "api" / "admin" / "backup").write_text("<html>Welcome to nginx!</html>")
    target = tmp_path / "index.sqlite3"
    with web_server_in_thread(serving_files(site)) as url, pytest.raises(SystemExit) as exit_status:
        commandline.main(["admin", "backup", str(target), "--url", url])
    assert exit_status.value.code == 1
    assert capsys.readouterr().err == (
        f"myyoutube: error: {url} sent application/octet-stream, not the index MyYoutube sends "
        "(application/vnd.sqlite3); is it MyYoutube? Nothing was saved\n"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["site"]
