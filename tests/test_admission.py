"""Connection admission (myyoutube.admission): places per address, and headroom below the
open-file limit, without sockets."""

from __future__ import annotations

from myyoutube.admission import MIN_FD_HEADROOM, Admission, client_key, fd_headroom, near_file_limit


def test_admission_counts_per_address_and_overall():
    """Admission refuses past the per-address bound and past the total, and frees places."""
    admission = Admission(total=3, per_ip=2)
    assert [admission.admit("a"), admission.admit("a"), admission.admit("a")] == [True, True, False]
    assert admission.admit("b") and not admission.admit("c")
    admission.release("a")
    assert admission.admit("c")


def test_admission_without_a_total_bounds_only_each_address():
    """With no overall bound (the web front end's connections), only each address is capped."""
    admission = Admission(total=None, per_ip=1)
    assert all(admission.admit(f"10.0.0.{n}") for n in range(500))
    assert not admission.admit("10.0.0.1")


def test_an_ipv6_client_is_counted_by_its_64():
    """Per-client bounds count an IPv6 client by its /64, from any address of which a host
    may send: two addresses of one /64 share one client's places (each used to get its
    own, so one host had 2^64 shares); another /64 is another client, and an IPv4 client
    is the same one whether a dual-stack socket reports it plain or IPv4-mapped."""
    admission = Admission(total=None, per_ip=1)
    assert admission.admit(client_key("2001:db8:1:2::1"))
    assert not admission.admit(client_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"))
    assert admission.admit(client_key("2001:db8:1:3::1"))
    assert admission.admit(client_key("10.0.0.1"))
    assert not admission.admit(client_key("::ffff:10.0.0.1"))
    assert client_key("not an address") == "not an address"


def test_headroom_is_a_tenth_of_the_limit_but_never_below_the_minimum():
    """A small limit keeps MIN_FD_HEADROOM free; a large one a tenth of it."""
    assert fd_headroom(256) == MIN_FD_HEADROOM
    assert fd_headroom(1_048_576) == 104_857


def test_a_descriptor_in_the_headroom_is_near_the_limit():
    """Under a limit of 1024 (headroom 102), descriptor 921 is the first one refused."""
    assert not near_file_limit(921, 1024)
    assert near_file_limit(922, 1024)
    assert near_file_limit(1023, 1024)
