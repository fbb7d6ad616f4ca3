"""Faststart: an MP4 whose index (`moov`) follows its media, rewritten with `moov` first.

Theory of operation
-------------------
A browser cannot start playing an MP4 until it has the `moov` box. `remux_faststart`
copies every audio and video stream into a new file with `moov` first (PyAV stream copy,
no re-encode), for files whose index sits at the end. Blocking and disk-bound: callers
run it in a worker thread.
"""

from __future__ import annotations

from pathlib import Path

import av

from myyoutube.media.probe import open_input, unreadable


def remux_faststart(source: Path, target: Path) -> None:
    """Copy every stream of an MP4/MOV into `target` with `moov` first; no re-encoding."""
    try:
        with (
            open_input(source) as inp,
            av.open(str(target), "w", format="mp4", options={"movflags": "+faststart"}) as out,
        ):
            mapping = {}
            for stream in inp.streams:
                if stream.type in ("video", "audio"):
                    mapping[stream.index] = out.add_stream_from_template(stream)
            for packet in inp.demux(*[inp.streams[i] for i in mapping]):
                if packet.dts is None:
                    continue  # the demuxer's flush packets carry no data
                packet.stream = mapping[packet.stream.index]
                out.mux(packet)
    except av.FFmpegError as exc:
        raise unreadable(exc) from exc
