"""Transcode benchmark (issue 10): our rendition ladder against the ffmpeg command line.

Theory of operation
-------------------
A synthetic 1080p30 H.264 + AAC source (`--seconds`, default 60) is generated with PyAV:
a textured picture panning in a circle with film grain, so that motion search and rate
control work as on camera footage (flat test bars would flatter both encoders). It is
probed (`media.probe`, what an upload costs before acceptance) and its ladder computed
(`media.ladder`: 240p to 1080p).

Then every rung is made twice, each in a fresh OS process timed from outside:

* **ours**: `python bench/transcode.py --worker ...`, which calls `media.transcode`
  (decode, scale, x264, AAC, fragmented MP4) for that rung;
* **ffmpeg**: Debian's `ffmpeg` with the same settings: the x264 preset, CRF, ceiling,
  buffer, GOP and forced keyframes, profile, bicubic scaling, AAC bitrate, the same
  fragmented-MP4 flags, and the same thread counts (2 for the decoder, 2 for x264).

The two alternate (ours first on even rungs, ffmpeg first on odd ones) so that drifting
load from other work on the machine hits both alike, and `--repeat N` keeps each side's
fastest of N runs. Reported per rung and for the whole ladder: wall seconds, source
frames per second, times realtime, CPU seconds (user + system, all threads, from
`wait4`), and each process's peak RSS (VmHWM). The throughput ratio is ffmpeg's
wall time over ours: >= 1 means we are at least as fast (target >= 0.9). On a shared
machine the CPU-seconds ratio is the steadier of the two.

"Upload to first playable rendition" is the probe, the poster and the 240p rung, the
first job a cluster would run. Last, a two-frame source of the largest accepted picture
(MAX_PIXELS, 8192x8192) is accepted and transcoded, and each process's peak RSS
reported: the memory one upload can make a process use. The renditions' fragment indexes are checked: every rung
must have the same segment durations (keyframes aligned across rungs).

If `ffmpeg` is missing it is installed with `apt-get install -y ffmpeg` (the project
itself never needs it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from myyoutube import media
from myyoutube.media.probe import MAX_DECODER_THREADS, MAX_PIXELS
from myyoutube.media.transcode import FRAGMENTED_MP4_FLAGS, MAX_ENCODER_THREADS, transcode, x264_options

SOURCE_WIDTH_PX, SOURCE_HEIGHT_PX, SOURCE_FPS = 1920, 1080, 30
# The source is encoded fast but well (CABAC, ~8 Mbit/s): like a camera's or an editor's
# export, and cheap to make (about realtime here).
SOURCE_X264 = {"preset": "superfast", "crf": "20", "profile": "high"}
# Panning path (pixels) and period (seconds) of the picture; grain amplitude (levels).
PAN_X_PX, PAN_Y_PX, PAN_PERIOD_S = 400, 200, 8.0
GRAIN_LEVELS, GRAIN_FRAMES = 3, 6
AUDIO_RATE = 48000

MIB = 1024 * 1024
# How often a running process's peak memory is read.
RSS_POLL_S = 0.05


@dataclass(frozen=True)
class Run:
    wall_s: float
    cpu_s: float
    peak_rss: int  # bytes


def make_source(path: Path, seconds: float) -> None:
    """Write the synthetic 1080p30 H.264 + AAC source (see the module docstring)."""
    rng = np.random.default_rng(1)
    width, height = SOURCE_WIDTH_PX + 2 * PAN_X_PX, SOURCE_HEIGHT_PX + 2 * PAN_Y_PX

    def texture(w: int, h: int, grain_px: int) -> np.ndarray:
        small = rng.integers(0, 256, (h // grain_px + 1, w // grain_px + 1), dtype=np.uint8)
        return np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC))

    luma = (texture(width, height, 24) // 4 * 3 + texture(width, height, 3) // 4).astype(np.uint8)
    chroma = [texture(width // 2, height // 2, 16) for _ in range(2)]
    grain = [
        rng.integers(-GRAIN_LEVELS, GRAIN_LEVELS + 1, luma.shape, dtype=np.int16) for _ in range(GRAIN_FRAMES)
    ]
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=SOURCE_FPS)
        video.width, video.height, video.pix_fmt = SOURCE_WIDTH_PX, SOURCE_HEIGHT_PX, "yuv420p"
        video.options = SOURCE_X264
        audio = container.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
        samples = 0
        for index in range(round(seconds * SOURCE_FPS)):
            angle = 2 * math.pi * index / (SOURCE_FPS * PAN_PERIOD_S)
            x, y = round(PAN_X_PX * (1 + math.cos(angle))), round(PAN_Y_PX * (1 + math.sin(angle)))
            frame = _yuv_frame(luma, chroma, grain[index % GRAIN_FRAMES], x, y)
            frame.pts = index
            container.mux(video.encode(frame))
            while samples < (index + 1) * AUDIO_RATE / SOURCE_FPS:
                container.mux(audio.encode(_tone(samples)))
                samples += 1024
        container.mux(video.encode())
        container.mux(audio.encode())


def _yuv_frame(luma, chroma, grain, x: int, y: int) -> av.VideoFrame:
    w, h = SOURCE_WIDTH_PX, SOURCE_HEIGHT_PX
    planes = np.empty((h * 3 // 2, w), dtype=np.uint8)
    window = luma[y : y + h, x : x + w].astype(np.int16) + grain[y : y + h, x : x + w]
    planes[:h] = np.clip(window, 0, 255)
    for number, plane in enumerate(chroma):
        part = plane[y // 2 : y // 2 + h // 2, x // 2 : x // 2 + w // 2]
        planes[h + number * h // 4 : h + (number + 1) * h // 4] = part.reshape(h // 4, w)
    return av.VideoFrame.from_ndarray(planes, format="yuv420p")


def _tone(first_sample: int) -> av.AudioFrame:
    t = np.arange(first_sample, first_sample + 1024) / AUDIO_RATE
    wave = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(np.repeat(wave, 2)[None, :], format="s16", layout="stereo")
    frame.sample_rate, frame.pts = AUDIO_RATE, first_sample
    return frame


def make_largest_picture_source(path: Path) -> None:
    """Two frames (one second each) of the largest picture accepted (MAX_PIXELS, square)."""
    side = math.isqrt(MAX_PIXELS)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=1)
        video.width, video.height, video.pix_fmt = side, side, "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "40"}
        for index in range(2):
            frame = av.VideoFrame(side, side, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([16 + 100 * index]) * plane.buffer_size)
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode())


def largest_picture_costs(folder: Path) -> dict:
    """Peak RSS of accepting (probe + poster) and of transcoding (lowest rung) a source of
    the largest accepted picture: the memory bound an upload can force on a process."""
    source = folder / "largest.mp4"
    make_largest_picture_source(source)
    accept, _ = measured([sys.executable, __file__, "--probe-worker", str(source)])
    details = media.probe_source(source)
    rung = media.ladder(details.width, details.height, details.frame_rate)[0]
    argv = [
        sys.executable,
        __file__,
        "--worker",
        str(source),
        json.dumps(rung.to_dict()),
        str(folder / "l.mp4"),
    ]
    transcoded, _ = measured(argv)
    return {"side_px": details.width, "accept_peak_rss_mib": accept.peak_rss / MIB,
            "transcode_peak_rss_mib": transcoded.peak_rss / MIB}  # fmt: skip


def ensure_ffmpeg() -> str:
    """The ffmpeg command line tool's path, installing Debian's package if missing."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    print("ffmpeg is missing: apt-get install -y ffmpeg", flush=True)
    environment = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "install", "-y", "-q", "ffmpeg"], check=True, env=environment)
    found = shutil.which("ffmpeg")
    if not found:
        raise SystemExit("ffmpeg is still missing after apt-get install")
    return found


