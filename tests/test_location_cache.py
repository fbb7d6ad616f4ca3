"""Tests for myyoutube.location_cache: the master's answers about where parts are, reused
for a moment by the web front end, spread over the healthy holders (pure)."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

import pytest

from myyoutube import location_cache
from myyoutube.direct_reads import DirectReads
from myyoutube.location_cache import LOCATION_FRESH_S, MAX_LOCATIONS, LocationCache, spread
from myyoutube.protocol import VideoLocation

pytestmark = pytest.mark.fast

KEY = ("alice", "holiday.mp4", "video")


def answer(nodes: list[str], healthy: int) -> VideoLocation:
    return VideoLocation(
        video={"name": "holiday.mp4"}, blob_id="b1", nodes=nodes, grant="g", stall_s=2.0, healthy=healthy
    )


def test_an_answer_is_reused_while_fresh_and_asked_anew_after():
    """Within LOCATION_FRESH_S of its arrival an answer serves the same (account, video,
    part); from then on the master is asked again (None), and so is it for another
    account, which may see other things, or another part."""
    cache = LocationCache()
    cache.put(KEY, answer(["a:1", "b:2", "c:3"], healthy=3), now=100.0, asked_in=cache.generation)
    kept = cache.get(KEY, now=100.0 + LOCATION_FRESH_S / 2)
    assert kept is not None and kept.blob_id == "b1" and sorted(kept.nodes) == ["a:1", "b:2", "c:3"]
    assert cache.get(("bob", "holiday.mp4", "video"), now=100.1) is None
    assert cache.get(("alice", "holiday.mp4", "original"), now=100.1) is None
    assert cache.get(KEY, now=100.0 + LOCATION_FRESH_S) is None
    assert len(cache) == 0  # the stale answer is dropped, not kept forever


def test_a_clock_that_went_back_does_not_keep_an_answer_longer():
    """`now` before the answer's arrival (a clock set back) counts as stale, never as
    fresh for ever."""
    cache = LocationCache()
    cache.put(KEY, answer(["a:1"], healthy=1), now=100.0, asked_in=cache.generation)
    assert cache.get(KEY, now=99.0) is None


def test_answers_without_a_healthy_holder_are_not_kept():
    """When every holder is suspect or failed lately (healthy 0), or the master predates
    the field, or names no holder, each read asks the master, which may know better
    by then. A malformed count (more than the nodes named) is not trusted either."""
    cache = LocationCache()
    for nodes, healthy in ((["a:1", "b:2"], 0), ([], 0), (["a:1"], 2)):
        cache.put(KEY, answer(nodes, healthy), now=100.0, asked_in=cache.generation)
        assert cache.get(KEY, now=100.1) is None


def test_a_change_made_here_forgets_every_answer_and_one_asked_before_it_is_not_kept():
    """forget_all (a delete, a visibility or role change through this web front end)
    empties the cache; an answer the master gave to a question asked before the change,
    arriving after it, may describe the video as it was and is not kept."""
    cache = LocationCache()
    cache.put(KEY, answer(["a:1"], healthy=1), now=100.0, asked_in=cache.generation)
    asked_in = cache.generation
    cache.forget_all()
    assert cache.get(KEY, now=100.1) is None
    cache.put(KEY, answer(["a:1"], healthy=1), now=100.2, asked_in=asked_in)
    assert cache.get(KEY, now=100.3) is None
    cache.put(KEY, answer(["a:1"], healthy=1), now=100.2, asked_in=cache.generation)
    assert cache.get(KEY, now=100.3) is not None


def test_forget_drops_one_answer():
    """A read on a kept answer that found no holder to start on forgets it: the next
    read asks the master."""
    cache = LocationCache()
    other = ("alice", "other.mp4", "video")
    cache.put(KEY, answer(["a:1"], healthy=1), now=100.0, asked_in=cache.generation)
    cache.put(other, answer(["a:1"], healthy=1), now=100.0, asked_in=cache.generation)
    cache.forget(KEY)
    assert cache.get(KEY, now=100.1) is None
    assert cache.get(other, now=100.1) is not None


def test_the_cache_is_bounded_and_drops_the_oldest_first():
    """However many videos and accounts are asked about, at most MAX_LOCATIONS answers
    are kept; a new one pushes out the one stored longest ago."""
    cache = LocationCache()
    for number in range(MAX_LOCATIONS + 10):
        cache.put(("", f"v{number}", "video"), answer(["a:1"], healthy=1), now=100.0, asked_in=0)
    assert len(cache) == MAX_LOCATIONS
    assert cache.get(("", "v0", "video"), now=100.1) is None
    assert cache.get(("", "v9", "video"), now=100.1) is None
    assert cache.get(("", "v10", "video"), now=100.1) is not None
    assert cache.get(("", f"v{MAX_LOCATIONS + 9}", "video"), now=100.1) is not None


def test_reuses_spread_reads_over_the_healthy_holders_and_keep_the_rest_last():
    """The master's order would send every read of a reused answer to its first node;
    each reuse shuffles the healthy ones instead, so each serves about a third of the
    reads, while a suspect holder stays last."""
    cache = LocationCache(random.Random(7))
    cache.put(KEY, answer(["a:1", "b:2", "c:3", "sick:4"], healthy=3), now=100.0, asked_in=0)
    firsts: Counter[str] = Counter()
    for _ in range(3000):
        kept = cache.get(KEY, now=100.5)
        assert kept is not None and kept.nodes[3] == "sick:4"
        firsts[kept.nodes[0]] += 1
    assert set(firsts) == {"a:1", "b:2", "c:3"}
    assert all(800 < count < 1200 for count in firsts.values()), firsts


def test_spread_leaves_the_given_list_alone():
    """The kept answer's own list is not shuffled in place: a read under way holds it."""
    nodes = ["a:1", "b:2", "c:3"]
    spread(nodes, 3, random.Random(1))
    assert nodes == ["a:1", "b:2", "c:3"]


async def test_an_answer_counts_its_age_from_the_question_not_its_arrival(monkeypatch):
    """The master decides who may see the video when it is asked; an answer that took
    long to come (a master waiting for holders after a restart) is as old as that
    decision, and is not reused past LOCATION_FRESH_S from it."""
    monkeypatch.setattr(location_cache, "LOCATION_FRESH_S", 0.2)
    reads = DirectReads(None)

    async def slow_master() -> VideoLocation:
        await asyncio.sleep(0.3)
        return answer(["a:1"], healthy=1)

    try:
        assert (await reads._located(KEY, slow_master)).blob_id == "b1"
        assert reads.locations.get(KEY, time.monotonic()) is None
    finally:
        reads.close()
