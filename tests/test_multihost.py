"""Several hosts for real: each role in its own network namespace on a bridge (issue 14).

The test makes a bridge in a namespace of its own, one namespace per role with a veth
into the bridge and an address in 10.213.N.0/24 (N random per test process) that exists
only inside these namespaces, and one veth from the test's own namespace (10.213.N.254)
so the test can reach them. Roles bind their namespace's address (so they need certificates: every link
is mutual TLS), datanodes bind 0.0.0.0 and --advertise their address. A partition is the
bridge port of a host set down: packets vanish, nobody gets a reset. Every namespace and
link is deleted afterwards, also on failure; processes are stopped by pid.

Needs root (CI runs as root); skipped with the reason where namespaces cannot be made.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from harness import mp4_bytes, read_chars, receiving, wait_until
from myyoutube import certs, tls_contexts
from myyoutube.client import MasterClient
from myyoutube.launch import Role, start_role
from myyoutube.links import PeerRefused, connect
from myyoutube.messages import DeleteBlob, ListVideos

# The test's own veth and route live in the machine's namespace: two test runs at once
# (CI jobs, several worktrees) on one /24 would route into each other's bridge, so each
# test process picks its own.
SUBNET = f"10.213.{random.SystemRandom().randint(1, 254)}"
TEST_HOST_ADDRESS = f"{SUBNET}.254"
MASTER_ADDRESS = f"{SUBNET}.1"
WEB_ADDRESS = f"{SUBNET}.2"
DATANODE_ADDRESSES = [f"{SUBNET}.{11 + i}" for i in range(4)]


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


class Hosts:
    """Namespaces on one bridge; `host(name, address)` adds one, `close()` removes all."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:6]
        self.bridge_ns = f"myb-{self.tag}"
        self.namespaces: list[str] = []
        self.ports: dict[str, str] = {}  # host name -> its veth end in the bridge namespace
        ip("netns", "add", self.bridge_ns)
        self.namespaces.append(self.bridge_ns)
        ip("-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
        ip("-n", self.bridge_ns, "link", "set", "br0", "up")
        # The test's own way in: one veth from this namespace into the bridge.
        self.local = f"myh-{self.tag}"
        ip("link", "add", self.local, "type", "veth", "peer", "name", "uplink", "netns", self.bridge_ns)
        ip("-n", self.bridge_ns, "link", "set", "uplink", "master", "br0", "up")
        ip("addr", "add", f"{TEST_HOST_ADDRESS}/24", "dev", self.local)
        ip("link", "set", self.local, "up")

    def host(self, name: str, address: str) -> tuple[str, ...]:
        """A namespace with `address`; returns the command prefix that runs inside it."""
        namespace = f"my{name}-{self.tag}"
        ip("netns", "add", namespace)
        self.namespaces.append(namespace)
        port = f"p{name}"
        ip(
            "link",
            "add",
            "eth0",
            "netns",
            namespace,
            "type",
            "veth",
            "peer",
            "name",
            port,
            "netns",
            self.bridge_ns,
        )
        ip("-n", self.bridge_ns, "link", "set", port, "master", "br0", "up")
        ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", namespace, "link", "set", "eth0", "up")
        ip("-n", namespace, "link", "set", "lo", "up")
        self.ports[name] = port
        return ("ip", "netns", "exec", namespace)

    def add_address(self, name: str, address: str) -> None:
        ip("-n", f"my{name}-{self.tag}", "addr", "add", f"{address}/24", "dev", "eth0")

    def partition(self, name: str, cut: bool = True) -> None:
        """Set the host's bridge port down (or up again): a silent partition."""
        ip("-n", self.bridge_ns, "link", "set", self.ports[name], "down" if cut else "up")

    def isolate(self, name: str) -> None:
        """The host's bridge port may reach only ports that are not isolated (the master's,
        the web's, the test's): hosts isolated this way cannot reach each other."""
        subprocess.run(
            ["bridge", "-n", self.bridge_ns, "link", "set", "dev", self.ports[name], "isolated", "on"],
            check=True,
            capture_output=True,
            timeout=10,
        )

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self.local], capture_output=True, timeout=10)
        for namespace in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=10)


@pytest.fixture
def hosts():
    try:
        made = Hosts()
    except (subprocess.CalledProcessError, FileNotFoundError, PermissionError) as exc:
        detail = exc.stderr.decode(errors="replace").strip() if getattr(exc, "stderr", None) else exc
        pytest.skip(f"network namespaces cannot be made here (needs root and iproute2): {detail}")
    try:
        yield made
    finally:
        made.close()


