"""Who may do what: roles, per-video visibility and ownership, quotas (pure, no I/O).

Theory of operation
-------------------
Every decision about who may see or change a video, upload, or manage the cluster is one
function here, taking the acting `User` (None for an anonymous visitor) and the video's
record (a dict with at least `owner` and `visibility`). The web front end asks these
functions to decide what to show and what to refuse early; the master asks the same
functions again before it acts (defence in depth: a bug in the web cannot leak a private
video or delete someone else's).

Roles, from most to least trusted: `admin` (everything, manages users), `uploader`
(uploads; edits and deletes the videos it owns), `viewer` (watches). Anonymous visitors
watch public and unlisted videos, unless the instance is private (`--private`): then
everything needs a sign-in.

Visibility: `public` (listed, searchable), `unlisted` (watchable by anyone with the link,
never listed for others), `private` (its owner and admins only). An owner keeps the right
to edit and delete its own videos even if demoted to viewer: the video is still theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from myyoutube.formatting import BadSize, human_size, parse_size

ADMIN, UPLOADER, VIEWER = "admin", "uploader", "viewer"
ROLES = (ADMIN, UPLOADER, VIEWER)

PUBLIC, UNLISTED, PRIVATE = "public", "unlisted", "private"
VISIBILITIES = (PUBLIC, UNLISTED, PRIVATE)
# What a request naming another visibility is told.
VISIBILITY_SENTENCE = f"The visibility must be one of {', '.join(VISIBILITIES)}."

# The largest quota: the index keeps it as a SQLite INTEGER, a signed 64-bit number
# (8 EiB, far past any disk); JSON numbers have no bound of their own. It is also how
# one account is given no limit while the master's default applies to the others
# (`myyoutube user set NAME --quota-bytes unlimited`): such an account is unlimited.
MAX_QUOTA_BYTES = 2**63 - 1
# How an operator writes "no quota" (`--quota-bytes unlimited`), for the master's default
# and for one account alike.
UNLIMITED = "unlimited"

# The account that owns every video stored before accounts existed, and the first admin.
ADMIN_USER = "admin"


def parse_quota(text: str) -> int | None:
    """A quota as an operator writes it: a size (formatting.parse_size: 20GiB), or None
    for UNLIMITED. BadSize, in a sentence that names UNLIMITED too, for anything else or
    for more than the index holds (MAX_QUOTA_BYTES: a larger quota once made the master
    drop its link to the web, which then said the cluster was not answering)."""
    if text == UNLIMITED:
        return None
    try:
        size = parse_size(text)
    except BadSize as exc:
        raise BadSize(f"{exc} (or {UNLIMITED}, for no quota)") from None
    if size > MAX_QUOTA_BYTES:
        raise BadSize(f"expected at most {MAX_QUOTA_BYTES} bytes, or {UNLIMITED}; got {text!r}")
    return size


@dataclass(frozen=True)
class User:
    """A signed-in account. `quota_bytes` None means unlimited."""

    name: str
    role: str
    quota_bytes: int | None = None
    used_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "quota_bytes": self.quota_bytes,
            "used_bytes": self.used_bytes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> User:
        return cls(data["name"], data["role"], data.get("quota_bytes"), data.get("used_bytes", 0))


def is_admin(user: User | None) -> bool:
    return user is not None and user.role == ADMIN


def owns(user: User | None, video: dict) -> bool:
    return user is not None and video.get("owner") == user.name


def may_view(user: User | None, video: dict, private_instance: bool = False) -> bool:
    """May `user` watch `video` (stream it, see its page and record)?"""
    if user is None and private_instance:
        return False
    if video.get("visibility") in (PUBLIC, UNLISTED):
        return True
    return owns(user, video) or is_admin(user)


def may_list(user: User | None, video: dict, private_instance: bool = False) -> bool:
    """Is `video` in the listings and search results `user` sees? Public videos for
    everyone who may watch them; unlisted and private ones only for the owner and admins."""
    if not may_view(user, video, private_instance):
        return False
    return video.get("visibility") == PUBLIC or owns(user, video) or is_admin(user)


def may_ask(user: User | None, private_instance: bool) -> bool:
    """May `user` make any request of a video at all? On a private instance only a
    signed-in account may (the master refuses anonymous requests itself, whatever the web
    front end in between does)."""
    return user is not None or not private_instance


def may_edit(user: User | None, video: dict) -> bool:
    """May `user` change the title, description or visibility of `video`?"""
    return owns(user, video) or is_admin(user)


def may_delete(user: User | None, video: dict) -> bool:
    return owns(user, video) or is_admin(user)


def may_upload(user: User | None) -> bool:
    return user is not None and user.role in (ADMIN, UPLOADER)


def may_admin(user: User | None) -> bool:
    """Cluster status, metrics, orphan purges and user management."""
    return is_admin(user)


def may_change_password(user: User | None, account: str) -> bool:
    """Admins set anyone's password; everyone else only their own."""
    return is_admin(user) or (user is not None and user.name == account)


def takes_own_password(role_before: str | None, role_after: str | None) -> bool:
    """Whether an admin's act on an account that has `role_before` (None: made now) and
    will have `role_after` (None: removed) takes the admin's own password again. Acts on
    admin accounts do: a stolen admin session could otherwise make an admin of its own,
    then set the owner's password or remove the owner, i.e. lock the owner out, which
    changing one's own password (it takes the current one) was meant to prevent."""
    return ADMIN in (role_before, role_after)


def within_quota(user: User, incoming_bytes: int) -> bool:
    """Would storing `incoming_bytes` more keep `user` within its quota? Admins and
    accounts without a quota are unlimited."""
    if user.role == ADMIN or user.quota_bytes is None:
        return True
    return user.used_bytes + incoming_bytes <= user.quota_bytes


def quota_sentence(user: User) -> str:
    """Why an upload over `user`'s quota is refused, for the user."""
    return (
        f"This upload would take your account past its {human_size(user.quota_bytes or 0)} quota "
        f"({human_size(user.used_bytes)} used); delete some videos or ask an admin for more room."
    )
