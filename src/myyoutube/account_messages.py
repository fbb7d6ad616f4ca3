"""Web -> master messages about accounts and sign-in (codes 50-59).

Theory of operation
-------------------
Part of the protocol's vocabulary (messages.py says how a class becomes a frame).
Passwords travel only inside the cluster's authenticated connections and are never
logged; the master keeps only a SHA-256 of each session token.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

# Web -> master: accounts (codes 50-59). Passwords travel only inside the cluster's
# authenticated connections and are never logged; tokens are 32 random bytes in hex, of
# which the master keeps only a SHA-256.


@dataclass(frozen=True)
class Login:
    """Check a password and open a session; `kind` is 'browser-session' or 'api-token'.
    Answered by Ok({"token": ..., "user": {...}}) or Error('refused'), the same refusal
    for an unknown account and a wrong password."""

    TYPE: typing.ClassVar[int] = 50
    username: str
    password: str
    kind: str


@dataclass(frozen=True)
class WhoIs:
    """Which account does this token sign in? Ok({"user": {...}}) or Error('unauthenticated')."""

    TYPE: typing.ClassVar[int] = 51
    token: str


@dataclass(frozen=True)
class Logout:
    """Revoke a token (at once, for every web front end); Ok even if it was unknown."""

    TYPE: typing.ClassVar[int] = 52
    token: str


@dataclass(frozen=True)
class AddUser:
    """An admin (`user`) creates an account; `quota_bytes` -1 means the master's default.
    An admin account takes the asker's own password too (`current_password`, see
    permissions.takes_own_password). Ok({"user": {...}}), or
    Error('exists'/'bad_request'/'forbidden'/'confirm'/'refused')."""

    TYPE: typing.ClassVar[int] = 53
    user: str
    username: str
    password: str
    role: str
    quota_bytes: int
    current_password: str = ""


@dataclass(frozen=True)
class ListUsers:
    """An admin asks for every account: Ok({"users": [{...}, ...]})."""

    TYPE: typing.ClassVar[int] = 54
    user: str


@dataclass(frozen=True)
class RemoveUser:
    """An admin removes an account; its sessions end, its videos stay (owned by the name).
    An admin account takes the asker's own password too (`current_password`)."""

    TYPE: typing.ClassVar[int] = 55
    user: str
    username: str
    current_password: str = ""


@dataclass(frozen=True)
class UpdateUser:
    """An admin changes an account's role and/or quota: `role` '' keeps it; `quota_bytes`
    KEEP_QUOTA keeps it, -1 gives the master's default, 0 or more sets it. Takes effect
    on the account's next request (every request asks who its token is). An admin
    account, or one made admin, takes the asker's own password too (`current_password`).
    Ok({"user": {...}}), or Error('not_found'/'bad_request'/'forbidden'/'confirm'/'refused')."""

    TYPE: typing.ClassVar[int] = 59
    user: str
    username: str
    role: str = ""
    quota_bytes: int = -2
    current_password: str = ""


# UpdateUser.quota_bytes that leaves the quota as it is.
KEEP_QUOTA = -2


@dataclass(frozen=True)
class SetPassword:
    """An admin, or the account itself, sets a new password; every session of the
    account ends. Changing one's own password takes the current one too
    (`current_password`, checked as a sign-in checks it), so a stolen session or token
    cannot lock the owner out. An admin setting another admin's password gives its own
    (`current_password`) for the same reason; any other account's needs none. A wrong
    one: Error('refused'); a missing one: Error('refused') for one's own, Error('confirm')
    for another admin's."""

    TYPE: typing.ClassVar[int] = 56
    user: str
    username: str
    password: str
    current_password: str = ""


@dataclass(frozen=True)
class SetVisibility:
    """The owner or an admin changes who may see a video; answered by VideoInfo."""

    TYPE: typing.ClassVar[int] = 57
    user: str
    name: str
    visibility: str


@dataclass(frozen=True)
class EnsureAdmin:
    """A web front end started with --admin-password-file: create the `admin` account
    with this password, or reset it if it has another. Ok({"changed": bool})."""

    TYPE: typing.ClassVar[int] = 58
    password: str
