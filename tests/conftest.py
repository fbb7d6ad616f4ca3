"""Fixtures: a shared real cluster for read-mostly tests, fresh ones for fault tests."""

from __future__ import annotations

import aiohttp
import pytest

from harness import Cluster

# `pytest -m fast` runs what needs no other process; `-m slow` the rest. A test is slow if
# it uses one of these fixtures (they start a cluster's roles or Chromium), directly or
# through another fixture, or lives in a module whose tests start processes themselves.
PROCESS_FIXTURES = {"cluster", "fresh_cluster", "browser", "spread", "spread_factory"}
PROCESS_MODULES = {
    "test_browser",  # Chromium
    "test_browser_accounts",  # Chromium
    "test_cluster",  # myyoutube-cluster, as a subprocess
    "test_commandline",  # the myyoutube command, as a subprocess
    "test_harness",  # the roles, started as the cluster fixtures start them
    "test_service",  # each role's command line, as a subprocess
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        starts_processes = (
            not PROCESS_FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))
            or item.path.stem in PROCESS_MODULES
        )
        item.add_marker(pytest.mark.slow if starts_processes else pytest.mark.fast)


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
        # Each cluster a folder of its own: a role refuses a data dir another one uses.
        root = tmp_path / f"cluster-{len(started)}" if started else tmp_path
        root.mkdir(exist_ok=True)
        running = Cluster(root, **options).start()
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session
