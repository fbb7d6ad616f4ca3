"""Tests for myyoutube.read_grants: which reads a datanode lets the web make (pure)."""

from __future__ import annotations

import pytest

from myyoutube import read_grants

pytestmark = pytest.mark.fast

NOW = 1_800_000_000.0
BLOB = "a" * 32


def test_a_grant_reads_its_blob_until_it_expires():
    """A grant the master made is good for its blob for GRANT_TTL_S, and not after."""
    key = read_grants.new_key()
    shown = read_grants.grant(key, BLOB, NOW)
    assert read_grants.refusal(key, shown, BLOB, NOW) is None
    assert read_grants.refusal(key, shown, BLOB, NOW + read_grants.GRANT_TTL_S - 1) is None
    assert read_grants.refusal(key, shown, BLOB, NOW + read_grants.GRANT_TTL_S + 1) == "the grant has expired"


def test_a_grant_reads_no_other_blob():
    """The web cannot take a grant for a video it may show to read another blob (an
    index snapshot, someone's private video)."""
    key = read_grants.new_key()
    shown = read_grants.grant(key, BLOB, NOW)
    assert "not the master's" in read_grants.refusal(key, shown, "b" * 32, NOW)


def test_a_restarted_master_voids_the_grants_of_the_one_before():
    """Each master start makes a new key: grants made under the old one are refused."""
    old, new = read_grants.new_key(), read_grants.new_key()
    assert "not the master's" in read_grants.refusal(new, read_grants.grant(old, BLOB, NOW), BLOB, NOW)


def test_a_forged_or_missing_grant_is_refused():
    """No grant, garbage, a later expiry with the old MAC, or a node that has no key yet:
    each is refused with a sentence that says which."""
    key = read_grants.new_key()
    shown = read_grants.grant(key, BLOB, NOW)
    expires, _, mac = shown.partition(".")
    assert read_grants.refusal(key, "", BLOB, NOW) == "the read has no grant from the master"
    assert read_grants.refusal(key, "x" * 500, BLOB, NOW) == "the read has no grant from the master"
    assert read_grants.refusal(key, f"-5.{mac}", BLOB, NOW) == "the read has no grant from the master"
    stretched = f"{int(expires) + 10_000}.{mac}"
    assert "not the master's" in read_grants.refusal(key, stretched, BLOB, NOW)
    assert "has not heard from the master" in read_grants.refusal("", shown, BLOB, NOW)
