"""Resumable upload sessions under failure: killed web, datanode and master processes,
connections cut midway, expiry, a full index disk. Everything through real processes and
sockets (the full disk with a master served in the test's own process)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import sys
import time
import uuid
from pathlib import Path

import pytest

from harness import fill_disk, holders_of, in_process_master, mp4_bytes, small_disk, upload, wait_until
from myyoutube import links
from myyoutube.client import MasterClient, RequestFailed
from myyoutube.master.resumable import MAX_SESSIONS_PER_ACCOUNT
from myyoutube.master.state import ALIVE
from myyoutube.permissions import UPLOADER
from test_web_resumable import (
    OCTETS,
    TUS,
    create,
    offset_of,
    open_blob_files,
    patch,
    session_blob,
    stream_bytes,
    unique,
)

MIB = 1024 * 1024


async def test_web_killed_mid_patch_resumes_through_a_restarted_one(fresh_cluster, http):
    """SIGKILL of the web process while a PATCH is streaming: a new web process reports the
    offset the cluster confirmed before, and the upload completes byte for byte."""
    cluster = fresh_cluster()
    data, name, auth = mp4_bytes(os.urandom(3 * MIB)), unique(), cluster.admin_headers()
    _, location = await create(http, cluster.url, auth, name, len(data))
    assert (await patch(http, cluster.url, auth, location, 0, data[:MIB]))[0] == 204
    sent = asyncio.Event()

    async def half_then_wait():
        yield data[MIB : 2 * MIB]
        sent.set()
        await asyncio.sleep(60)

    headers = {**TUS, **OCTETS, **auth, "Upload-Offset": str(MIB), "Content-Length": str(len(data) - MIB)}
    stuck = asyncio.ensure_future(
        http.patch(f"{cluster.url}{location}", headers=headers, data=half_then_wait())
    )
    await sent.wait()
    await asyncio.sleep(0.5)
    cluster.web.kill()
    stuck.cancel()
    cluster.start_web()
    auth = cluster.admin_headers()
    offset = await offset_of(http, cluster.url, auth, location)
    assert offset == MIB  # the cut PATCH was never confirmed: nothing of it counts
    assert (await patch(http, cluster.url, auth, location, offset, data[offset:]))[0] == 204
    assert await stream_bytes(http, cluster, name) == data


async def test_datanode_killed_between_patches_is_replaced(fresh_cluster, http):
    """SIGKILL of a replica between two PATCHes: the next one copies the confirmed bytes
    to the spare node and goes on; the video ends on 3 live nodes, byte for byte."""
    cluster = fresh_cluster(datanodes=4)
    data, name, auth = mp4_bytes(os.urandom(2 * MIB)), unique(), cluster.admin_headers()
    _, location = await create(http, cluster.url, auth, name, len(data))
    assert (await patch(http, cluster.url, auth, location, 0, data[:MIB]))[0] == 204
    holding = [node for node in cluster.datanodes if list(cluster.folder(node).glob("*.open"))]
    assert len(holding) == 3
    holding[0].kill()
    assert (await patch(http, cluster.url, auth, location, MIB, data[MIB:]))[0] == 204
    assert await stream_bytes(http, cluster, name) == data
    holders = holders_of(cluster, data)
    assert len(holders) == 3 and holding[0] not in holders


async def test_a_failed_append_leaves_no_copy_on_the_node_brought_in(fresh_cluster, http):
    """A replica is lost between PATCHes and the next append, having copied the confirmed
    bytes to the spare node, dies with its web process: terminating the upload then deletes
    the spare's copy too (it used to stay on that datanode for 30 days)."""
    cluster = fresh_cluster(datanodes=4)
    data, name, auth = mp4_bytes(os.urandom(2 * MIB)), unique(), cluster.admin_headers()
    _, location = await create(http, cluster.url, auth, name, len(data))
    assert (await patch(http, cluster.url, auth, location, 0, data[:MIB]))[0] == 204
    blob_id = session_blob(cluster, location)
    holding = [node for node in cluster.datanodes if list(cluster.folder(node).glob(f"{blob_id}.open"))]
    (spare,) = [node for node in cluster.datanodes if node not in holding]
    holding[0].kill()
    client = cluster.client()
    try:
        # What a web process killed mid-PATCH leaves: an append opened (the spare now has
        # the confirmed bytes), then its connection gone without an End.
        append = await client.append_upload(location.rpartition("/")[2], MIB)
        assert list(cluster.folder(spare).glob(f"{blob_id}.open"))
        append.abort()
    finally:
        client.close()
    async with http.delete(f"{cluster.url}{location}", headers={**TUS, **auth}) as response:
        assert response.status == 204
    assert list(cluster.folder(spare).glob(f"{blob_id}.open*")) == []


