"""Pure tests of myyoutube.permissions: every visitor against every visibility, on an open
and on a private instance, from a table written out by hand (not recomputed)."""

from __future__ import annotations

import itertools

import pytest

from myyoutube import permissions
from myyoutube.formatting import BadSize
from myyoutube.permissions import User

VISITORS = {
    "anonymous": None,
    "viewer": User("vera", "viewer"),
    "uploader": User("ulla", "uploader"),
    "owner": User("olga", "uploader"),
    "demoted owner": User("olga", "viewer"),
    "admin": User("root", "admin"),
}

# (visitor, visibility): (watch on an open instance, watch on a private one, listed, edit/delete)
TABLE = {
    ("anonymous", "public"): (True, False, True, False),
    ("anonymous", "unlisted"): (True, False, False, False),
    ("anonymous", "private"): (False, False, False, False),
    ("viewer", "public"): (True, True, True, False),
    ("viewer", "unlisted"): (True, True, False, False),
    ("viewer", "private"): (False, False, False, False),
    ("uploader", "public"): (True, True, True, False),
    ("uploader", "unlisted"): (True, True, False, False),
    ("uploader", "private"): (False, False, False, False),
    ("owner", "public"): (True, True, True, True),
    ("owner", "unlisted"): (True, True, True, True),
    ("owner", "private"): (True, True, True, True),
    ("demoted owner", "public"): (True, True, True, True),
    ("demoted owner", "unlisted"): (True, True, True, True),
    ("demoted owner", "private"): (True, True, True, True),
    ("admin", "public"): (True, True, True, True),
    ("admin", "unlisted"): (True, True, True, True),
    ("admin", "private"): (True, True, True, True),
}


def test_the_table_covers_every_combination():
    """No visitor/visibility pair is left undecided by the table below."""
    assert set(TABLE) == set(itertools.product(VISITORS, permissions.VISIBILITIES))


@pytest.mark.parametrize(("visitor", "visibility"), sorted(TABLE))
def test_video_permissions(visitor, visibility):
    """Who may watch, find and change a video of olga's, by visibility and instance mode."""
    user = VISITORS[visitor]
    video = {"name": "cat.mp4", "owner": "olga", "visibility": visibility}
    watch_open, watch_private, listed, change = TABLE[visitor, visibility]
    assert permissions.may_view(user, video) is watch_open
    assert permissions.may_view(user, video, private_instance=True) is watch_private
    assert permissions.may_list(user, video) is listed
    assert permissions.may_list(user, video, private_instance=True) is (listed and watch_private)
    assert permissions.may_edit(user, video) is change
    assert permissions.may_delete(user, video) is change


# visitor: (upload, administer, change vera's password)
ACCOUNT_TABLE = {
    "anonymous": (False, False, False),
    "viewer": (False, False, True),
    "uploader": (True, False, False),
    "owner": (True, False, False),
    "demoted owner": (False, False, False),
    "admin": (True, True, True),
}


@pytest.mark.parametrize("visitor", sorted(ACCOUNT_TABLE))
def test_account_permissions(visitor):
    """Uploads need the uploader or admin role; only admins administer; a password is
    changed by its own account or an admin."""
    user = VISITORS[visitor]
    upload, administer, vera_password = ACCOUNT_TABLE[visitor]
    assert permissions.may_upload(user) is upload
    assert permissions.may_admin(user) is administer
    assert permissions.may_change_password(user, "vera") is vera_password


@pytest.mark.parametrize(
    ("user", "incoming", "allowed"),
    [
        (User("u", "uploader", quota_bytes=100, used_bytes=60), 40, True),
        (User("u", "uploader", quota_bytes=100, used_bytes=60), 41, False),
        (User("u", "uploader", quota_bytes=None, used_bytes=10**15), 10**12, True),
        (User("a", "admin", quota_bytes=100, used_bytes=100), 10**12, True),
        (User("u", "uploader", quota_bytes=0), 1, False),
    ],
)
def test_quota(user, incoming, allowed):
    """An upload fits when used + incoming stays within the quota; admins and accounts
    without a quota are unlimited."""
    assert permissions.within_quota(user, incoming) is allowed


def test_user_round_trips_through_a_dict():
    """What the master sends about a user is what the web reads back."""
    user = User("olga", "uploader", 5, 3)
    assert User.from_dict(user.as_dict()) == user


def test_the_listing_sql_agrees_with_may_list():
    """The SQL condition the catalogue pages with (listing.visibility_condition) lists
    exactly what may_list allows, for every visitor and visibility."""
    import sqlite3

    from myyoutube import listing

    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE videos (name TEXT, owner TEXT, visibility TEXT)")
    videos = [
        {"name": f"{owner}-{visibility}", "owner": owner, "visibility": visibility}
        for owner in ("olga", "root")
        for visibility in permissions.VISIBILITIES
    ]
    db.executemany("INSERT INTO videos VALUES (:name, :owner, :visibility)", videos)
    for user in VISITORS.values():
        sql, params = listing.visibility_condition(user)
        listed = {row[0] for row in db.execute(f"SELECT v.name FROM videos v WHERE {sql}", params)}
        assert listed == {v["name"] for v in videos if permissions.may_list(user, v)}, user


def test_a_private_instance_answers_only_signed_in_accounts():
    """On a private instance anonymous requests are refused outright; otherwise anyone may
    ask (the per-video rules decide the rest)."""
    viewer = User("vera", permissions.VIEWER)
    assert permissions.may_ask(viewer, private_instance=True)
    assert not permissions.may_ask(None, private_instance=True)
    assert permissions.may_ask(None, private_instance=False)


@pytest.mark.parametrize(
    ("before", "after", "takes"),
    [
        (None, "admin", True),  # making an admin
        ("admin", "admin", True),  # another admin's password or quota
        ("admin", "uploader", True),  # demoting one
        ("viewer", "admin", True),  # promoting one
        ("admin", None, True),  # removing one
        (None, "uploader", False),
        ("uploader", "viewer", False),
        ("viewer", None, False),
    ],
)
def test_acts_on_admin_accounts_take_the_admins_own_password(before, after, takes):
    """Every act that makes, changes or removes an admin account takes the asking admin's
    own password; acts on other accounts do not."""
    assert permissions.takes_own_password(before, after) is takes


def test_a_quota_is_a_size_or_unlimited_and_fits_the_index():
    """The master's default quota and one account's are read alike: a size with or
    without a unit, "unlimited" (None), and nothing past what the index's integers hold."""
    assert permissions.parse_quota("unlimited") is None
    assert permissions.parse_quota("20GiB") == 20 * 1024**3
    assert permissions.parse_quota(str(permissions.MAX_QUOTA_BYTES)) == permissions.MAX_QUOTA_BYTES
    with pytest.raises(BadSize, match="expected at most 9223372036854775807 bytes, or unlimited"):
        permissions.parse_quota("9000PiB")
    with pytest.raises(BadSize, match=r"got 'lots' \(or unlimited, for no quota\)"):
        permissions.parse_quota("lots")
