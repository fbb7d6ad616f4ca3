"""Tests for myyoutube.master.views: one view per viewer and video per window, bounded."""

from __future__ import annotations

from myyoutube.master.views import VIEW_WINDOW_S, RecentViews

T0 = 1_000.0


def test_a_viewer_counts_once_per_video_within_the_window():
    """The same viewer and video count once; another video or another viewer counts."""
    recent = RecentViews()
    assert recent.first_in_window("ann", "cat.mp4", T0)
    assert not recent.first_in_window("ann", "cat.mp4", T0 + 1)
    assert not recent.first_in_window("ann", "cat.mp4", T0 + VIEW_WINDOW_S - 1)
    assert recent.first_in_window("ann", "dog.mp4", T0 + 2)
    assert recent.first_in_window("bob", "cat.mp4", T0 + 3)


def test_a_viewer_counts_again_after_the_window():
    """Once the window has passed since it was counted, the pair counts again (a new
    session), and expired pairs are forgotten."""
    recent = RecentViews()
    assert recent.first_in_window("ann", "cat.mp4", T0)
    assert recent.first_in_window("ann", "cat.mp4", T0 + VIEW_WINDOW_S)
    assert len(recent) == 1


def test_memory_is_bounded_by_forgetting_the_oldest_pair():
    """Past its capacity the window forgets its oldest pair first; the newest stay."""
    recent = RecentViews(capacity=3)
    for number in range(5):
        assert recent.first_in_window(f"viewer{number}", "cat.mp4", T0 + number)
    assert len(recent) == 3
    assert recent.first_in_window("viewer0", "cat.mp4", T0 + 10)  # forgotten early
    assert not recent.first_in_window("viewer4", "cat.mp4", T0 + 10)
