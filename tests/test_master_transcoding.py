"""The master's pure transcoding helpers (master/transcoding.py): jobs per upload, which
blob a part is, what the public record says."""

from __future__ import annotations

from myyoutube.master import jobs, transcoding

VIDEO = {"name": "a.mp4", "blob_id": "o" * 32, "poster_blob_id": "p" * 32, "content_type": "video/mp4"}
RENDITIONS = [
    {"height": 240, "width": 426, "bandwidth": 400_000, "blob_id": "r" * 32},
    {"height": 720, "width": 1280, "bandwidth": 3_000_000, "blob_id": "s" * 32},
]


def test_an_upload_gets_one_job_per_rung_and_none_without_a_picture_size():
    made = transcoding.jobs_for(dict(VIDEO, width=1280, height=720, frame_rate=25.0), now=5.0)
    assert [job.rung["name"] for job in made] == ["240p", "360p", "480p", "720p"]
    assert all(job.state == jobs.QUEUED and job.video == "a.mp4" and job.created_at == 5.0 for job in made)
    assert made[0].rung["gop_frames"] == 50  # 2 s at the source's 25 fps
    assert transcoding.jobs_for(VIDEO, now=5.0) == []
    assert transcoding.jobs_for(dict(VIDEO, width=0, height=720), now=5.0) == []


def test_which_blob_each_part_is():
    """'video' is the best rendition once one exists, the original before; a height names
    its rendition; 'original' is always the uploaded file. While renditions are still being
    made, an original browsers play stays 'video' (it changes once, at the end)."""
    assert transcoding.part_blob(VIDEO, "video") == "o" * 32
    with_renditions = dict(VIDEO, renditions=RENDITIONS)
    assert transcoding.part_blob(with_renditions, "video") == "s" * 32
    assert transcoding.part_blob(with_renditions, "original") == "o" * 32
    assert transcoding.part_blob(with_renditions, "240") == "r" * 32
    assert transcoding.part_blob(with_renditions, "poster") == "p" * 32
    assert transcoding.part_blob(with_renditions, "1080") is None
    assert transcoding.part_blob(with_renditions, "video", processing=True) == "o" * 32
    unplayable = dict(with_renditions, codec="hevc")
    assert transcoding.part_blob(unplayable, "video", processing=True) == "s" * 32


def test_playable_original_by_container_codec_and_pixels():
    assert transcoding.playable_original(dict(VIDEO, codec="h264", pixel_format="yuv420p"))
    assert transcoding.playable_original(dict(VIDEO, content_type="video/webm", codec="vp9"))
    assert transcoding.playable_original(VIDEO)  # details unknown: the container decides
    assert not transcoding.playable_original(dict(VIDEO, codec="hevc"))
    assert not transcoding.playable_original(dict(VIDEO, codec="h264", pixel_format="yuv420p10le"))
    assert not transcoding.playable_original(dict(VIDEO, content_type="video/x-msvideo", codec="h264"))


def test_the_public_fields_name_complete_renditions_only_without_blob_ids():
    queued = jobs.new_jobs(["j"], "a.mp4", [{"name": "1080p", "width": 1920, "height": 1080}], 0.0)
    fields = transcoding.public_fields(dict(VIDEO, renditions=RENDITIONS), queued, {})
    assert fields["state"] == "processing" and fields["progress"] == 66 and fields["failure"] is None
    assert fields["renditions"] == [
        {"height": 240, "width": 426, "bandwidth": 400_000},
        {"height": 720, "width": 1280, "bandwidth": 3_000_000},
    ]
    assert fields["playable_original"] is True