class Spread:
    """A cluster with each role on its own host: master, `datanodes` datanodes (three by
    default), optionally a web front end, TLS everywhere."""

    def __init__(
        self,
        hosts: Hosts,
        root: Path,
        datanodes: int = 3,
        dead_after_s: float = 30.0,
        master_args: tuple[str, ...] = (),
    ) -> None:
        self.hosts, self.root = hosts, root
        self.datanode_count, self.dead_after_s = datanodes, dead_after_s
        self.master_args = master_args
        certs.init_ca(root / "ca")
        self.roles: list[Role] = []
        self.prefixes: dict[str, tuple[str, ...]] = {}
        self.folders: dict[str, Path] = {}

    def cert_dir(self, role: str, name: str) -> str:
        return str(certs.issue(self.root / "ca", role, name, self.root / "certs" / name))

    def start(self) -> Spread:
        self.start_master()
        self.start_datanodes()
        return self

    def start_master(self) -> Role:
        self.prefixes["m"] = self.hosts.host("m", MASTER_ADDRESS)
        self.master = self._start(
            "myyoutube.master",
            "m",
            [
                "--host",
                MASTER_ADDRESS,
                "--data-dir",
                str(self.root / "master"),
                "--heartbeat",
                "0.3",
                "--dead-after",
                str(self.dead_after_s),
                "--stall-timeout",
                "1",
                "--cert-dir",
                self.cert_dir("master", "master"),
                *self.master_args,
            ],
        )
        return self.master

    def datanode_hosts(self) -> list[tuple[str, str]]:
        """Make each datanode's host and data folder; the (name, address) of each."""
        made = []
        for number, address in enumerate(DATANODE_ADDRESSES[: self.datanode_count]):
            name = f"d{number}"
            self.prefixes[name] = self.hosts.host(name, address)
            self.folders[name] = self.root / name
            made.append((name, address))
        return made

    def start_datanodes(self) -> None:
        self.datanodes = [self.start_datanode(name, address) for name, address in self.datanode_hosts()]

    def start_datanode(self, name: str, address: str) -> Role:
        return self._start(
            "myyoutube.datanode",
            name,
            [
                "--master",
                f"{MASTER_ADDRESS}:7000",
                "--host",
                "0.0.0.0",
                "--advertise",
                address,
                "--data-dir",
                str(self.folders[name]),
                "--heartbeat",
                "0.3",
                "--cert-dir",
                self.cert_dir("datanode", name),
            ],
        )

    def start_web(self) -> Role:
        """The web front end on its own host, reached by the test at WEB_ADDRESS:8080."""
        self.prefixes["w"] = self.hosts.host("w", WEB_ADDRESS)
        self.web = self._start(
            "myyoutube.web",
            "w",
            [
                "--master",
                f"{MASTER_ADDRESS}:7000",
                "--host",
                WEB_ADDRESS,
                "--cert-dir",
                self.cert_dir("web", "web"),
            ],
        )
        return self.web

    @property
    def url(self) -> str:
        return f"http://{WEB_ADDRESS}:8080"

    def _start(self, module: str, host: str, args: list[str]) -> Role:
        role = start_role(module, args, self.root / "logs" / f"{host}.log", prefix=self.prefixes[host])
        self.roles.append(role)
        return role

    def client(self) -> MasterClient:
        web_cert = tls_contexts.load(Path(self.cert_dir("web", "test-client")), "web")
        return MasterClient(MASTER_ADDRESS, 7000, web_cert, user="admin")  # the first admin: may upload

    def holders(self, data: bytes) -> list[str]:
        return [
            name
            for name, folder in self.folders.items()
            if any(p.stat().st_size == len(data) and p.read_bytes() == data for p in folder.glob("*.blob"))
        ]

    def stop(self) -> None:
        for role in reversed(self.roles):
            if role.alive():
                role.stop()


@pytest.fixture
def spread(hosts, tmp_path):
    cluster = Spread(hosts, tmp_path)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def spread_factory(hosts, tmp_path):
    """Spread(**options) started, with a web front end if web=True; stopped afterwards."""
    made: list[Spread] = []

    def make(web: bool = False, **options) -> Spread:
        cluster = Spread(hosts, tmp_path, **options)
        made.append(cluster)
        cluster.start()
        if web:
            cluster.start_web()
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.stop()


