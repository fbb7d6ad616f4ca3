"""What a viewer is told about a video's playback: its state, the badge on its card, what
the watch page's player starts with. Pure: records in, plain values out; no I/O.

Theory of operation
-------------------
Every upload is transcoded in the background into a ladder of H.264 renditions, so a
video's public record (what ``/listar``, ``GET /videos/{name}`` and the pages get) says
where that stands: ``state`` is ``processing`` (with ``progress``, 0-100), ``ready`` or
``failed`` (with ``failure``, a sentence); ``renditions`` lists the finished rungs
(``height``, ``width``, ``bandwidth``, ascending by height); ``playable_original`` says
whether a browser can play the uploaded file itself.

`playback_of` reads those fields defensively (a record from before transcoding has none of
them: it is ``ready`` and its original plays, as it always did). From that the watch page
decides what the player starts with (`first_source`):

* ``hls``: at least one rendition exists, so ``/hls/{name}/master.m3u8`` adapts quality;
  watch.js falls back to the progressive ``/stream/{name}`` where the browser has no Media
  Source Extensions (``Hls.isSupported()`` false).
* ``progressive``: no rendition yet but the original plays: ``/stream/{name}``.
* ``none``: nothing playable yet (the page shows "Processing N%" and polls) or ever (failed).

The same sentences appear on the grid's cards (built by home.js) and in the watch page's
status line (rendered here, then updated by watch.js while it polls); the scripts mirror
`state_text` and `badge`, and the browser tests check both agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PROCESSING = "processing"
READY = "ready"
FAILED = "failed"
STATES = (PROCESSING, READY, FAILED)

# How often the watch page asks for the record while a video is processing: often enough
# that "ready" shows within a couple of seconds, rare enough that a hundred open pages
# cost the master 50 small requests a second at most.
POLL_INTERVAL_MS = 2000

# A failure reason is a sentence from the transcoder; a page shows at most this much of it.
MAX_FAILURE_CHARS = 300


@dataclass(frozen=True)
class Rendition:
    height: int
    width: int
    bandwidth: int


@dataclass(frozen=True)
class Playback:
    """A video's playback facts, checked; see the module docstring for each field."""

    state: str
    progress: int | None
    failure: str
    renditions: tuple[Rendition, ...]
    playable_original: bool
    width: int | None  # as shown (rotation and pixel aspect applied), from the details
    height: int | None


def _whole(value: Any) -> int | None:
    """`value` as a non-negative int when it is a finite number, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return int(value)


def _renditions(value: Any) -> tuple[Rendition, ...]:
    if not isinstance(value, list):
        return ()
    found = []
    for item in value:
        if not isinstance(item, Mapping):
            continue
        height, width = _whole(item.get("height")), _whole(item.get("width"))
        if height and width:
            found.append(Rendition(height, width, _whole(item.get("bandwidth")) or 0))
    return tuple(sorted(found, key=lambda r: r.height))


def playback_of(video: Mapping[str, Any]) -> Playback:
    """The playback facts of a public video record, tolerating missing or odd fields."""
    state = video.get("state")
    if state not in STATES:
        state = READY  # a record from before transcoding: its original is what plays
    progress = _whole(video.get("progress")) if state == PROCESSING else None
    failure = video.get("failure")
    failure = failure.strip()[:MAX_FAILURE_CHARS] if isinstance(failure, str) else ""
    playable = video.get("playable_original")
    if not isinstance(playable, bool):
        playable = "renditions" not in video  # before transcoding every original was served
    width, height = _whole(video.get("width")), _whole(video.get("height"))
    return Playback(
        state=state,
        progress=None if progress is None else min(progress, 100),
        failure=failure if state == FAILED else "",
        renditions=_renditions(video.get("renditions")),
        playable_original=playable,
        width=width or None,
        height=height or None,
    )


def state_text(playback: Playback) -> str:
    """The sentence a viewer reads about the video's state ('' when it is simply ready)."""
    if playback.state == PROCESSING:
        if playback.progress is None:
            return "Processing"
        return f"Processing {playback.progress}%"
    if playback.state == FAILED:
        reason = playback.failure or "no reason was given"
        return f"This video could not be prepared for playback: {reason}"
    return ""


@dataclass(frozen=True)
class Badge:
    """The label on a video's card: its text and its kind (the CSS class state-KIND)."""

    text: str
    kind: str


def badge(playback: Playback) -> Badge | None:
    """The card's state badge, or None for a ready video."""
    if playback.state == PROCESSING:
        return Badge(state_text(playback), PROCESSING)
    if playback.state == FAILED:
        return Badge("Failed", FAILED)
    return None


def first_source(playback: Playback) -> str:
    """What the player starts with: 'hls', 'progressive' or 'none' (module docstring)."""
    if playback.renditions:
        return "hls"
    if playback.playable_original:
        return "progressive"
    return "none"
