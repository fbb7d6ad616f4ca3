"""Tests for myyoutube.master.blob_writers, on a real index and without a cluster."""

from __future__ import annotations

from types import SimpleNamespace

from myyoutube.master import blob_writers
from myyoutube.master.index import Index, StoredBlob

NOW = 1_800_000_000.0
KEPT, GIVEN_UP = "a" * 32, "b" * 32


class RecordingWriter:
    """In a ChainWriter's place: notes whether it was told to delete its copies."""

    def __init__(self, blob_id: str) -> None:
        self.blob_id, self.aborted = blob_id, False

    async def abort(self) -> None:
        self.aborted = True


async def test_an_abort_after_the_commit_deletes_no_committed_copy(tmp_path):
    """A cancellation can reach an upload after its commit (the master stopping while the
    sidecars go out, or as the commit's worker thread finishes), and the upload's abort
    then runs: the committed video's copies are neither deleted nor retired, while a
    blob never committed (a poster given up) still is. Before, the abort asked every
    holder to delete the video just committed."""
    index = Index(tmp_path / "index.sqlite3", NOW)
    index.ownership.begin_blob(KEPT, NOW)
    index.ownership.begin_blob(GIVEN_UP, NOW)
    video = {"name": "kept.mp4", "blob_id": KEPT, "size": 10, "sha256": "0" * 64, "content_type": "video/mp4"}
    index.commit_video(dict(video, uploaded_at=NOW), [StoredBlob(KEPT, 10, "0" * 64, ["n1", "n2"])], NOW)
    writers = [RecordingWriter(KEPT), RecordingWriter(GIVEN_UP)]
    await blob_writers.abort_fanouts(SimpleNamespace(index=index), writers)  # type: ignore[arg-type]
    assert [writer.aborted for writer in writers] == [False, True]
    assert "kept.mp4" in index.videos and KEPT not in index.ownership.retired
    assert GIVEN_UP in index.ownership.retired