async def test_upload_commits_on_two_when_a_receiver_is_partitioned(spread):
    """A receiving datanode's link is cut mid-upload (no reset, packets dropped): the
    master drops it after the stall timeout and the upload commits on the other two."""
    data = mp4_bytes(os.urandom(12 * 1024 * 1024))
    client = spread.client()
    upload = await client.start_upload("partitioned.mp4", "video/mp4")
    await upload.write(data[: 4 * 1024 * 1024])
    receivers = [name for name, folder in spread.folders.items() if receiving(folder)]
    assert len(receivers) == 3
    spread.hosts.partition(receivers[0])
    try:
        await upload.write(data[4 * 1024 * 1024 :])
        video = await upload.finish()
    finally:
        spread.hosts.partition(receivers[0], cut=False)
    assert video["sha256"] == hashlib.sha256(data).hexdigest()
    assert len(spread.holders(data)) >= 2
    got = b"".join([piece async for piece in client.read("partitioned.mp4", 0, len(data))])
    assert got == data
    client.close()


async def test_datanode_back_at_another_address_keeps_its_replicas(spread):
    """A datanode stopped and started at a new address (same data directory) is the same
    node: the master lists its replicas at the new address, with nothing re-copied."""
    data = mp4_bytes(os.urandom(500_000))
    client = spread.client()
    upload = await client.start_upload("moving.mp4", "video/mp4")
    await upload.write(data)
    await upload.finish()
    spread.datanodes[0].stop()
    spread.hosts.add_address("d0", f"{SUBNET}.21")
    spread.datanodes[0] = spread.start_datanode("d0", f"{SUBNET}.21")

    async def moved() -> bool:
        nodes = {node["address"]: node for node in (await client.status())["datanodes"]}
        return (
            f"{DATANODE_ADDRESSES[0]}:7100" not in nodes
            and nodes.get(f"{SUBNET}.21:7100", {}).get("replicas") == 1
        )

    await wait_until(moved, "replicas listed at the node's new address", 20)
    assert (await client.status())["counters"]["repairs"] == 0
    assert sorted(spread.holders(data)) == ["d0", "d1", "d2"]
    client.close()


STREAM_VIDEO_BYTES = 24 * 1024 * 1024
FIRST_PART_BYTES = 3 * 1024 * 1024
# A viewer's bounded stall when the serving replica vanishes: the master's stall timeout
# (1 s here) plus a new connection to another replica, far below this.
STREAM_STALL_BOUND_S = 15.0


async def upload_to(spread: Spread, name: str, data: bytes) -> None:
    client = spread.client()
    upload = await client.start_upload(name, "video/mp4")
    await upload.write(data)
    await upload.finish()
    client.close()


async def test_stream_continues_when_the_serving_replica_is_partitioned(spread_factory, http):
    """The datanode serving a /stream is cut off mid-stream (bridge port down, no reset):
    the viewer's stream stalls briefly and continues from another replica, every byte
    identical, in order."""
    spread = spread_factory(web=True)
    data = mp4_bytes(os.urandom(STREAM_VIDEO_BYTES))
    await upload_to(spread, "movie.mp4", data)
    names = list(spread.folders)
    digest = hashlib.sha256()
    before = {name: read_chars(node) for name, node in zip(names, spread.datanodes, strict=True)}
    async with http.get(f"{spread.url}/stream/movie.mp4") as response:
        assert response.status == 200
        digest.update(await response.content.readexactly(FIRST_PART_BYTES))
        serving = max(
            zip(names, spread.datanodes, strict=True), key=lambda pair: read_chars(pair[1]) - before[pair[0]]
        )[0]
        spread.hosts.partition(serving)
        try:
            started = time.monotonic()
            async with asyncio.timeout(STREAM_STALL_BOUND_S):
                async for piece in response.content.iter_chunked(1024 * 1024):
                    digest.update(piece)
            print(f"stream finished {time.monotonic() - started:.2f}s after {serving} was cut off")
        finally:
            spread.hosts.partition(serving, cut=False)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    status = await (client := spread.client()).status()
    assert status["counters"]["read_failovers"] >= 1
    client.close()


