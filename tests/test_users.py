"""Tests for myyoutube.master.users: accounts and tokens in a real index file, across
reopens; the account rules. No processes (hashes are stand-ins: hashing is accounts.py's)."""

from __future__ import annotations

import sqlite3

import pytest

from myyoutube.master import users
from myyoutube.master.index import Index

NOW = 1_800_000_000.0


@pytest.fixture
def index(tmp_path):
    opened = Index(tmp_path / "index.sqlite3", NOW)
    yield opened
    opened.close()


def test_tokens_are_stored_only_as_digests(tmp_path, index):
    """A token signs its account in, and the index file never holds the token itself."""
    index.users.add("olga", "hash-1", "uploader", None, NOW)
    token = index.users.issue_token("olga", users.BROWSER_SESSION, NOW)
    assert len(token) == 2 * users.TOKEN_BYTES
    assert index.users.resolve(token, NOW + 1) == "olga"
    assert token.encode() not in (tmp_path / "index.sqlite3").read_bytes()
    with sqlite3.connect(tmp_path / "index.sqlite3") as db:
        assert db.execute("SELECT digest FROM tokens").fetchone()[0] == users.token_digest(token)
    assert index.users.resolve("0" * 64, NOW) is None


def test_sessions_end_on_logout_password_change_and_removal(index):
    """Revoking a token, changing the password (every token of the account) and removing
    the account each end sessions at once; other accounts keep theirs."""
    for name in ("olga", "vera"):
        index.users.add(name, "hash", "viewer", None, NOW)
    first, second = (index.users.issue_token("olga", users.API_TOKEN, NOW) for _ in range(2))
    other = index.users.issue_token("vera", users.API_TOKEN, NOW)
    index.users.revoke(first)
    assert index.users.resolve(first, NOW) is None and index.users.resolve(second, NOW) == "olga"
    index.users.set_password("olga", "new hash")
    assert index.users.resolve(second, NOW) is None
    third = index.users.issue_token("olga", users.API_TOKEN, NOW)
    assert index.users.remove("olga") and index.users.resolve(third, NOW) is None
    assert index.users.resolve(other, NOW) == "vera"


def test_an_account_holds_a_bounded_number_of_tokens(index):
    """Signing in again and again keeps at most MAX_TOKENS_PER_ACCOUNT tokens of the account:
    each new one past that revokes the one that would lapse first (a browser session left
    alone before an API token in use); other accounts keep theirs."""
    for name in ("olga", "vera"):
        index.users.add(name, "hash", "uploader", None, NOW)
    other = index.users.issue_token("vera", users.BROWSER_SESSION, NOW)
    first = index.users.issue_token("olga", users.BROWSER_SESSION, NOW)
    kept = [
        index.users.issue_token("olga", users.API_TOKEN, NOW + n) for n in range(users.MAX_TOKENS_PER_ACCOUNT)
    ]
    assert index.users.sessions_of("olga") == users.MAX_TOKENS_PER_ACCOUNT
    assert index.users.resolve(first, NOW + 1) is None
    assert all(index.users.resolve(token, NOW + 1) == "olga" for token in kept)
    assert index.users.resolve(other, NOW + 1) == "vera"


def test_idle_tokens_expire_and_use_renews_them(tmp_path):
    """A browser session lapses SESSION_IDLE_S after its last use; using it renews it, and
    the renewal survives a reopen."""
    path = tmp_path / "index.sqlite3"
    index = Index(path, NOW)
    index.users.add("olga", "hash", "viewer", None, NOW)
    token = index.users.issue_token("olga", users.BROWSER_SESSION, NOW)
    later = NOW + users.SESSION_IDLE_S - 10
    assert index.users.resolve(token, later) == "olga"
    index.close()
    reopened = Index(path, NOW)
    assert reopened.users.resolve(token, later + users.SESSION_IDLE_S - 10) == "olga"
    assert reopened.users.resolve(token, later + 3 * users.SESSION_IDLE_S) is None
    reopened.close()


def test_accounts_survive_a_reopen_and_expired_tokens_are_pruned(tmp_path):
    """Accounts are durable; pruning forgets only expired tokens."""
    path = tmp_path / "index.sqlite3"
    index = Index(path, NOW)
    index.users.add("olga", "hash", "uploader", 1000, NOW)
    old = index.users.issue_token("olga", users.BROWSER_SESSION, NOW)
    fresh = index.users.issue_token("olga", users.API_TOKEN, NOW)
    index.users.prune_expired(NOW + users.SESSION_IDLE_S + 1)
    index.close()
    reopened = Index(path, NOW)
    assert reopened.users.accounts["olga"]["quota_bytes"] == 1000
    assert reopened.users.sessions_of("olga") == 1
    assert reopened.users.resolve(old, NOW) is None and reopened.users.resolve(fresh, NOW) == "olga"
    reopened.close()


@pytest.mark.parametrize("name", ["", "Olga", "o" * 33, "-olga", "ol ga", "olga/x", "\u043eлга"])
def test_bad_usernames_are_refused(name):
    """Usernames are 1-32 lower-case ASCII letters, digits, '.', '_' or '-'."""
    with pytest.raises(users.BadAccount):
        users.clean_username(name)


def test_password_and_role_rules():
    """A password has 8 to 1024 characters; a role is one of the three."""
    users.check_password("x" * 8)
    for bad in ("x" * 7, "x" * 1025):
        with pytest.raises(users.BadAccount):
            users.check_password(bad)
    with pytest.raises(users.BadAccount):
        users.check_role("root")


def test_look_alike_account_names_are_refused(tmp_path):
    """An account whose name looks like an existing one ("adrnin" beside "admin", "o1ga"
    beside "olga") is refused naming the existing account; removing the account frees
    its look-alikes; the rule holds after a reopen."""
    path = tmp_path / "index.sqlite3"
    index = Index(path, NOW)
    index.users.add("admin", "hash", "admin", None, NOW)
    index.users.add("olga", "hash", "viewer", None, NOW)
    with pytest.raises(users.AccountExists) as refused:
        index.users.add("adrnin", "hash", "uploader", None, NOW)
    assert refused.value.sentence() == (
        "The name \u201cadrnin\u201d looks like the existing account \u201cadmin\u201d; "
        "choose a name that cannot be mistaken for it."
    )
    index.close()
    index = Index(path, NOW)
    with pytest.raises(users.AccountExists, match="o1ga"):
        index.users.add("o1ga", "hash", "viewer", None, NOW)
    assert index.users.remove("olga")
    index.users.add("o1ga", "hash", "viewer", None, NOW)
    index.close()


def test_usernames_are_nfkc_normalised():
    """A full-width name is the plain one: it cannot pose as a different account."""
    assert users.clean_username("\uff41\uff44\uff4d\uff49\uff4e") == "admin"
