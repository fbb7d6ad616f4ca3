"""Accounts in the master's index: users, their password hashes, and sign-in tokens.

Theory of operation
-------------------
The master owns the accounts, so every web front end of a cluster sees the same users
and a logout or password change takes effect everywhere at once. Users and tokens live in
the index's SQLite database (tables `users` and `tokens`, migration 2) and are mirrored
in memory, so checking a token on every HTTP request is a dictionary lookup.

A password is stored only as an Argon2id hash (argon2-cffi; the caller hashes, in a worker
thread, since a hash costs tens of milliseconds and 64 MiB on purpose). A token is 32
random bytes shown once to its holder; the index keeps only its SHA-256, so a copy of the
index signs nobody in. Each token has a kind: a `browser-session` lapses after
SESSION_IDLE_S without use, an `api-token` (the command-line client's) after
API_TOKEN_IDLE_S. Use is written to disk at most every TOKEN_TOUCH_S per token, so a
stream of requests costs no fsync each. Changing a password or removing a user revokes
every token of the account in the same transaction. An account holds at most
MAX_TOKENS_PER_ACCOUNT tokens: a new one beyond that revokes the one that would lapse first.

A name is NFKC-normalised, and one that looks like an existing account's (equal Unicode
confusable skeletons, lookalikes.py: "adrnin" beside "admin") is refused.

`clean_username` and `check_password` are the account rules, pure and shared with tests.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import unicodedata
from collections.abc import Callable
from contextlib import AbstractContextManager

from myyoutube import lookalikes
from myyoutube.permissions import ROLES

# 32 random bytes: guessing one is as hopeless as guessing a 256-bit key.
TOKEN_BYTES = 32
BROWSER_SESSION, API_TOKEN = "browser-session", "api-token"
TOKEN_KINDS = (BROWSER_SESSION, API_TOKEN)
# A browser left alone for two weeks signs in again; a script's token lasts half a year
# of disuse (each use renews both).
SESSION_IDLE_S = 14 * 24 * 3600.0
API_TOKEN_IDLE_S = 180 * 24 * 3600.0
_IDLE_S = {BROWSER_SESSION: SESSION_IDLE_S, API_TOKEN: API_TOKEN_IDLE_S}
# Renewing a token's expiry is written to the index at most this often per token.
TOKEN_TOUCH_S = 60.0
# Tokens one account holds at once: a browser per device and a few scripts fit many times
# over. Without a bound, a loop of sign-ins with one password (~40 a second, the hashing's
# pace) added millions of tokens a day to the index and to the master's memory.
MAX_TOKENS_PER_ACCOUNT = 100

# Usernames appear in URLs, logs and the CLI: short, lower-case, unambiguous.
USERNAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
# NIST SP 800-63B asks for at least 8 characters and no other composition rules.
MIN_PASSWORD_CHARS = 8
# Argon2 hashes any length, but the work must stay bounded per request.
MAX_PASSWORD_CHARS = 1024


class BadAccount(ValueError):
    """A username, password or role that cannot be used; str(exc) is for the user."""


class AccountExists(Exception):
    """`name` is taken, or looks like the existing account `existing`."""

    def __init__(self, name: str, existing: str) -> None:
        super().__init__(name)
        self.name, self.existing = name, existing

    def sentence(self) -> str:
        if self.name == self.existing:
            return f"An account named \u201c{self.name}\u201d already exists."
        return (
            f"The name \u201c{self.name}\u201d looks like the existing account "
            f"\u201c{self.existing}\u201d; choose a name that cannot be mistaken for it."
        )


def clean_username(raw: str) -> str:
    """The account name as stored: NFKC-normalised (a full-width "ａｄｍｉｎ" is "admin")
    and checked against USERNAME_RE."""
    name = unicodedata.normalize("NFKC", raw).strip()
    if not USERNAME_RE.fullmatch(name):
        raise BadAccount(
            "A username is 1 to 32 characters: lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    return name


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise BadAccount(f"A password needs at least {MIN_PASSWORD_CHARS} characters.")
    if len(password) > MAX_PASSWORD_CHARS:
        raise BadAccount(f"A password has at most {MAX_PASSWORD_CHARS} characters.")


def check_role(role: str) -> None:
    if role not in ROLES:
        raise BadAccount(f"The role must be one of {', '.join(ROLES)}.")


def token_digest(token: str) -> str:
    """What the index keeps of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