async def test_holder_partitioned_past_dead_after_is_replaced_and_the_surplus_goes_on_heal(spread_factory):
    """A holder cut off longer than the master's dead-after: its copy is re-made on the
    spare node; when the link is back, exactly the returned node's surplus copy is removed
    (the fresh copy stays), nothing is copied again, and the bytes read back are intact."""
    spread = spread_factory(datanodes=4, dead_after_s=2.0)
    data = mp4_bytes(os.urandom(2_000_000))
    await upload_to(spread, "held.mp4", data)
    first_holders = spread.holders(data)
    assert len(first_holders) == 3
    victim = first_holders[0]
    (spare,) = set(spread.folders) - set(first_holders)
    client = spread.client()
    spread.hosts.partition(victim)
    try:
        took = await wait_until(lambda: spare in spread.holders(data), "the copy re-made on the spare", 30)
        print(f"re-replicated {took:.2f}s after the partition (dead-after {spread.dead_after_s}s)")
        assert len(spread.holders(data)) == 4  # the cut-off node still has its copy on disk
    finally:
        spread.hosts.partition(victim, cut=False)
    took = await wait_until(
        lambda: spread.holders(data) == sorted(set(first_holders) - {victim} | {spare}),
        "the returned node's surplus copy removed",
        30,
    )
    print(f"surplus copy removed {took:.2f}s after the partition healed")
    repairs = (await client.status())["counters"]["repairs"]
    await asyncio.sleep(3)  # several heartbeats and repair ticks: nothing more may move
    status = await client.status()
    assert status["counters"]["repairs"] == repairs == 1
    assert sorted(spread.holders(data)) == sorted(set(first_holders) - {victim} | {spare})
    assert all(node["state"] == "alive" for node in status["datanodes"])
    got = b"".join([piece async for piece in client.read("held.mp4", 0, len(data))])
    assert got == data
    client.close()


async def test_web_answers_503_while_the_master_is_partitioned_and_recovers(spread_factory, http):
    """The master's link is cut (the web cannot reach it, nothing is reset): the web
    answers 503 with Retry-After and a sentence, and by itself serves pages again once
    the link is back."""
    spread = spread_factory(web=True)
    await upload_to(spread, "visible.mp4", mp4_bytes(os.urandom(100_000)))
    async with http.get(f"{spread.url}/listar") as response:
        assert response.status == 200  # the web's pooled links to the master are warm
    spread.hosts.partition("m")
    try:
        started = time.monotonic()
        async with http.get(f"{spread.url}/listar") as response:
            answer = await response.json()
            assert response.status == 503 and response.headers["Retry-After"]
            assert "not answering" in answer["error"]
        print(f"503 after {time.monotonic() - started:.2f}s of partition")
    finally:
        spread.hosts.partition("m", cut=False)

    async def listed() -> bool:
        async with http.get(f"{spread.url}/listar") as response:
            return response.status == 200 and "visible.mp4" in json.dumps(await response.json())

    took = await wait_until(listed, "the web serving the listing again", 30)
    print(f"web recovered {took:.2f}s after the partition healed")


@pytest.mark.parametrize("position", [0, 1, 2], ids=["first", "middle", "tail"])
async def test_write_pipeline_commits_on_two_when_a_chain_node_is_partitioned(spread_factory, position):
    """With the write pipeline, the first, middle or last node of the chain is cut off
    mid-upload (no reset): the master (first) or the node before it drops it after the
    stall timeout; for the first or middle one the master re-forms the chain over the two
    others at their last acknowledged byte and resends the rest. The upload commits on
    the two copies that were not cut off, and the bytes read back are identical."""
    spread = spread_factory(datanodes=4, master_args=("--writes", "pipeline"))
    data = mp4_bytes(os.urandom(8 * 1024 * 1024))
    client = spread.client()
    upload = await client.start_upload("chained.mp4", "video/mp4")
    await upload.write(data[: 2 * 1024 * 1024])
    line = [
        text for text in (spread.root / "logs" / "m.log").read_text().splitlines() if "down the chain" in text
    ][-1]
    by_address = {
        f"{address}:7100": name for name, address in zip(spread.folders, DATANODE_ADDRESSES, strict=True)
    }
    chain = [by_address[address] for address in line.rsplit("down the chain ", 1)[1].split(" -> ")]
    spread.hosts.partition(chain[position])
    try:
        await upload.write(data[2 * 1024 * 1024 :])
        video = await upload.finish()
    finally:
        spread.hosts.partition(chain[position], cut=False)
    assert video["sha256"] == hashlib.sha256(data).hexdigest()
    holders = spread.holders(data)
    assert chain[position] not in holders
    assert all(node in holders for node in chain if node != chain[position])
    got = b"".join([piece async for piece in client.read("chained.mp4", 0, len(data))])
    assert got == data
    client.close()


