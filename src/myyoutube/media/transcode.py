"""Transcoding: any video FFmpeg reads, made into one web rendition (fragmented MP4).

Theory of operation
-------------------
`transcode(source, rung, target)` writes the rung's rendition: H.264 High profile,
yuv420p (8-bit, what every browser decodes; 10-bit sources are converted), and AAC-LC
stereo if the source has sound, in a fragmented MP4 (`empty_moov`, a fragment at every
keyframe, `default_base_moof`: the layout HLS byte ranges and Media Source Extensions
want). One pass, packet by packet:

    demux -> decode (<= MAX_DECODER_THREADS) -> [turn upright] -> scale -> x264 -> mux
                                                    audio: decode -> resample -> AAC -> mux

* **Keyframes line up across rungs.** Every rung decodes the same source frames in the
  same order; frame N is forced to be an IDR keyframe when N is a multiple of the rung's
  GOP (~2 s, ladder.py), and x264's own keyframe placement (scene cuts) is off. So every
  rung's fragments start at the same instants and a player can switch rung between any
  two segments.
* **Bounded memory.** Frames flow through one at a time; scaling is FFmpeg's scaler
  going straight from the decoder's YUV to the rung's size and yuv420p (never a
  full-size RGB copy); decoder and encoder threads are capped; the muxer holds one
  fragment (~2 s of compressed media).
* **Rotation.** A phone video recorded sideways with a rotation flag is turned upright
  (FFmpeg's transpose filter) before scaling, as FFmpeg's command line does; the ladder
  was computed from the picture as shown, so sizes match.
* **Timestamps.** Output times are the source's, moved so that the file starts at 0
  (MPEG-TS starts at ~1.4 s) and counted on a 90 kHz clock (exact for 24, 25, 30, 50,
  60 and 30000/1001 fps; variable frame rates keep their timing). Audio is timed by its
  sample count from its first frame, so resampling never drifts.
* **Progress and cancelling.** `progress(fraction)` is called as the source's packets
  pass (at most every PROGRESS_STEP); `cancelled()` is checked before every packet, and a
  cancel raises Cancelled within one packet's work. On any failure the partial target is
  removed.

Blocking and CPU-bound: a datanode runs it in a worker thread or process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.video.frame import PictureType
from av.video.reformatter import VideoReformatter

from myyoutube.media.fragments import FragmentIndex, index_file
from myyoutube.media.ladder import Rung
from myyoutube.media.probe import NotAVideo, open_input, prepare_decoder, unreadable

# The fragmented-MP4 layout: a moov with no samples up front, a new fragment at every
# keyframe (so fragments are the ~2 s GOPs), sample offsets relative to each moof.
FRAGMENTED_MP4_FLAGS = "+frag_keyframe+empty_moov+default_base_moof"

# x264 speed/quality trade-off. "veryfast" is PeerTube's default: about 2x the speed of
# "medium" for ~10 % more bits at equal quality, which matters on small servers.
X264_PRESET = "veryfast"
# Constant-quality target; x264's default 23 looks clean at web sizes, and the rung's
# ceiling (maxrate) caps busy scenes.
X264_CRF = 23
# The rate-control buffer, in seconds at the rung's ceiling: two seconds (one segment)
# lets a keyframe borrow from the frames around it without a segment exceeding the cap.
VBV_BUFFER_S = 2.0
# Encoder threads: x264 runs frame-parallel threads, each with frames in flight; two
# match this project's 2-core machines and bound memory.
MAX_ENCODER_THREADS = 2

# FFmpeg's scaler threads per frame (slices), as FFmpeg's scale filter uses one per core.
SCALER_THREADS = 2

# Output video clock: 90 kHz divides the frame durations of every common rate.
VIDEO_TIME_BASE = Fraction(1, 90000)
# AAC keeps the source's sample rate when browsers take it everywhere; others become 48k.
AAC_SAMPLE_RATES = (44100, 48000)
AAC_DEFAULT_SAMPLE_RATE = 48000
AAC_FRAME_SAMPLES = 1024

# Progress is reported when it has grown by this much (and at the end): a job record
# updated 100 times per rendition is plenty, whatever the video's length.
PROGRESS_STEP = 0.01

# Display rotation (degrees counter-clockwise, as FFmpeg reports it) -> the filters that
# turn the picture upright, as FFmpeg's command line chooses them.
UPRIGHT_FILTERS: dict[int, tuple[tuple[str, str | None], ...]] = {
    90: (("transpose", "cclock"),),
    -90: (("transpose", "clock"),),
    270: (("transpose", "clock"),),
    180: (("hflip", None), ("vflip", None)),
    -180: (("hflip", None), ("vflip", None)),
}


class Cancelled(Exception):
    """The caller's `cancelled()` said stop; the partial rendition was removed."""