async def test_master_killed_between_patches_keeps_the_session(fresh_cluster, http):
    """SIGKILL of the master between two PATCHes: the restarted master knows the upload
    and its offset, and the upload completes byte for byte."""
    cluster = fresh_cluster()
    data, name, auth = mp4_bytes(os.urandom(2 * MIB)), unique(), cluster.admin_headers()
    status, location = await create(http, cluster.url, auth, name, len(data))
    assert (await patch(http, cluster.url, auth, location, 0, data[:MIB]))[0] == 204
    cluster.master.kill()
    cluster.restart_master()
    assert await offset_of(http, cluster.url, auth, location) == MIB
    status = (await patch(http, cluster.url, auth, location, MIB, data[MIB:]))[0]
    if status == 503:
        # The datanodes had not registered again yet, so the poster had nowhere to go: the
        # bytes are all in, and the HEAD a tus client sends when it retries commits them.
        await wait_until(lambda: all_alive(cluster), "datanodes registered again")
        async with http.head(f"{cluster.url}{location}", headers={**TUS, **auth}) as response:
            assert response.status == 200
            assert response.headers["Upload-Offset"] == str(len(data))
            assert response.headers["Video-Sha256"] == hashlib.sha256(data).hexdigest()
    else:
        assert status == 204
    assert await stream_bytes(http, cluster, name) == data
    assert open_blob_files(cluster) == []


async def all_alive(cluster) -> bool:
    client = cluster.client()
    try:
        nodes = (await client.status())["datanodes"]
    finally:
        client.close()
    return len(nodes) == len(cluster.datanodes) and all(node["state"] == ALIVE for node in nodes)


