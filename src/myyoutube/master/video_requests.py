"""Requests about videos in the index: list and search, stat, edit, count a view, delete,
change visibility.

Theory of operation
-------------------
Each request names the account it is made for, and each handler checks it against
permissions.py before acting, whatever the web front end already checked: a video the
account may not see is answered as if it did not exist (`not_found`, so private names do
not leak), and an act it may not do is `forbidden`. Everything here is answered from the
index (and its catalogue, catalogue.py) in one frame; no handler touches a datanode.
A deleted video's replicas go at each datanode's next heartbeat, which reports a blob
the index no longer knows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from myyoutube import listing, names, permissions, videotext
from myyoutube.master import views
from myyoutube.protocol import (
    CountView,
    DeleteVideo,
    Error,
    ListVideos,
    Ok,
    SetVisibility,
    StatVideo,
    UpdateVideo,
    VideoInfo,
    VideoList,
)
from myyoutube.stream import FrameStream

if TYPE_CHECKING:
    from myyoutube.master.server import Master

log = logging.getLogger(__name__)


class VideoRequests:
    """The master's handlers for requests about stored videos."""

    def __init__(self, master: Master) -> None:
        self.master = master

    def handlers(self) -> dict[type, Callable[[FrameStream, Any], Awaitable[None]]]:
        return {
            ListVideos: self._list,
            StatVideo: self._stat,
            UpdateVideo: self._update,
            CountView: self._count_view,
            DeleteVideo: self._delete,
            SetVisibility: self._set_visibility,
        }

    async def _list(self, connection: FrameStream, request: ListVideos) -> None:
        user = self.master.accounts.user(request.user)
        try:
            page = self.master.index.catalogue.page(
                request.query, request.sort, request.cursor, request.limit, user
            )
        except listing.BadListing as exc:
            await connection.write_frame(Error("bad_request", str(exc)))
            return
        # The SQL chose what this account may list; every record is checked once more.
        found = [
            self.master.public_video(video) for video in page.videos if permissions.may_list(user, video)
        ]
        for video, ranges in zip(found, page.highlights or [], strict=False):
            video["title_highlight"] = ranges
        await connection.write_frame(VideoList(videos=found, next=page.next))

    async def _update(self, connection: FrameStream, request: UpdateVideo) -> None:
        found = await self._changeable(connection, request, permissions.may_edit, "change")
        if found is None:
            return
        name = found["name"]  # as stored (the request may spell it in another Unicode form)
        try:
            video = self.master.index.catalogue.edit(name, request.title, request.description)
        except videotext.BadText as exc:
            await connection.write_frame(Error("bad_request", str(exc)))
            return
        if video is None:
            await connection.write_frame(Error("not_found", names.unknown(request.name)))
        else:
            log.info("%s retitled %r at the request of %s", name, video["title"], request.user)
            await connection.write_frame(VideoInfo(video=self.master.public_video(video)))

    async def _count_view(self, connection: FrameStream, request: CountView) -> None:
        video = self.master.visible(request.name, request.user)
        if video is None:
            await connection.write_frame(Error("not_found", names.unknown(request.name)))
            return
        if not 0 < len(request.viewer) <= views.MAX_VIEWER_CHARS:
            await connection.write_frame(Error("bad_request", "The viewer id is empty or too long."))
            return
        name = video["name"]
        counted = self.master.recent_views.first_in_window(request.viewer, name, time.monotonic())
        count = self.master.index.catalogue.add_view(name) if counted else video["views"]
        await connection.write_frame(Ok({"views": count, "counted": counted}))

    async def _stat(self, connection: FrameStream, request: StatVideo) -> None:
        video = self.master.visible(request.name, request.user)
        if video is None:
            await connection.write_frame(Error("not_found", names.unknown(request.name)))
        else:
            await connection.write_frame(VideoInfo(video=self.master.public_video(video)))

    async def _delete(self, connection: FrameStream, request: DeleteVideo) -> None:
        video = await self._changeable(connection, request, permissions.may_delete, "delete")
        if video is None:
            return
        self.master.index.delete_video(video["name"], time.time())
        # The replicas go at each datanode's next heartbeat, which reports a blob the index
        # no longer knows; a node that is down now learns when it comes back.
        log.info("deleted %s (owned by %s) at the request of %s", video["name"], video["owner"], request.user)
        await connection.write_frame(Ok({"deleted": video["name"]}))

    async def _set_visibility(self, connection: FrameStream, request: SetVisibility) -> None:
        found = await self._changeable(connection, request, permissions.may_edit, "change")
        if found is None:
            return
        if request.visibility not in permissions.VISIBILITIES:
            await connection.write_frame(Error("bad_request", permissions.VISIBILITY_SENTENCE))
            return
        video = self.master.index.set_visibility(found["name"], request.visibility)
        log.info("%s made %s %s", request.user, found["name"], request.visibility)
        await connection.write_frame(VideoInfo(video=self.master.public_video(video)))

    async def _changeable(
        self,
        connection: FrameStream,
        request: UpdateVideo | DeleteVideo | SetVisibility,
        allowed: Callable[[permissions.User | None, dict], bool],
        act: str,
    ) -> dict | None:
        """The video the request names if its account may `act` on it as `allowed` says;
        else None, once the refusal is sent (not_found if it may not even see it)."""
        video = self.master.visible(request.name, request.user)
        if video is None:
            await connection.write_frame(Error("not_found", names.unknown(request.name)))
        elif not allowed(self.master.accounts.user(request.user), video):
            await connection.write_frame(Error("forbidden", names.owner_only(act)))
            video = None
        return video
