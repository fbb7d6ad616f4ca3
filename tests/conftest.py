"""Fixtures: a shared real cluster for read-mostly tests, fresh ones for fault tests."""

from __future__ import annotations

import aiohttp
import pytest

from harness import Cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running master, 3 datanodes and web front end, shared by one test module."""
    running = Cluster(tmp_path_factory.mktemp("cluster")).start()
    yield running
    running.stop()


@pytest.fixture
def fresh_cluster(tmp_path):
    """A factory for a cluster of one's own (to kill, pause and restart its processes)."""
    started = []

    def make(**options) -> Cluster:
        running = Cluster(tmp_path, **options).start()
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session
