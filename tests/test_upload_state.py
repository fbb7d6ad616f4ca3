"""Tests for myyoutube.upload_state: the state file of unfinished uploads that several
`myyoutube upload` commands share (real files in a temporary folder, threads standing in
for processes), and which uploads count as a changed file's earlier versions."""

from __future__ import annotations

import json
import threading

from myyoutube.upload_state import MAX_REMEMBERED_UPLOADS, UploadState, file_key, file_of


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
