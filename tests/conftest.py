"""Fixtures: a shared real cluster for read-mostly tests, fresh ones for fault tests."""

from __future__ import annotations

import os
import signal

import aiohttp
import pytest

from harness import Cluster

# The suite starts a few thousand Python processes (every role of every cluster, every
# command-line run). With PYTHONDONTWRITEBYTECODE set, as in some CI images, each of them
# compiles every module from source again: about 0.3 s of CPU for the three roles' imports.
# Cached bytecode is read even when it is not written, so letting the first process write
# it is enough.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

# A suite started in the background by a non-interactive shell (`pytest &`, nohup) inherits
# SIGINT ignored, and so would every process it starts: the tests that press Ctrl-C at a
# command would then wait for it in vain. A handler of our own, unlike "ignored", is reset
# to the default when a child starts, and Python turns that default into KeyboardInterrupt.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

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
    "test_media_processes",  # the web's media workers, spawned
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
