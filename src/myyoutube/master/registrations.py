"""Waiting, right after a master restart, for the datanodes to register again.

Theory of operation
-------------------
A restarted master knows no live datanode until each re-registers, within a heartbeat or
two and its reconnect backoff. Meanwhile a read would find no holder of its video and an
upload no datanode to place it on, and both would be refused while every datanode is up
and reconnecting. So each waits, polling the registry, while the state says the wait can
still help (ClusterState.awaiting_holders for a read, awaiting_datanodes for an upload:
both only within --dead-after of the start), for at most REGISTRATION_WAIT_S.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from myyoutube.master.server import Master

# A read or an upload waits at most this long for datanodes to register before it is
# refused with 503: a few heartbeats at default settings, and far below any player's or
# uploader's patience.
REGISTRATION_WAIT_S = 5.0

# How often the registry is looked at again meanwhile: registrations arrive within
# moments of each other, and a look costs a few dictionary reads.
REGISTRATION_POLL_S = 0.1


async def wait_for_registrations(waiting: Callable[[float], bool]) -> None:
    """Return once `waiting(now)` (now: time.time()) says there is no point waiting any
    more, or after REGISTRATION_WAIT_S."""
    deadline = time.monotonic() + REGISTRATION_WAIT_S
    # Polled, not woken by an event: what ends the wait is a judgement over the registry
    # (a holder or enough datanodes alive, the start long enough ago), not one event.
    while True:
        if not waiting(time.time()) or time.monotonic() >= deadline:
            return
        await asyncio.sleep(REGISTRATION_POLL_S)


async def datanodes_registered(master: Master) -> None:
    """Return once `min_replicas` datanodes are alive, or at once unless the master started
    moments ago and those running may still be re-registering; at most REGISTRATION_WAIT_S.
    An upload that came right after a master restart was refused "Only 0 datanodes are
    running" while every datanode was up and reconnecting (bench/chaos.py: 91 of 630
    uploads over 11 master restarts). Not `replication`: an upload that can be stored
    safely goes ahead (the repair loop adds the missing copy), and a cluster with fewer
    nodes than `replication` does not make every upload wait."""
    await wait_for_registrations(lambda now: master.state.awaiting_datanodes(master.min_replicas, now))
