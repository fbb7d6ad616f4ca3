"""Which uploads `myyoutube upload` left unfinished: a small state file of their URLs.

Theory of operation
-------------------
An interrupted upload (Ctrl-C, a lost connection, a reboot) is resumed by running the
same command again: its URL on the server is kept in a JSON object (`state_path()`:
$MYYOUTUBE_UPLOAD_STATE, else $XDG_CACHE_HOME or ~/.cache, then myyoutube/uploads.json),
keyed by `file_key`: the server, the file's path, size and modification time, and the
video's name when it is not the file's own. A file that changed since has another key;
`UploadState.earlier_versions` finds the uploads of its earlier versions (keys that
start with `file_of` and name the same video), which resumable_upload.py cancels.

Several commands may run at once, so each change is a read-modify-write under a lock
(UploadState), and the file keeps the newest MAX_REMEMBERED_UPLOADS entries.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from myyoutube.terminal import complain

STATE_ENV = "MYYOUTUBE_UPLOAD_STATE"
# Held while the state file is read, changed and replaced, beside it (uploads.json.lock).
STATE_LOCK_SUFFIX = ".lock"
# Entries kept in the state file, the newest. Each is an upload that was interrupted; the
# server forgets one after its expiry (a day by default), so past a thousand the oldest
# are long gone, and the file (read on every upload) stays small.
MAX_REMEMBERED_UPLOADS = 1000


def state_path() -> Path:
    override = os.environ.get(STATE_ENV)
    if override:
        return Path(override)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "myyoutube" / "uploads.json"


def file_key(path: Path, server: str, name: str = "") -> str:
    """What identifies one file's upload: the server, its path, size and mtime, and the
    video's name when it is not the file's own (`file_of` finds earlier versions')."""
    stat = path.stat()
    chosen = f"|name={name}" if name else ""
    return f"{file_of(path, server)}{stat.st_size}|{stat.st_mtime_ns}{chosen}"


def file_of(path: Path, server: str) -> str:
    """The start of every file_key of this file on this server, whatever its version."""
    return f"{server}|{path.resolve()}|"


# What follows file_of in a file_key: size, mtime, and the chosen name if any. Matched in
# full: "srv|/d/clip|" also starts every key of a file named "clip|2024.mp4".
_VERSION_AND_NAME = re.compile(r"\d+\|\d+(?:\|name=(.*))?", re.DOTALL)


def chosen_name(key: str, file: str) -> str | None:
    """The chosen-name part ('' for none) of a file_key of the file `file` starts; None
    if `key` is not one of that file's keys."""
    version = _VERSION_AND_NAME.fullmatch(key[len(file) :]) if key.startswith(file) else None
    return None if version is None else version.group(1) or ""


class UploadState:
    """The unfinished uploads' URLs, by file_key (a JSON object, rewritten atomically).

    Several commands may upload at once (`myyoutube upload a.mp4 & myyoutube upload b.mp4`),
    so each change is a read-modify-write under an exclusive lock on a file beside the state
    (STATE_LOCK_SUFFIX), written through a file of its own: without them, one process's
    rewrite dropped the others' entries, and a shared temporary name made them fail.
    A state file that cannot be written (a read-only home, HOME unset under cron) costs
    only the resuming: uploads go on, after one warning on standard error."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.unwritable = False

    def _load(self) -> dict[str, str]:
        try:
            entries = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return entries if isinstance(entries, dict) else {}

    def get(self, key: str) -> str | None:
        value = self._load().get(key)
        return value if isinstance(value, str) else None

    def earlier_versions(self, key: str, file: str) -> list[tuple[str, str]]:
        """(key, URL) of the unfinished uploads of this file (keys starting with `file`)
        and video name that were made when its size or mtime were others."""
        return [
            (other, url)
            for other, url in self._load().items()
            if isinstance(url, str) and other != key and chosen_name(other, file) == chosen_name(key, file)
        ]

    def put(self, key: str, url: str | None) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with _locked(self.path.with_name(self.path.name + STATE_LOCK_SUFFIX)):
                entries = self._load()
                entries.pop(key, None)
                if url is not None:
                    entries[key] = url  # last, as the newest
                _write_atomically(self.path, json.dumps(_newest(entries, MAX_REMEMBERED_UPLOADS)))
        except OSError as exc:
            if not self.unwritable:
                complain(
                    f"myyoutube: warning: cannot keep track of unfinished uploads in {self.path} "
                    f"({exc.strerror or exc}; see ${STATE_ENV}): an interrupted upload cannot be resumed"
                )
            self.unwritable = True


def _newest(entries: dict[str, str], most: int) -> dict[str, str]:
    """The last `most` entries (a JSON object keeps its order: oldest first)."""
    return dict(list(entries.items())[-most:])


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` (made if missing, and left: a lock file that
    is removed can be locked by two processes, each on its own inode)."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_atomically(path: Path, text: str) -> None:
    """Replace `path` by a file holding `text`, written under a name no other process uses."""
    fd, fresh = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(fresh, path)
    except BaseException:
        Path(fresh).unlink(missing_ok=True)
        raise
