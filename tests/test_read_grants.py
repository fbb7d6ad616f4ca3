"""Tests for myyoutube.read_grants: which reads a datanode lets the web make (pure)."""

from __future__ import annotations

import pytest

from myyoutube import read_grants

pytestmark = pytest.mark.fast

NOW = 1_800_000_000.0
BLOB = "a" * 32


def ring(*keys: str) -> tuple[str, ...]:
    """The keys a datanode holds after learning `keys` in turn."""
    learnt = read_grants.KeyRing()
    for key in keys:
        learnt.learn(key)
    return learnt.keys


def test_a_grant_reads_its_blob_until_it_expires():
    """A grant the master made is good for its blob for GRANT_TTL_S, and not after."""
    key = read_grants.new_key()
    shown = read_grants.grant(key, BLOB, NOW)
    keys = ring(key)
    assert read_grants.refusal(keys, shown, BLOB, NOW) is None
    assert read_grants.refusal(keys, shown, BLOB, NOW + read_grants.GRANT_TTL_S - 1) is None
    assert (
        read_grants.refusal(keys, shown, BLOB, NOW + read_grants.GRANT_TTL_S + 1) == "the grant has expired"
    )


def test_a_grant_reads_no_other_blob():
    """The web cannot take a grant for a video it may show to read another blob (an
    index snapshot, someone's private video)."""
    key = read_grants.new_key()
    shown = read_grants.grant(key, BLOB, NOW)
    assert "not the master's" in read_grants.refusal(ring(key), shown, "b" * 32, NOW)


def test_a_grant_outlives_one_master_restart_but_not_two():
    """Each master start makes a new key. A stream begun before a restart can still fail
    over to another replica after it (the node keeps the key before the latest); after
    a second restart that grant is refused. Hearing the same key again changes nothing."""
    first, second, third = read_grants.new_key(), read_grants.new_key(), read_grants.new_key()
    shown = read_grants.grant(first, BLOB, NOW)
    assert read_grants.refusal(ring(first, first, second, second), shown, BLOB, NOW) is None
    assert "restarted twice" in read_grants.refusal(ring(first, second, third), shown, BLOB, NOW)


def test_a_forged_or_missing_grant_is_refused():
    """No grant, garbage, a later expiry with the old MAC, or a node that has no key yet:
    each is refused with a sentence that says which."""
    key = read_grants.new_key()
    keys = ring(key)
    shown = read_grants.grant(key, BLOB, NOW)
    expires, _, mac = shown.partition(".")
    assert read_grants.refusal(keys, "", BLOB, NOW) == "the read has no grant from the master"
    assert read_grants.refusal(keys, "x" * 500, BLOB, NOW) == "the read has no grant from the master"
    assert read_grants.refusal(keys, f"-5.{mac}", BLOB, NOW) == "the read has no grant from the master"
    stretched = f"{int(expires) + 10_000}.{mac}"
    assert "not the master's" in read_grants.refusal(keys, stretched, BLOB, NOW)
    assert "has not heard from the master" in read_grants.refusal((), shown, BLOB, NOW)


@pytest.mark.parametrize(
    "shown",
    [
        "².abc",
        "9999999999." + "é" * 10,
        "9999999999." + "é" * 64,
        "1e9." + "0" * 64,
        "9999999999." + "A" * 64,
    ],
)
def test_a_grant_in_strange_characters_is_refused_not_raised(shown):
    """A peer's grant with digits int() refuses ("²") or non-ASCII text (which
    compare_digest raises on) is refused with a sentence; it used to raise, which took
    the datanode's link down with a traceback instead of answering 'forbidden'."""
    keys = ring(read_grants.new_key())
    assert read_grants.refusal(keys, shown, BLOB, NOW) == "the read has no grant from the master"
