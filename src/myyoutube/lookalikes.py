"""Look-alike names: Unicode confusable skeletons, after UTS #39 section 4 (pure).

Theory of operation
-------------------
Two names that a person cannot tell apart ("admin" and "adrnin", "cat" and "сat" with a
Cyrillic с) must not both exist: one could pose as the other. UTS #39 compares names by
their *skeletons*: decompose (NFD; here NFKD, see `skeleton`), replace each character by
the prototype of its confusable class, decompose again; two names are confusable when
their skeletons are equal. Only whether skeletons are equal matters, never what they
look like.

The confusable pairs are Unicode's confusables.txt as the `confusable-homoglyphs` package
ships it (MIT licence; the data itself is under the Unicode licence). That package lists
each pair in both directions rather than as source -> prototype, so the classes are built
here by joining every listed pair (union-find); a class's prototype is its first member
preferring ASCII, then longer sequences (so "m" maps to "rn", as in confusables.txt), then
code point order. Joining pairs transitively makes a class at most a little larger than
UTS #39's one-step mapping: a refusal errs towards "looks alike". The table is built once,
on first use (~0.2 s).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Set

from confusable_homoglyphs.utils import load

# The package's entries carry bidi marks around right-to-left characters, for display.
_BIDI_MARKS = str.maketrans("", "", "\u200e\u200f")
# Prototypes are themselves made of characters that may map further ("rn" from "m"):
# mapping stops when nothing changes, which a few passes always reach.
MAX_PASSES = 4


@functools.cache
def _prototypes() -> dict[str, str]:
    """Each character that has look-alikes -> the prototype of its class."""
    parent: dict[str, str] = {}

    def root(item: str) -> str:
        while parent.setdefault(item, item) != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    for source, entries in load("confusables.json").items():
        for entry in entries:
            a, b = root(source.translate(_BIDI_MARKS)), root(entry["c"].translate(_BIDI_MARKS))
            if a != b:
                parent[a] = b
    classes: dict[str, list[str]] = {}
    for item in parent:
        classes.setdefault(root(item), []).append(item)
    prototypes = {}
    for members in classes.values():
        prototype = min(members, key=lambda s: (not s.isascii(), -len(s), s))
        prototypes.update({member: prototype for member in members if len(member) == 1})
    return prototypes


def skeleton(text: str) -> str:
    """The UTS #39 skeleton of `text`: equal skeletons, confusable texts. The first
    decomposition is NFKD rather than NFD: a compatibility form (a full-width "２", the
    ligature "ﬁ") is the character it is a form of, and confusables.txt does not list
    every one ("v２0.mp4" passed beside "v20.mp4")."""
    prototypes = _prototypes()
    current = unicodedata.normalize("NFKD", text)
    for _ in range(MAX_PASSES):
        mapped = unicodedata.normalize("NFD", "".join(prototypes.get(char, char) for char in current))
        if mapped == current:
            break
        current = mapped
    return current


def confusable(a: str, b: str) -> bool:
    return skeleton(a) == skeleton(b)


class Lookalikes:
    """Names by skeleton, kept in step with a set of names that changes elsewhere (the
    index's videos, the accounts): `find` first catches up with additions and removals,
    computing skeletons only for names it has not seen."""

    def __init__(self) -> None:
        self._skeleton_of: dict[str, str] = {}
        self._name_of: dict[str, str] = {}  # skeleton -> a name that has it

    def _sync(self, names: Set[str]) -> None:
        for gone in self._skeleton_of.keys() - names:
            shape = self._skeleton_of.pop(gone)
            if self._name_of.get(shape) == gone:
                del self._name_of[shape]
        for new in names - self._skeleton_of.keys():
            shape = self._skeleton_of[new] = skeleton(new)
            self._name_of.setdefault(shape, new)

    def find(self, name: str, names: Set[str]) -> str | None:
        """A name among `names`, other than `name` itself, that looks like `name`; None if
        there is none."""
        self._sync(names)
        found = self._name_of.get(skeleton(name))
        return found if found != name else None
