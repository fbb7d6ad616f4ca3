"""A datanode's control connection to the master (datanode/control.py), with real processes."""

from __future__ import annotations

from harness import wait_until

# Far longer than a restart takes, so a datanode waiting for its next beat is told apart.
SLOW_HEARTBEAT_S = 30.0


async def test_a_restarted_master_is_registered_with_at_once_not_at_the_next_beat(fresh_cluster):
    """Datanodes notice their master closing the control connection while they wait
    between heartbeats, and register with the restarted one within seconds. Before, each
    noticed only when its next heartbeat failed, up to a whole interval later, and reads
    meanwhile found no holder."""
    cluster = fresh_cluster(heartbeat_s=SLOW_HEARTBEAT_S, dead_after_s=4 * SLOW_HEARTBEAT_S)
    cluster.master.kill()
    cluster.restart_master()
    client = cluster.client()

    async def all_back() -> bool:
        report = await client.status()
        return sum(node["state"] == "alive" for node in report["datanodes"]) == len(cluster.datanodes)

    await wait_until(all_back, "every datanode registered with the restarted master", SLOW_HEARTBEAT_S / 3)
    client.close()