async def test_expiry_removes_every_partial_byte(fresh_cluster, http):
    """A session idle past --upload-expiry is removed: no open-blob file is left on any
    datanode, not even on one that was down when it expired (the master's deletion never
    reached it: once back, it removes the copy no session holds by itself), the URL is
    404 and the name is free again."""
    cluster = fresh_cluster(master_args=("--upload-expiry", "1"))
    data, name, auth = mp4_bytes(os.urandom(MIB)), unique(), cluster.admin_headers()
    _, location = await create(http, cluster.url, auth, name, len(data))
    assert (await patch(http, cluster.url, auth, location, 0, data[: MIB // 2]))[0] == 204
    assert len({path.parent for path in open_blob_files(cluster)}) == 3
    down = next(node for node in cluster.datanodes if list(cluster.folder(node).glob("*.open")))
    down.kill()
    await wait_until(
        lambda: {path.parent for path in open_blob_files(cluster)} == {cluster.folder(down)},
        "open blobs deleted on the live nodes",
        15,
    )
    cluster.start_datanode(port=down.port)
    await wait_until(lambda: not open_blob_files(cluster), "the open blob deleted on the node back", 15)
    async with http.head(f"{cluster.url}{location}", headers={**TUS, **auth}) as response:
        assert response.status == 404
    assert (await create(http, cluster.url, auth, name, len(data)))[0] == 201
    assert cluster.stray_files() == []


class CuttingProxy:
    """A TCP proxy that forwards to the web and, once, drops both connections after
    `cut_after` bytes from the client: a network that fails mid-upload."""

    def __init__(self, cut_after: int) -> None:
        self.target_port, self.cut_after = 0, cut_after
        self.forwarded = 0
        self.cut = False

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def upstream() -> None:
            while data := await reader.read(64 * 1024):
                if not self.cut and self.forwarded + len(data) >= self.cut_after:
                    self.cut = True
                    writer.transport.abort()
                    up_writer.transport.abort()
                    return
                self.forwarded += len(data)
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        async def downstream() -> None:
            while data := await up_reader.read(64 * 1024):
                writer.write(data)
                await writer.drain()
            writer.close()

        await asyncio.gather(upstream(), downstream(), return_exceptions=True)


async def test_cli_upload_cut_at_half_resumes_by_itself(fresh_cluster, tmp_path, http):
    """The network drops at ~50 % of `myyoutube upload`: it resumes from the confirmed
    offset by itself (far fewer than twice the bytes cross the wire) and the video is
    byte-identical."""
    data = mp4_bytes(os.urandom(12 * MIB))
    path = tmp_path / unique()
    path.write_bytes(data)
    proxy = CuttingProxy(cut_after=len(data) // 2)
    port = await proxy.start()
    # The web answers to the name clients use: the proxy's address.
    cluster = fresh_cluster(web_args=("--public-url", f"http://127.0.0.1:{port}"))
    proxy.target_port = cluster.web.port
    result = await run_cli(tmp_path, cluster, f"http://127.0.0.1:{port}", "upload", str(path))
    assert result[0] == 0, result
    assert proxy.cut
    assert proxy.forwarded < len(data) * 1.5
    assert f"sha256 {hashlib.sha256(data).hexdigest()}" in result[1]
    assert await stream_bytes(http, cluster, path.name) == data


async def test_cli_rerun_resumes_the_same_upload(fresh_cluster, tmp_path, http):
    """`myyoutube upload` killed after its first pieces: the same command run again asks
    the server where it stands and sends only the rest."""
    cluster = fresh_cluster()
    data = mp4_bytes(os.urandom(16 * MIB))
    path = tmp_path / unique()
    path.write_bytes(data)
    process = await cli_process(tmp_path, cluster, cluster.url, "upload", str(path))
    state = tmp_path / "cache" / "myyoutube" / "uploads.json"
    await wait_until(lambda: state.exists(), "the upload URL is remembered", 30)
    location = next(iter(json.loads(state.read_text()).values()))
    auth = cluster.admin_headers()
    await wait_until(lambda: offset_of(http, cluster.url, auth, location), "a first piece is confirmed", 30)
    process.kill()
    await process.wait()
    before = await offset_of(http, cluster.url, auth, location)
    assert 0 < before < len(data)
    result = await run_cli(tmp_path, cluster, cluster.url, "upload", str(path))
    assert result[0] == 0, result
    assert await stream_bytes(http, cluster, path.name) == data
    assert json.loads(state.read_text()) == {}


async def cli_process(folder, cluster, url: str, *args: str):
    env = dict(os.environ, MYYOUTUBE_TOKEN=cluster.admin_token, XDG_CACHE_HOME=str(folder / "cache"))
    env["XDG_CONFIG_HOME"] = str(folder / "config")
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "myyoutube.commandline",
        *args,
        "--url",
        url,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def run_cli(folder, cluster, url: str, *args: str) -> tuple[int, str, str]:
    process = await cli_process(folder, cluster, url, *args)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode, out.decode(), err.decode()


async def test_the_master_checks_a_resumable_uploads_title_itself(cluster):
    """A title given when a resumable upload is created is checked by the master as an
    edit's is (not only by the web): a two-line or overlong one is refused with a
    sentence and no upload is opened; a good one is accepted."""
    client = cluster.client()
    try:
        for title in ("two\nlines", "x" * 1000):
            with pytest.raises(RequestFailed) as refused:
                await client.create_upload(f"titled-{uuid.uuid4().hex[:8]}.mp4", 1000, title=title)
            assert refused.value.code == "bad_request" and "title" in refused.value.message
        opened = await client.create_upload(f"titled-{uuid.uuid4().hex[:8]}.mp4", 1000, title="  A title ")
        await client.terminate_upload(opened["id"])
    finally:
        client.close()


async def test_a_name_held_by_an_unfinished_upload_is_refused_as_such(cluster, http):
    """A name an unfinished resumable upload holds (no listing shows it) is refused to a
    plain upload and to another resumable one with a sentence that says an upload is in
    progress, not that a video exists; once that upload is cancelled the name is free."""
    name = f"held-{uuid.uuid4().hex[:8]}.mp4"
    client = cluster.client()
    try:
        opened = await client.create_upload(name, 1000)
        status, body = await upload(http, cluster, name, mp4_bytes(os.urandom(1000)))
        assert status == 409 and "being uploaded" in body["error"], body
        with pytest.raises(RequestFailed) as refused:
            await client.create_upload(name, 1000)
        assert refused.value.code == "exists" and "being uploaded" in refused.value.message
        await client.terminate_upload(opened["id"])
        status, body = await upload(http, cluster, name, mp4_bytes(os.urandom(1000)))
        assert status == 201, body
    finally:
        client.close()


async def test_one_account_cannot_hold_every_upload_session(cluster, http):
    """An account holding MAX_SESSIONS_PER_ACCOUNT unfinished uploads is refused another
    (429, with a sentence saying why) while other accounts still start theirs; cancelling
    one of its uploads makes room again."""
    name = f"hoarder{uuid.uuid4().hex[:6]}"
    fields = {"username": name, "password": "a hoarder's password", "role": "uploader"}
    async with http.post(f"{cluster.url}/api/users", json=fields, headers=cluster.admin_headers()) as answer:
        assert answer.status == 201, await answer.text()
    hoarder_headers = {"Authorization": f"Bearer {cluster.sign_in(name, fields['password'])}"}
    admin = cluster.client()
    hoarder = admin.as_user(name)
    held: list[dict] = []
    try:
        for _ in range(MAX_SESSIONS_PER_ACCOUNT):
            held.append(await hoarder.create_upload(unique(), 1000))
        status, answer = await create(http, cluster.url, hoarder_headers, unique(), 1000)
        assert status == 429 and "unfinished uploads" in answer["error"], answer
        await admin.terminate_upload((await admin.create_upload(unique(), 1000))["id"])  # others may
        await hoarder.terminate_upload(held.pop()["id"])
        held.append(await hoarder.create_upload(unique(), 1000))
    finally:
        for opened in held:
            await hoarder.terminate_upload(opened["id"])
        admin.close()


async def test_a_session_the_full_index_refused_holds_neither_its_name_nor_quota(tmp_path):
    """A resumable upload refused because the master's disk is full (its session could not
    be written to the index) gives back what it took: once space is freed, the account's
    quota has room for another upload and the name can be uploaded again. Before, the
    name stayed 'being uploaded' and the room stayed held until the master restarted."""
    disk = tmp_path / "master"
    with small_disk(disk, "1m"):
        async with alice_on_an_in_process_master(disk) as (_, client):
            fill_disk(disk / "filler")
            with pytest.raises(RequestFailed) as refused:
                await client.create_upload("first.mp4", 1000)
            assert refused.value.code == "no_space"
            (disk / "filler").unlink()
            other = await client.create_upload("second.mp4", 1000)  # the quota's room is back
            await client.terminate_upload(other["id"])
            await client.create_upload("first.mp4", 1000)  # and the name is free


async def test_expiry_carries_on_through_a_full_index_disk(tmp_path, caplog):
    """Sessions due to expire while the master's disk is full stay until space is freed,
    then go, and the master runs on meanwhile (one log line per try). Before, the expiry
    task died of the index's error, and the master with it."""
    disk = tmp_path / "master"
    with small_disk(disk, "1m"):
        async with alice_on_an_in_process_master(disk) as (master, client):
            master.resumable.expiry_s = 0.2
            await client.create_upload("expiring.mp4", 1000)
            fill_disk(disk / "filler")
            expiring = asyncio.ensure_future(master.resumable.expire_forever())
            try:
                await asyncio.sleep(0.5)  # a few sweeps
                assert not expiring.done() and len(master.index.upload_sessions.sessions) == 1
                assert "could not expire upload" in caplog.text
                (disk / "filler").unlink()
                await wait_until(lambda: not master.index.upload_sessions.sessions, "the session expired", 5)
                assert "expiring.mp4" not in master.uploading
            finally:
                expiring.cancel()


@contextlib.asynccontextmanager
async def alice_on_an_in_process_master(disk: Path):
    """(a master served in this process, a client of it for the uploader 'alice', whose
    quota is 1500 bytes)."""
    master = in_process_master(disk)
    master.index.users.add("alice", "unused hash", UPLOADER, 1500, time.time())
    server = await links.serve_connections(master.handle, "127.0.0.1", 0, None, 8, {})
    await server.start_serving()
    client = MasterClient("127.0.0.1", server.sockets[0].getsockname()[1], None, user="alice")
    try:
        yield master, client
    finally:
        client.close()
        server.close()
        await server.wait_closed()
        master.pools.close()
        master.index.close()