@dataclass(frozen=True)
class Rendition:
    """A finished rendition: where it is, what it is, and its fragment index."""

    rung: Rung
    path: Path
    size: int
    frames: int
    index: FragmentIndex


def transcode(
    source: Path,
    rung: Rung,
    target: Path,
    progress: Callable[[float], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Rendition:
    """Write `rung`'s rendition of `source` to `target` (see the module docstring).

    NotAVideo if the source cannot be read or yields no picture, Cancelled if cancelled;
    either way nothing is left at `target`.
    """
    try:
        with (
            open_input(source) as container,
            av.open(str(target), "w", format="mp4", options={"movflags": FRAGMENTED_MP4_FLAGS}) as output,
        ):
            frames = _Pipeline(container, output, rung).run(progress, cancelled)
        return Rendition(rung, target, target.stat().st_size, frames, index_file(target))
    except av.FFmpegError as exc:
        target.unlink(missing_ok=True)
        raise unreadable(exc) from exc
    except BaseException:
        target.unlink(missing_ok=True)
        raise


class _Pipeline:
    """One source container to one output container: the demux loop and its two paths."""

    def __init__(self, container, output, rung: Rung) -> None:
        if not container.streams.video:
            raise NotAVideo("The file has no video stream.")
        start_s = (container.start_time or 0) / av.time_base
        self.container = container
        self.output = output
        self.video = _VideoPath(container.streams.video[0], output, rung, start_s)
        audio = container.streams.audio[0] if container.streams.audio else None
        self.audio = _AudioPath(audio, output, rung, start_s) if audio is not None else None
        self.start_s = start_s
        self.duration_s = container.duration / av.time_base if container.duration else None

    def run(self, progress, cancelled) -> int:
        """Transcode everything; the number of video frames written."""
        paths: dict[int, _VideoPath | _AudioPath] = {self.video.source.index: self.video}
        if self.audio is not None:
            paths[self.audio.source.index] = self.audio
        reported = 0.0
        for packet in self.container.demux(*(path.source for path in paths.values())):
            if cancelled is not None and cancelled():
                raise Cancelled("The transcode was cancelled.")
            path = paths[packet.stream.index]
            self.output.mux(path.feed(packet))
            fraction = self._fraction(packet)
            if progress is not None and fraction >= reported + PROGRESS_STEP:
                reported = fraction
                progress(fraction)
        for path in paths.values():
            self.output.mux(path.finish())
        if not self.video.frames:
            raise NotAVideo("The file's video cannot be decoded.")
        if progress is not None:
            progress(1.0)
        return self.video.frames

    def _fraction(self, packet) -> float:
        if not self.duration_s or packet.pts is None or packet.time_base is None:
            return 0.0
        return min(1.0, max(0.0, (float(packet.pts * packet.time_base) - self.start_s) / self.duration_s))


def _decode(stream, packet) -> list:
    """The frames `packet` yields (None flushes). A damaged packet yields none (after a
    cut or at an MPEG-TS start the first packets may reference frames never seen), and so
    does a flush after the demuxer's own end-of-stream packet already flushed."""
    try:
        return stream.decode(packet)
    except (av.InvalidDataError, av.EOFError):
        return []


class _VideoPath:
    """Source video -> upright, scaled, yuv420p frames -> H.264 with aligned keyframes."""

    def __init__(self, source, output, rung: Rung, start_s: float) -> None:
        prepare_decoder(source)
        self.source, self.rung, self.frames = source, rung, 0
        self.start_ticks = round(start_s / VIDEO_TIME_BASE)
        self.frame_ticks = max(1, round(1 / (rung.frame_rate * VIDEO_TIME_BASE)))
        self.last_pts: int | None = None
        self.upright: _Upright | None = None
        # One scaler for every frame: VideoFrame.reformat would set up a new one per frame.
        self.scaler = VideoReformatter()
        self.encoder = output.add_stream("libx264", rate=rung.frame_rate)
        self.encoder.width, self.encoder.height, self.encoder.pix_fmt = rung.width, rung.height, "yuv420p"
        self.encoder.time_base = VIDEO_TIME_BASE
        self.encoder.codec_context.thread_count = MAX_ENCODER_THREADS
        # Frame threads, as the ffmpeg tool uses: PyAV asks for slice threads by default,
        # which x264 runs as sliced threading, slower on the same cores and costlier in bits.
        self.encoder.codec_context.thread_type = "FRAME"
        self.encoder.options = x264_options(rung)

    def feed(self, packet) -> list:
        return [out for frame in _decode(self.source, packet) for out in self._encode(frame)]

    def finish(self) -> list:
        packets = self.feed(None)
        return packets + self.encoder.encode(None)

    def _encode(self, frame) -> list:
        if self.upright is None:
            self.upright = _Upright(frame)
        pts = self._pts(frame)
        upright = self.upright.turn(frame)
        scaled = self.scaler.reformat(
            upright,
            width=self.rung.width,
            height=self.rung.height,
            format="yuv420p",
            interpolation="BICUBIC",  # FFmpeg's scale filter's default
            threads=SCALER_THREADS,
        )
        scaled.pts, scaled.time_base = pts, VIDEO_TIME_BASE
        # A keyframe every GOP frames, counted the same way in every rung: aligned segments.
        keyframe = self.frames % self.rung.gop_frames == 0
        scaled.pict_type = PictureType.I if keyframe else PictureType.NONE
        self.frames += 1
        return self.encoder.encode(scaled)

    def _pts(self, frame) -> int:
        """The frame's time on the output clock, from 0, strictly increasing."""
        if frame.pts is not None and frame.time_base is not None:
            pts = round(frame.pts * frame.time_base / VIDEO_TIME_BASE) - self.start_ticks
        else:  # no timestamp: one frame after the last
            pts = 0 if self.last_pts is None else self.last_pts + self.frame_ticks
        if self.last_pts is not None and pts <= self.last_pts:
            pts = self.last_pts + 1
        self.last_pts = pts = max(0, pts)
        return pts


def x264_options(rung: Rung) -> dict[str, str]:
    return {
        "preset": X264_PRESET,
        "profile": "high",
        "crf": str(X264_CRF),
        "maxrate": str(rung.video_bitrate),
        "bufsize": str(round(rung.video_bitrate * VBV_BUFFER_S)),
        "g": str(rung.gop_frames),
        "keyint_min": str(rung.gop_frames),
        "sc_threshold": "0",  # no scene-cut keyframes: they would differ between rungs
        "forced-idr": "1",  # forced keyframes are IDR: each segment decodes on its own
    }


class _Upright:
    """Turns frames upright per the rotation flag of the first frame (a filter graph),
    or passes them through when there is nothing to turn."""

    def __init__(self, first) -> None:
        filters = UPRIGHT_FILTERS.get(first.rotation)
        self.graph = None
        if filters:
            graph = av.filter.Graph()
            node = graph.add_buffer(template=first, time_base=first.time_base or VIDEO_TIME_BASE)
            for name, argument in filters:
                step = graph.add(name, argument)
                node.link_to(step)
                node = step
            node.link_to(graph.add("buffersink"))
            graph.configure()
            self.graph = graph

    def turn(self, frame):
        if self.graph is None:
            return frame
        self.graph.push(frame)
        return self.graph.pull()


class _AudioPath:
    """Source audio -> resampled 1024-sample frames -> AAC-LC, timed by sample count."""

    def __init__(self, source, output, rung: Rung, start_s: float) -> None:
        source.codec_context.thread_count = 1
        self.source, self.start_s = source, start_s
        rate = source.codec_context.sample_rate
        self.rate = rate if rate in AAC_SAMPLE_RATES else AAC_DEFAULT_SAMPLE_RATE
        layout = "mono" if source.codec_context.layout.nb_channels == 1 else "stereo"
        self.encoder = output.add_stream("aac", rate=self.rate, layout=layout)
        self.encoder.bit_rate = rung.audio_bitrate
        self.encoder.time_base = Fraction(1, self.rate)
        self.resampler = av.AudioResampler(
            format="fltp", layout=layout, rate=self.rate, frame_size=AAC_FRAME_SAMPLES
        )
        self.next_sample: int | None = None

    def feed(self, packet) -> list:
        packets = []
        for frame in _decode(self.source, packet):
            if self.next_sample is None:
                offset_s = (frame.time if frame.time is not None else self.start_s) - self.start_s
                self.next_sample = max(0, round(offset_s * self.rate))
            frame.pts = None  # the resampler's output is timed by sample count below
            packets += self._encode(self.resampler.resample(frame))
        return packets

    def finish(self) -> list:
        packets = self.feed(None)
        if self.next_sample is not None:
            packets += self._encode(self.resampler.resample(None))
        return packets + self.encoder.encode(None)

    def _encode(self, frames) -> list:
        packets = []
        for frame in frames:
            frame.pts, frame.time_base = self.next_sample, Fraction(1, self.rate)
            self.next_sample = (self.next_sample or 0) + frame.samples
            packets += self.encoder.encode(frame)
        return packets