async def test_datanodes_that_cannot_reach_each_other_get_a_fan_out_instead(spread):
    """Datanodes cut off from each other (the master reaches each of them): no write
    pipeline can form, so the master says why in its log and fans the upload out itself;
    it commits on three copies, leaves no partial chain copy behind and reads back
    identical."""
    for name in spread.folders:
        spread.hosts.isolate(name)
    data = mp4_bytes(os.urandom(2 * 1024 * 1024))
    client = spread.client()
    upload = await client.start_upload("apart.mp4", "video/mp4")
    await upload.write(data)
    video = await upload.finish()
    assert video["sha256"] == hashlib.sha256(data).hexdigest()
    assert len(spread.holders(data)) == 3
    assert "fanning out instead" in (spread.root / "logs" / "m.log").read_text()
    # The chain's head parked a partial copy when the master gave the chain up; it is
    # deleted with the fallback, not a minute later.
    assert [p for folder in spread.folders.values() for p in folder.glob("*.open*")] == []
    got = b"".join([piece async for piece in client.read("apart.mp4", 0, len(data))])
    assert got == data
    client.close()


async def test_start_order_reversed_works_across_hosts(hosts, tmp_path, http):
    """The web and the datanodes start on their hosts before the master exists (its
    address does not answer yet): they wait for it instead of exiting, and once the master
    starts, an upload commits on three datanodes and the web lists it."""
    spread = Spread(hosts, tmp_path)
    try:
        spread.start_web()
        # A datanode announces itself only once registered, so each start waits in a thread.
        starting = asyncio.gather(
            *(
                asyncio.to_thread(spread.start_datanode, name, address)
                for name, address in spread.datanode_hosts()
            )
        )
        await asyncio.sleep(3)  # every datanode has tried the missing master by now
        assert not starting.done() and spread.web.alive()
        spread.start_master()
        spread.datanodes = list(await starting)

        async def three_datanodes() -> bool:
            client = spread.client()
            try:
                return len((await client.status())["datanodes"]) == 3
            except (OSError, ConnectionError):
                return False
            finally:
                client.close()

        await wait_until(three_datanodes, "the datanodes registered with the late master", 60)
        data = mp4_bytes(os.urandom(300_000))
        await upload_to(spread, "late.mp4", data)
        assert sorted(spread.holders(data)) == ["d0", "d1", "d2"]

        async def listed() -> bool:
            async with http.get(f"{spread.url}/listar") as response:
                return response.status == 200 and "late.mp4" in json.dumps(await response.json())

        await wait_until(listed, "the web listing the video once the master is up", 60)
    finally:
        spread.stop()


async def test_wrong_certificate_and_wrong_role_are_refused_across_hosts(spread):
    """From another host: a certificate another CA signed gets no link to the master; a
    web certificate may not ask a datanode to delete a blob (forbidden, the blob stays);
    a datanode certificate may not list the master's videos."""
    data = mp4_bytes(os.urandom(200_000))
    await upload_to(spread, "guarded.mp4", data)
    holder = spread.holders(data)[0]
    (blob,) = [p for p in spread.folders[holder].glob("*.blob") if p.read_bytes() == data]

    certs.init_ca(spread.root / "other-ca")
    stranger = tls_contexts.load(certs.issue(spread.root / "other-ca", "web", "stranger"), "web")
    with pytest.raises((OSError, ConnectionError)):
        link = await connect(MASTER_ADDRESS, 7000, stranger, "master")
        await link.write_frame(ListVideos(query="", sort="", cursor="", limit=10, user="admin"))
        await link.read_frame(timeout=5)

    web = tls_contexts.load(Path(spread.cert_dir("web", "intruder")), "web")
    address = DATANODE_ADDRESSES[int(holder[1:])]
    link = await connect(address, 7100, web, "datanode")
    await link.write_frame(DeleteBlob(blob_id=blob.stem))
    with pytest.raises(Exception, match="web may not send DeleteBlob"):
        await link.read_expected(DeleteBlob, timeout=5)
    assert blob.read_bytes() == data

    datanode = tls_contexts.load(Path(spread.cert_dir("datanode", "rogue")), "datanode")
    link = await connect(MASTER_ADDRESS, 7000, datanode, "master")
    await link.write_frame(ListVideos(query="", sort="", cursor="", limit=10, user="admin"))
    with pytest.raises(Exception, match="datanode may not send ListVideos"):
        await link.read_expected(ListVideos, timeout=5)
    with pytest.raises(PeerRefused, match="master certificate, not a datanode one"):
        await connect(MASTER_ADDRESS, 7000, web, "datanode")