def ffmpeg_command(ffmpeg: str, source: Path, rung: media.Rung, target: Path) -> list[str]:
    """The command line doing what media.transcode does for `rung`."""
    x264 = x264_options(rung)
    return [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-threads", str(MAX_DECODER_THREADS), "-i", str(source),
        "-vf", f"scale={rung.width}:{rung.height}:flags=bicubic,format=yuv420p",
        "-c:v", "libx264", "-threads", str(MAX_ENCODER_THREADS),
        "-preset", x264["preset"], "-profile:v", x264["profile"], "-crf", x264["crf"],
        "-maxrate", x264["maxrate"], "-bufsize", x264["bufsize"],
        "-g", x264["g"], "-keyint_min", x264["keyint_min"], "-sc_threshold", "0", "-forced-idr", "1",
        "-force_key_frames", f"expr:eq(mod(n,{rung.gop_frames}),0)",
        "-c:a", "aac", "-b:a", str(rung.audio_bitrate), "-ar", str(AUDIO_RATE), "-ac", "2",
        "-movflags", FRAGMENTED_MP4_FLAGS, "-f", "mp4", str(target),
    ]  # fmt: skip


def measured(argv: list[str]) -> tuple[Run, str]:
    """Run `argv` to completion: its wall time, CPU time and peak RSS, and its stdout.

    Peak RSS is VmHWM from /proc/PID/status, polled every RSS_POLL_S: the high-water
    mark of the program's own memory. (`ru_maxrss` would also count the copy of this
    benchmark's memory that the child held between fork and exec.) CPU time comes from
    `wait4` when it is reaped.
    """
    with tempfile.TemporaryFile("w+") as stdout:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=stdout, text=True)
        peak_rss = 0
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            peak_rss = max(peak_rss, _high_water_mark(process.pid))
            time.sleep(RSS_POLL_S)
        wall_s = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            raise SystemExit(f"{argv[0]} failed with exit code {process.returncode}")
        stdout.seek(0)
        output = stdout.read()
    return Run(wall_s, usage.ru_utime + usage.ru_stime, peak_rss), output


