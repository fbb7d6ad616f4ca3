"""Confusable skeletons (myyoutube.lookalikes, UTS #39 section 4), without I/O."""

from __future__ import annotations

import pytest

from myyoutube.lookalikes import Lookalikes, confusable, skeleton


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("cat.mp4", "\u0441at.mp4"),  # Cyrillic с: the example
        ("admin", "adrnin"),  # "rn" reads as "m"
        ("paypal", "paypa1"),  # digit one and letter l
        ("apple", "\u0430pple"),  # Cyrillic а
        ("caf\u00e9", "cafe\u0301"),  # the same text composed and decomposed
        ("v20.mp4", "v\uff120.mp4"),  # a full-width digit (accepted beside it before)
        ("file.mp4", "\ufb01le.mp4"),  # the ligature fi
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


def test_lookalikes_follow_a_changing_set_of_names():
    """`find` names the existing look-alike, never the name itself, and keeps up with names
    added and removed elsewhere."""
    found = Lookalikes()
    names = {"cat.mp4": 1, "dog.mp4": 2}
    assert found.find("\u0441at.mp4", names.keys()) == "cat.mp4"
    assert found.find("cat.mp4", names.keys()) is None  # itself: not a look-alike
    assert found.find("bird.mp4", names.keys()) is None
    del names["cat.mp4"]
    assert found.find("\u0441at.mp4", names.keys()) is None
    names["rnouse.mp4"] = 3
    assert found.find("mouse.mp4", names.keys()) == "rnouse.mp4"
