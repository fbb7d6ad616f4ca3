"""Confusable skeletons (myyoutube.lookalikes, UTS #39 section 4), without I/O."""

from __future__ import annotations

import pytest

from myyoutube.lookalikes import confusable, skeleton


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("cat.mp4", "\u0441at.mp4"),  # Cyrillic с: the example
        ("admin", "adrnin"),  # "rn" reads as "m"
        ("paypal", "paypa1"),  # digit one and letter l
        ("apple", "\u0430pple"),  # Cyrillic а
        ("caf\u00e9", "cafe\u0301"),  # the same text composed and decomposed
    ],
)
def test_look_alikes_share_a_skeleton(a, b):
    """Names a person cannot tell apart have equal skeletons."""
    assert confusable(a, b)


@pytest.mark.parametrize(("a", "b"), [("cat", "bat"), ("alice", "alicia"), ("olga", "vera"), ("a1", "a2")])
def test_different_names_have_different_skeletons(a, b):
    """Names that merely differ are not refused as look-alikes."""
    assert not confusable(a, b)


def test_skeleton_is_stable():
    """A skeleton's skeleton is itself: the mapping has reached its fixed point."""
    for text in ("adrnin", "m\u0430x", "hello world.mp4"):
        assert skeleton(skeleton(text)) == skeleton(text)