def _high_water_mark(pid: int) -> int:
    """VmHWM of `pid` in bytes (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def worker(source: Path, rung_json: str, target: Path) -> None:
    """--worker: make one rendition with media.transcode; print its frames and index."""
    rendition = transcode(source, media.Rung.from_dict(json.loads(rung_json)), target)
    print(json.dumps({"frames": rendition.frames, "index": rendition.index.to_json()}))


def probe_worker(source: Path) -> None:
    """--probe-worker: what an upload costs before acceptance: probe, then poster."""
    started = time.perf_counter()
    details = media.probe_source(source)
    probed = time.perf_counter()
    poster = media.make_poster(source, details.duration_s)
    done = time.perf_counter()
    print(
        json.dumps(
            {"probe_s": probed - started, "poster_s": done - probed, "poster_bytes": len(poster or b"")}
        )
    )


def best(runs: list[Run]) -> Run:
    return min(runs, key=lambda run: run.wall_s)


def bench_rung(args, ffmpeg: str, source: Path, folder: Path, rung: media.Rung, number: int):
    """Our and ffmpeg's best runs for one rung, and our rendition's fragment index."""
    ours_argv = [
        sys.executable, __file__, "--worker", str(source), json.dumps(rung.to_dict()),
        str(folder / f"ours-{rung.name}.mp4"),
    ]  # fmt: skip
    theirs_argv = ffmpeg_command(ffmpeg, source, rung, folder / f"ffmpeg-{rung.name}.mp4")
    ours, theirs, index = [], [], None
    for attempt in range(args.repeat):
        order = ("ours", "theirs") if (number + attempt) % 2 == 0 else ("theirs", "ours")
        for side in order:
            if side == "ours":
                run, output = measured(ours_argv)
                ours.append(run)
                index = media.FragmentIndex.from_json(json.loads(output)["index"])
            else:
                theirs.append(measured(theirs_argv)[0])
    assert index is not None  # repeat >= 1
    return best(ours), best(theirs), index


def row(name: str, frames: int, duration_s: float, ours: Run, theirs: Run) -> str:
    def cells(run: Run) -> str:
        return (
            f"{run.wall_s:7.1f} s {frames / run.wall_s:6.1f} fps {duration_s / run.wall_s:5.2f}x "
            f"{run.cpu_s:7.1f} cpu-s {run.peak_rss / MIB:6.0f} MiB"
        )

    ratio, cpu_ratio = theirs.wall_s / ours.wall_s, theirs.cpu_s / ours.cpu_s
    return f"{name:>7} | {cells(ours)} | {cells(theirs)} | {ratio:5.2f} {cpu_ratio:5.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="source length (default 60)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per rung and side; the fastest counts")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--worker", nargs=3, metavar=("SOURCE", "RUNG", "TARGET"), help=argparse.SUPPRESS)
    parser.add_argument("--probe-worker", metavar="SOURCE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(Path(args.worker[0]), args.worker[1], Path(args.worker[2]))
    if args.probe_worker:
        return probe_worker(Path(args.probe_worker))
    ffmpeg = ensure_ffmpeg()
    with tempfile.TemporaryDirectory(prefix="bench-transcode-") as temporary:
        folder = Path(temporary)
        report(args, ffmpeg, folder)


def report(args, ffmpeg: str, folder: Path) -> None:
    source = folder / "source.mp4"
    started = time.perf_counter()
    make_source(source, args.seconds)
    print(f"source: {args.seconds:g} s of {SOURCE_WIDTH_PX}x{SOURCE_HEIGHT_PX} at {SOURCE_FPS} fps, "
          f"{source.stat().st_size / MIB:.1f} MiB, made in {time.perf_counter() - started:.0f} s")  # fmt: skip
    probe_run, probe_output = measured([sys.executable, __file__, "--probe-worker", str(source)])
    upload = json.loads(probe_output)
    details = media.probe_source(source)
    frames = round(details.duration_s * SOURCE_FPS)
    rungs = media.ladder(details.width, details.height, details.frame_rate)
    print(
        f"ffmpeg: {subprocess.run([ffmpeg, '-version'], capture_output=True, text=True).stdout.split(chr(10))[0]}"
    )
    print(
        f"PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info}); x264 preset {x264_options(rungs[0])['preset']}"
    )
    print(f"\n   rung |{'ours':^52}|{'ffmpeg':^52}| ratio (ffmpeg/ours)\n{'-' * 136}")
    results, totals = {}, {"ours": [], "ffmpeg": []}
    for number, rung in enumerate(rungs):
        ours, theirs, index = bench_rung(args, ffmpeg, source, folder, rung, number)
        results[rung.name] = (ours, theirs, index)
        totals["ours"].append(ours)
        totals["ffmpeg"].append(theirs)
        print(row(rung.name, frames, details.duration_s, ours, theirs), flush=True)
    ladder_ours, ladder_theirs = (_sum(totals[side]) for side in ("ours", "ffmpeg"))
    print("-" * 136)
    print(row("ladder", frames * len(rungs), details.duration_s, ladder_ours, ladder_theirs))
    first = results[rungs[0].name][0]
    ticks = {tuple(s.ticks for s in index.segments) for _, _, index in results.values()}
    summary = {
        "seconds": details.duration_s,
        "frames": frames,
        "probe_s": upload["probe_s"],
        "poster_s": upload["poster_s"],
        "probe_worker_peak_rss_mib": probe_run.peak_rss / MIB,
        "first_rendition_s": upload["probe_s"] + upload["poster_s"] + first.wall_s,
        "throughput_ratio": ladder_theirs.wall_s / ladder_ours.wall_s,
        "cpu_ratio": ladder_theirs.cpu_s / ladder_ours.cpu_s,
        "segments_aligned": len(ticks) == 1,
        "rungs": {
            name: {"ours": ours.__dict__, "ffmpeg": theirs.__dict__, "segments": len(index.segments)}
            for name, (ours, theirs, index) in results.items()
        },
    }
    print(f"\nupload checks: probe {upload['probe_s']:.2f} s, poster {upload['poster_s']:.2f} s, "
          f"peak RSS {probe_run.peak_rss / MIB:.0f} MiB")  # fmt: skip
    print(f"upload to first playable rendition ({rungs[0].name}): {summary['first_rendition_s']:.1f} s")
    print(f"segments aligned across rungs: {'yes' if summary['segments_aligned'] else 'NO'}")
    print(
        f"throughput ratio (ffmpeg wall / ours): {summary['throughput_ratio']:.2f}; CPU: {summary['cpu_ratio']:.2f}"
    )
    largest = summary["largest_picture"] = largest_picture_costs(folder)
    print(f"largest accepted picture ({largest['side_px']}x{largest['side_px']}): accept (probe + poster) "
          f"peak RSS {largest['accept_peak_rss_mib']:.0f} MiB, 240p rendition {largest['transcode_peak_rss_mib']:.0f} MiB")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


def _sum(runs: list[Run]) -> Run:
    return Run(sum(r.wall_s for r in runs), sum(r.cpu_s for r in runs), max(r.peak_rss for r in runs))


if __name__ == "__main__":
    main()