class Users:
    """The accounts and tokens of one index: `accounts` maps a name to its row (name,
    password_hash, role, quota_bytes, created_at)."""

    def __init__(self, db: sqlite3.Connection, transaction: Callable[[], AbstractContextManager]) -> None:
        self._db, self._transaction = db, transaction
        self.accounts: dict[str, dict] = {}
        for name, password_hash, role, quota_bytes, created_at in db.execute(
            "SELECT name, password_hash, role, quota_bytes, created_at FROM users"
        ):
            self.accounts[name] = {
                "name": name,
                "password_hash": password_hash,
                "role": role,
                "quota_bytes": quota_bytes,
                "created_at": created_at,
            }
        # Look-alike names are refused (lookalikes.py): skeleton -> the account that has it.
        self._lookalikes = lookalikes.Lookalikes()
        # token digest -> [user, kind, expires_at, last written expiry]
        self._tokens: dict[str, list] = {
            digest: [user, kind, expires_at, expires_at]
            for digest, user, kind, expires_at in db.execute(
                "SELECT digest, user, kind, expires_at FROM tokens"
            )
        }

    def check_free(self, name: str) -> None:
        """AccountExists if `name`, or a name that looks like it, is taken."""
        existing = name if name in self.accounts else self._lookalikes.find(name, self.accounts.keys())
        if existing is not None:
            raise AccountExists(name, existing)

    def add(self, name: str, password_hash: str, role: str, quota_bytes: int | None, now: float) -> dict:
        self.check_free(name)
        with self._transaction():
            self._db.execute(
                "INSERT INTO users (name, password_hash, role, quota_bytes, created_at) VALUES (?, ?, ?, ?, ?)",
                (name, password_hash, role, quota_bytes, now),
            )
        account = {
            "name": name,
            "password_hash": password_hash,
            "role": role,
            "quota_bytes": quota_bytes,
            "created_at": now,
        }
        self.accounts[name] = account
        return account

    def remove(self, name: str) -> bool:
        """Remove an account and every token it holds; False if there was none."""
        if name not in self.accounts:
            return False
        with self._transaction():
            self._db.execute("DELETE FROM tokens WHERE user = ?", (name,))
            self._db.execute("DELETE FROM users WHERE name = ?", (name,))
        del self.accounts[name]
        self._forget_tokens_of(name)
        return True

    def update(self, name: str, role: str, quota_bytes: int | None) -> dict:
        """Set an account's role and quota (None: the master's default)."""
        with self._transaction():
            self._db.execute(
                "UPDATE users SET role = ?, quota_bytes = ? WHERE name = ?", (role, quota_bytes, name)
            )
        account = self.accounts[name]
        account.update(role=role, quota_bytes=quota_bytes)
        return account

    def set_password(self, name: str, password_hash: str) -> None:
        """A new password hash; every token of the account is revoked with it."""
        with self._transaction():
            self._db.execute("UPDATE users SET password_hash = ? WHERE name = ?", (password_hash, name))
            self._db.execute("DELETE FROM tokens WHERE user = ?", (name,))
        self.accounts[name]["password_hash"] = password_hash
        self._forget_tokens_of(name)

    def _forget_tokens_of(self, name: str) -> None:
        for digest in [d for d, token in self._tokens.items() if token[0] == name]:
            del self._tokens[digest]

    def issue_token(self, name: str, kind: str, now: float) -> str:
        """A new token for `name`, shown to its holder once; only its digest is kept."""
        token = secrets.token_hex(TOKEN_BYTES)
        digest, expires_at = token_digest(token), now + _IDLE_S[kind]
        held = [(entry[2], held_digest) for held_digest, entry in self._tokens.items() if entry[0] == name]
        excess = max(0, len(held) + 1 - MAX_TOKENS_PER_ACCOUNT)
        lapsing = [held_digest for _, held_digest in sorted(held)[:excess]]
        with self._transaction():
            self._db.executemany("DELETE FROM tokens WHERE digest = ?", [(d,) for d in lapsing])
            self._db.execute(
                "INSERT INTO tokens (digest, user, kind, created_at, last_used, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (digest, name, kind, now, now, expires_at),
            )
        for held_digest in lapsing:
            del self._tokens[held_digest]
        self._tokens[digest] = [name, kind, expires_at, expires_at]
        return token

    def resolve(self, token: str, now: float) -> str | None:
        """The account a token signs in (renewing its expiry), or None if it is unknown,
        revoked or expired."""
        digest = token_digest(token)
        entry = self._tokens.get(digest)
        if entry is None:
            return None
        name, kind, expires_at, written = entry
        if now >= expires_at:
            self.revoke(token)
            return None
        entry[2] = now + _IDLE_S[kind]
        if entry[2] - written >= TOKEN_TOUCH_S:
            with self._transaction():
                self._db.execute(
                    "UPDATE tokens SET last_used = ?, expires_at = ? WHERE digest = ?",
                    (now, entry[2], digest),
                )
            entry[3] = entry[2]
        return name

    def revoke(self, token: str) -> None:
        digest = token_digest(token)
        if self._tokens.pop(digest, None) is not None:
            with self._transaction():
                self._db.execute("DELETE FROM tokens WHERE digest = ?", (digest,))

    def prune_expired(self, now: float) -> None:
        """Forget tokens past their expiry (bounds the table)."""
        expired = [d for d, token in self._tokens.items() if token[2] <= now]
        if expired:
            with self._transaction():
                self._db.executemany("DELETE FROM tokens WHERE digest = ?", [(d,) for d in expired])
            for digest in expired:
                del self._tokens[digest]

    def sessions_of(self, name: str) -> int:
        return sum(1 for token in self._tokens.values() if token[0] == name)
