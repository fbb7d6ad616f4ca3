"""Tests for myyoutube.web.common's pure parts: the bounded request slots."""

from __future__ import annotations

import json

import pytest
from aiohttp import web

from myyoutube.web.common import Slots


def refusal(exc: pytest.ExceptionInfo[web.HTTPServiceUnavailable]) -> str:
    assert exc.value.text is not None
    return json.loads(exc.value.text)["error"]


def test_an_account_gets_one_share_of_the_slots_from_any_number_of_addresses():
    """An account uploading from several hosts is held to the per-client bound as an
    address is (before, each address had its own share, so a few took every slot); other
    accounts still get in there, and each 503 says which bound was hit; every slot is
    given back."""
    slots = Slots(limit=10, what="uploads", per_client=2)
    with slots.take("192.0.2.1", "mallory"), slots.take("192.0.2.2", "mallory"):
        with pytest.raises(web.HTTPServiceUnavailable) as refused, slots.take("192.0.2.3", "mallory"):
            pass
        assert refusal(refused) == "Too many uploads at once for your account; try again in a few seconds."
        with slots.take("192.0.2.1", "alice"):
            with pytest.raises(web.HTTPServiceUnavailable) as refused, slots.take("192.0.2.1", "bob"):
                pass
            assert "from your address" in refusal(refused)
        with slots.take("192.0.2.3", "alice"):
            assert slots.used == 3
    assert slots.used == 0 and not slots.by_client


def test_past_the_total_the_refusal_blames_no_client():
    """With every slot taken, the 503 says so without pointing at the client's share."""
    slots = Slots(limit=1, what="streams")
    with (
        slots.take("192.0.2.1"),
        pytest.raises(web.HTTPServiceUnavailable) as refused,
        slots.take("192.0.2.2"),
    ):
        pass
    assert refusal(refused) == "Too many streams at once; try again in a few seconds."
