"""The master's account requests: sign-in, tokens, user management.

Theory of operation
-------------------
The web front ends ask; the master decides, with the accounts in its index (users.py)
and the rules in permissions.py. Passwords are hashed with Argon2id (argon2-cffi's
defaults, RFC 9106's second recommendation: 3 passes over 64 MiB) in a worker thread, at
most MAX_HASHES_AT_ONCE at a time, so sign-ins neither stall the master's event loop nor
take unbounded memory.

A sign-in for an unknown account is checked against a dummy hash made at start-up, so it
costs the same time as a wrong password and gets the same sentence: the answer does not
tell which names exist. (Throttling repeated attempts is the web front end's job, per IP
and per account, see web/throttle.py.) Changing one's own password takes the current one,
verified the same way, so a stolen session or token cannot lock the owner out. For the
same reason an admin's act on an admin account (making one, changing or removing one,
setting another admin's password) takes the admin's own password too
(permissions.takes_own_password); acts on other accounts need none.

The first admin account, made at start-up or from a password file, is first_admin.py's.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import argon2

from myyoutube import permissions
from myyoutube.account_messages import KEEP_QUOTA
from myyoutube.formatting import counted
from myyoutube.master import first_admin, users
from myyoutube.permissions import ADMIN, ADMIN_USER, MAX_QUOTA_BYTES, User
from myyoutube.protocol import (
    AddUser,
    EnsureAdmin,
    Error,
    ListUsers,
    Login,
    Logout,
    Ok,
    RemoveUser,
    SetPassword,
    UpdateUser,
    WhoIs,
)
from myyoutube.stream import FrameStream

if TYPE_CHECKING:
    from myyoutube.master.index import Index

log = logging.getLogger(__name__)

# Each hash holds 64 MiB and a core for tens of milliseconds; more at once would only
# queue on the CPU and multiply memory.
MAX_HASHES_AT_ONCE = 2

REFUSED_SENTENCE = "Wrong username or password."
NO_CURRENT_PASSWORD_SENTENCE = "To change your own password, give your current password too."
WRONG_CURRENT_PASSWORD_SENTENCE = "The current password you typed is wrong; your password was not changed."
FORBIDDEN_SENTENCE = "Only an admin may manage accounts."
CONFIRM_SENTENCE = "Changing an admin account takes your own password too: give your current password."
WRONG_CONFIRMATION_SENTENCE = "The password you gave as your own is wrong; nothing was changed."

_HASHER = argon2.PasswordHasher()


class Accounts:
    def __init__(self, index: Index, default_quota_bytes: int | None, data_dir: Path) -> None:
        self.index = index
        self.users = index.users
        self.default_quota_bytes = default_quota_bytes
        self.generated_password_path = data_dir / first_admin.ADMIN_PASSWORD_FILE
        self._hashing = asyncio.Semaphore(MAX_HASHES_AT_ONCE)
        # Verified against when the account does not exist, so both cost the same.
        self._dummy_hash = _HASHER.hash(secrets.token_hex(16))
        # One change of accounts at a time: a change checks (the account exists, it is
        # not the last admin) and then waits (a password hashed or verified), and two
        # changes whose waits overlapped each passed its checks on what the other then
        # changed: both of two admins demoted at once left none.
        self._changing = asyncio.Lock()

    def handlers(self) -> dict[type, Any]:
        return {
            Login: self._login,
            WhoIs: self._who_is,
            Logout: self._logout,
            AddUser: self._one_change_at_a_time(self._add_user),
            ListUsers: self._list_users,
            RemoveUser: self._one_change_at_a_time(self._remove_user),
            SetPassword: self._one_change_at_a_time(self._set_password),
            UpdateUser: self._one_change_at_a_time(self._update_user),
            EnsureAdmin: self._one_change_at_a_time(self._ensure_admin),
        }

    def _one_change_at_a_time(self, handler: Any) -> Any:
        async def changing(connection: FrameStream, request: Any) -> None:
            async with self._changing:
                await handler(connection, request)

        return changing

    def user(self, name: str) -> User | None:
        """The account `name` as the permission rules see it; None for '' or a name that
        no longer exists (a removed account is as good as anonymous)."""
        account = self.users.accounts.get(name) if name else None
        if account is None:
            return None
        quota = account["quota_bytes"] if account["quota_bytes"] is not None else self.default_quota_bytes
        if account["role"] == ADMIN or quota == MAX_QUOTA_BYTES:
            quota = None  # admins are unlimited, and so is an account given the largest quota
        return User(account["name"], account["role"], quota, self.index.stored_bytes_of(account["name"]))

    def describe(self, name: str) -> dict:
        user = self.user(name)
        assert user is not None, "described accounts exist"
        return dict(user.as_dict(), created_at=self.users.accounts[name]["created_at"])

    async def hash_password(self, password: str) -> str:
        async with self._hashing:
            return await asyncio.to_thread(_HASHER.hash, password)

    async def verify_password(self, password_hash: str, password: str) -> bool:
        """Whether `password`, as someone typed it, is the one `password_hash` holds. Only
        its first MAX_PASSWORD_CHARS + 1 characters are hashed: no password that long is
        ever set, and hashing a megabyte of one would only cost the master's CPU."""
        password = password[: users.MAX_PASSWORD_CHARS + 1]
        async with self._hashing:
            try:
                return await asyncio.to_thread(_HASHER.verify, password_hash, password)
            except argon2.exceptions.VerificationError:
                return False
            except argon2.exceptions.InvalidHashError:
                log.error("a stored password hash is malformed; that account cannot sign in")
                return False

    # --- sign-in ----------------------------------------------------------------------------

    async def _login(self, connection: FrameStream, request: Login) -> None:
        account = self.users.accounts.get(request.username)
        stored = account["password_hash"] if account is not None else self._dummy_hash
        matches = await self.verify_password(stored, request.password)
        if account is None or not matches or request.kind not in users.TOKEN_KINDS:
            await connection.write_frame(Error("refused", REFUSED_SENTENCE))
            return
        token = self.users.issue_token(account["name"], request.kind, time.time())
        log.info("%s signed in (%s)", account["name"], request.kind)
        await connection.write_frame(Ok({"token": token, "user": self.describe(account["name"])}))

    async def _who_is(self, connection: FrameStream, request: WhoIs) -> None:
        name = self.users.resolve(request.token, time.time())
        if name is None or name not in self.users.accounts:
            await connection.write_frame(Error("unauthenticated", "The session has ended; sign in again."))
            return
        await connection.write_frame(Ok({"user": self.describe(name)}))

    async def _logout(self, connection: FrameStream, request: Logout) -> None:
        self.users.revoke(request.token)
        await connection.write_frame(Ok({}))

    # --- user management ---------------------------------------------------------------------

    async def _add_user(self, connection: FrameStream, request: AddUser) -> None:
        if not permissions.may_admin(self.user(request.user)):
            await connection.write_frame(Error("forbidden", FORBIDDEN_SENTENCE))
            return
        try:
            name = users.clean_username(request.username)
            users.check_role(request.role)
            users.check_password(request.password)
            _check_quota(request.quota_bytes)
        except users.BadAccount as exc:
            await connection.write_frame(Error("bad_request", str(exc)))
            return
        try:
            # A live account first: its own videos are not a removed account's leftovers.
            self.users.check_free(name)
            left = self._left_by_removed(name)
            if left is not None:
                await connection.write_frame(Error("exists", left))
                return
            if await self._unconfirmed(connection, request, None, request.role):
                return
            password_hash = await self.hash_password(request.password)
            quota = None if request.quota_bytes == -1 else request.quota_bytes
            # Checked again: another request may have added it while this one hashed.
            self.users.add(name, password_hash, request.role, quota, time.time())
        except users.AccountExists as exc:
            await connection.write_frame(Error("exists", exc.sentence()))
            return
        log.info("%s added the account %s (%s)", request.user, name, request.role)
        await connection.write_frame(Ok({"user": self.describe(name)}))

    def _left_by_removed(self, name: str) -> str | None:
        """Why `name` may not be given to a new account: a removed account of that name
        left videos or unfinished uploads behind, and they belong to whoever holds the
        name (a new "alice" would get the old one's private videos); None if it may."""
        videos = sum(1 for video in self.index.videos.values() if video["owner"] == name)
        uploads = sum(1 for session in self.index.upload_sessions.sessions.values() if session.owner == name)
        if not videos and not uploads:
            return None
        return (
            f"A removed account named \u201c{name}\u201d still owns {counted(videos, 'video')} and "
            f"{counted(uploads, 'unfinished upload')}, which a new account of that name would get; choose another "
            "name, or delete those videos first (unfinished uploads end when they expire)."
        )

    async def _list_users(self, connection: FrameStream, request: ListUsers) -> None:
        if not permissions.may_admin(self.user(request.user)):
            await connection.write_frame(Error("forbidden", FORBIDDEN_SENTENCE))
            return
        listed = [
            dict(self.describe(name), sessions=self.users.sessions_of(name))
            for name in sorted(self.users.accounts)
        ]
        await connection.write_frame(Ok({"users": listed}))

    async def _administered(self, connection: FrameStream, request: RemoveUser | UpdateUser) -> dict | None:
        """The account an admin's request names; None once the refusal is answered (the
        asker is no admin, or there is no such account)."""
        if not permissions.may_admin(self.user(request.user)):
            await connection.write_frame(Error("forbidden", FORBIDDEN_SENTENCE))
            return None
        account = self.users.accounts.get(request.username)
        if account is None:
            await connection.write_frame(Error("not_found", "There is no account by that name."))
        return account

    def _is_last_admin(self, account: dict) -> bool:
        admins = sum(1 for other in self.users.accounts.values() if other["role"] == ADMIN)
        return account["role"] == ADMIN and admins == 1

    async def _remove_user(self, connection: FrameStream, request: RemoveUser) -> None:
        account = await self._administered(connection, request)
        if account is None:
            return
        if self._is_last_admin(account):
            await connection.write_frame(
                Error("bad_request", "This is the last admin account; add another admin before removing it.")
            )
            return
        if await self._unconfirmed(connection, request, account["role"], None):
            return
        self.users.remove(request.username)
        log.warning("%s removed the account %s; its videos stay", request.user, request.username)
        await connection.write_frame(Ok({"removed": request.username}))

    async def _update_user(self, connection: FrameStream, request: UpdateUser) -> None:
        account = await self._administered(connection, request)
        if account is None:
            return
        role = request.role or account["role"]
        quota = account["quota_bytes"] if request.quota_bytes == KEEP_QUOTA else request.quota_bytes
        try:
            users.check_role(role)
            if quota is not None:
                _check_quota(quota)
        except users.BadAccount as exc:
            await connection.write_frame(Error("bad_request", str(exc)))
            return
        if role != ADMIN and self._is_last_admin(account):
            await connection.write_frame(
                Error("bad_request", "This is the last admin account; make another account an admin first.")
            )
            return
        if await self._unconfirmed(connection, request, account["role"], role):
            return
        self.users.update(request.username, role, None if quota == -1 else quota)
        log.warning("%s set the account %s to %s, quota %s", request.user, request.username, role, quota)
        await connection.write_frame(Ok({"user": self.describe(request.username)}))

    async def _set_password(self, connection: FrameStream, request: SetPassword) -> None:
        if not permissions.may_change_password(self.user(request.user), request.username):
            await connection.write_frame(Error("forbidden", "You may change only your own password."))
            return
        account = self.users.accounts.get(request.username)
        if account is None:
            await connection.write_frame(Error("not_found", "There is no account by that name."))
            return
        try:
            # Before the current password is checked: a refused new password must not tell
            # a guesser whether the current one was right.
            users.check_password(request.password)
        except users.BadAccount as exc:
            await connection.write_frame(Error("bad_request", str(exc)))
            return
        if request.user == request.username:
            refusal = await self._current_password_refusal(account["password_hash"], request.current_password)
            if refusal is not None:
                await connection.write_frame(Error("refused", refusal))
                return
        elif await self._unconfirmed(connection, request, account["role"], account["role"]):
            return
        await self.replace_password(request.username, request.password)
        log.info("%s changed the password of %s; its sessions ended", request.user, request.username)
        await connection.write_frame(Ok({"changed": request.username}))

    async def _unconfirmed(
        self,
        connection: FrameStream,
        request: AddUser | RemoveUser | UpdateUser | SetPassword,
        role_before: str | None,
        role_after: str | None,
    ) -> bool:
        """Whether the act was refused (and the refusal answered) for want of the asking
        admin's own password: an act on an admin account takes it, checked as a sign-in
        is (the web throttles these tries with sign-ins). One given for any other act is
        checked all the same: the web takes a success as a right password, which clears
        the asker's throttle, so an unchecked one would let a guesser start afresh."""
        if not request.current_password:
            if not permissions.takes_own_password(role_before, role_after):
                return False
            await connection.write_frame(Error("confirm", CONFIRM_SENTENCE))
            return True
        asker = self.users.accounts.get(request.user)
        if asker is None or not await self.verify_password(asker["password_hash"], request.current_password):
            await connection.write_frame(Error("refused", WRONG_CONFIRMATION_SENTENCE))
            return True
        return False

    async def _current_password_refusal(self, password_hash: str, current_password: str) -> str | None:
        """Why one's own password may not be changed with `current_password`; None if it
        is the account's password. Checked as a sign-in is (and throttled by the web as a
        sign-in is): whoever holds a session must still know the password to replace it."""
        if not current_password:
            return NO_CURRENT_PASSWORD_SENTENCE
        if not await self.verify_password(password_hash, current_password):
            return WRONG_CURRENT_PASSWORD_SENTENCE
        return None

    async def replace_password(self, name: str, password: str) -> None:
        self.users.set_password(name, await self.hash_password(password))
        if name == ADMIN_USER:
            self.generated_password_path.unlink(missing_ok=True)

    # --- the first admin ------------------------------------------------------------------

    async def _ensure_admin(self, connection: FrameStream, request: EnsureAdmin) -> None:
        try:
            users.check_password(request.password)
        except users.BadAccount as exc:
            await connection.write_frame(Error("bad_request", f"The admin password file is unusable: {exc}"))
            return
        changed = await first_admin.ensure_admin(self, request.password)
        await connection.write_frame(Ok({"changed": changed}))


def _check_quota(quota_bytes: int) -> None:
    """BadAccount unless a quota (-1: the master's default) fits the index: past 2^63-1 it
    cannot store it. The web checks too, but not every client goes through the web."""
    if not -1 <= quota_bytes <= permissions.MAX_QUOTA_BYTES:
        raise users.BadAccount("A quota is a number of bytes, 0 or more, at most 2^63-1.")
