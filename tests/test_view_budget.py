"""Tests for myyoutube.web.view_budget: how many viewer ids one address may count views
of one video under, within the window; bounded memory. Pure, time passed in."""

from __future__ import annotations

from myyoutube.web.view_budget import ViewBudget

T0 = 1_000.0


def test_made_up_viewer_ids_past_the_budget_count_as_the_address():
    """An address counts views of a video under its first `per_address` viewer ids (a
    household); a viewer id made up past those counts under the address, which the master
    counts once per window. A viewer already in the budget keeps its own id, and another
    video or another address has a budget of its own."""
    budget = ViewBudget(per_address=2, window_s=100.0)
    assert budget.viewer("10.0.0.1", "cat.mp4", "ann", T0) == "ann"
    assert budget.viewer("10.0.0.1", "cat.mp4", "bob", T0) == "bob"
    assert budget.viewer("10.0.0.1", "cat.mp4", "forged1", T0) == "address:10.0.0.1"
    assert budget.viewer("10.0.0.1", "cat.mp4", "forged2", T0) == "address:10.0.0.1"
    assert budget.viewer("10.0.0.1", "cat.mp4", "ann", T0 + 1) == "ann"
    assert budget.viewer("10.0.0.1", "dog.mp4", "forged1", T0) == "forged1"
    assert budget.viewer("10.0.0.2", "cat.mp4", "forged1", T0) == "forged1"


def test_the_budget_renews_after_the_window():
    """Once the window has passed, the address may bring new viewers to the video again."""
    budget = ViewBudget(per_address=1, window_s=100.0)
    assert budget.viewer("10.0.0.1", "cat.mp4", "ann", T0) == "ann"
    assert budget.viewer("10.0.0.1", "cat.mp4", "bob", T0 + 99) == "address:10.0.0.1"
    assert budget.viewer("10.0.0.1", "cat.mp4", "bob", T0 + 100) == "bob"


def test_memory_is_bounded_by_forgetting_the_least_recently_used_pair():
    """Past its capacity the budget forgets the (address, video) pair used longest ago."""
    budget = ViewBudget(per_address=1, capacity=2)
    for address in ("a", "b", "c"):
        assert budget.viewer(address, "cat.mp4", "ann", T0) == "ann"
    assert budget.viewer("a", "cat.mp4", "bob", T0) == "bob"  # forgotten: a fresh budget
    assert budget.viewer("c", "cat.mp4", "bob", T0) == "address:c"
