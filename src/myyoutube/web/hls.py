"""Adaptive playback: HLS playlists over each rendition's single fragmented-MP4 blob.

Theory of operation
-------------------
Every finished rendition is one blob (a fragmented MP4) whose fragment index the master
keeps. The playlists are made from those indexes on each request (media/hls.py, pure;
a few microseconds per segment), so there are no per-segment blobs and nothing to keep in
step:

    GET /hls/{name}/master.m3u8     one variant per finished rendition, lowest first
    GET /hls/{name}/{height}.m3u8   EXT-X-MAP and one EXT-X-BYTERANGE per segment, all
                                    pointing at the relative URI {height}.mp4
    GET /hls/{name}/{height}.mp4    the rendition's bytes, by range, through the same code
                                    (streaming.serve) as /stream, with its validators

Fetching the master playlist counts a view, as /stream does from its first byte. The
master is asked as the visitor, so what /stream may not show is a 404 here too.
Playlists change when a rendition is added, so players and caches revalidate them
(`no-cache`), and like /stream's bytes only a public video's may be kept in shared caches
(streaming.cache_control); the rendition bytes never change and are cached like /stream's.
"""

from __future__ import annotations

from aiohttp import web

from myyoutube import media
from myyoutube.web import viewers
from myyoutube.web.common import SECURITY_HEADERS, error, master_for
from myyoutube.web.streaming import cache_control, serve


async def master_playlist(request: web.Request) -> web.Response:
    """The variants; a player asks for it once as it starts, so it counts the view
    (like /stream from its first byte; the segments that follow do not)."""
    viewers.report_view(request)
    video, indexes = await master_for(request).renditions(request.match_info["name"])
    if not indexes:
        return error(404, _none_ready(video))
    frame_rate = video.get("frame_rate")
    variants = [
        media.Variant(f"{height}.m3u8", media.FragmentIndex.from_json(text), frame_rate)
        for height, text in indexes.items()
    ]
    return _playlist(media.master_playlist(variants), video)


async def media_playlist(request: web.Request) -> web.Response:
    height = request.match_info["height"]
    video, indexes = await master_for(request).renditions(request.match_info["name"])
    if height not in indexes:
        return error(404, f"This video has no {height}p rendition." if indexes else _none_ready(video))
    playlist = media.media_playlist(media.FragmentIndex.from_json(indexes[height]), f"{height}.mp4")
    return _playlist(playlist, video)


async def rendition(request: web.Request) -> web.StreamResponse:
    return await serve(request, request.match_info["height"])


def _none_ready(video: dict) -> str:
    if video.get("state") == "failed":
        return "This video could not be made playable: " + (video.get("failure") or "transcoding failed.")
    return "No rendition of this video is ready yet; try again shortly."


def _playlist(text: str, video: dict) -> web.Response:
    headers = {"Cache-Control": cache_control(video), **SECURITY_HEADERS}
    return web.Response(
        text=text, headers=headers, content_type=media.PLAYLIST_CONTENT_TYPE.split(";")[0], charset="utf-8"
    )


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/hls/{name}/master.m3u8", master_playlist)
    router.add_get(r"/hls/{name}/{height:\d{1,5}}.m3u8", media_playlist)
    router.add_get(r"/hls/{name}/{height:\d{1,5}}.mp4", rendition)
