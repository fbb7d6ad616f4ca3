"""Tests for myyoutube.links: mutual TLS between roles, who may ask what, admission limits.

Real TLS over loopback sockets in this process, with certificates from a CA made per test
module; no mocks.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
import time

import pytest

from myyoutube import certs, links, protocol, tls_contexts
from myyoutube.pool import ConnectionPool, Lease
from myyoutube.protocol import Ok, ReadBlob
from myyoutube.stream import ConnectionClosed

HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """Two CAs: the cluster's, with a cert per role, and a stranger's with a master cert."""
    root = tmp_path_factory.mktemp("pki")
    certs.init_ca(root / "ca")
    certs.init_ca(root / "other-ca")
    issued = {role: tls_contexts.load(certs.issue(root / "ca", role, role), role) for role in certs.ROLES}
    issued["stranger"] = tls_contexts.load(certs.issue(root / "other-ca", "master", "impostor"), "master")
    return issued


async def echo(conn, request: protocol.Message) -> None:
    await conn.write_frame(request)


async def served(tls, allowed=None, max_connections: int = 8) -> tuple[links.Listener, int]:
    allowed = allowed if allowed is not None else {Ok: frozenset({"web"}), ReadBlob: frozenset({"master"})}
    server = await links.serve_connections(echo, HOST, 0, tls, max_connections, allowed)
    await server.start_serving()
    return server, server.sockets[0].getsockname()[1]


async def test_mutual_tls_link_carries_frames_and_knows_the_peer_role(pki):
    """A web certificate reaches a master: both sides see each other's role, frames flow."""
    server, port = await served(pki["master"])
    try:
        conn = await links.connect(HOST, port, pki["web"], "master")
        assert conn.peer_role == "master"
        await conn.write_frame(Ok({"hello": 1}))
        assert await conn.read_frame(timeout=3) == Ok({"hello": 1})
        await conn.close()
    finally:
        server.close()


async def test_certificate_from_another_ca_is_refused(pki):
    """A client whose certificate another CA signed never gets a frame through."""
    server, port = await served(pki["master"])
    try:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            conn = await links.connect(HOST, port, pki["stranger"], "master")
            await conn.write_frame(Ok({}))
            await conn.read_frame(timeout=3)
    finally:
        server.close()


async def test_a_misconfigured_link_is_refused_in_words(pki):
    """TLS to a port that speaks none (a web front end's, answering in plain HTTP), and
    to a peer whose certificate another CA signed, are refused saying which, where
    OpenSSL's reason ("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)")
    was all one read."""

    async def answer_in_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    plain = await asyncio.start_server(answer_in_http, HOST, 0)
    plain_port = plain.sockets[0].getsockname()[1]
    stranger, stranger_port = await served(pki["stranger"])
    try:
        with pytest.raises(links.PeerRefused, match=r"does not speak TLS \(is it started without --cert-dir"):
            await links.connect(HOST, plain_port, pki["web"], "master")
        with pytest.raises(links.PeerRefused, match="has a certificate this cluster's CA did not sign"):
            await links.connect(HOST, stranger_port, pki["web"], "master")
    finally:
        plain.close()
        stranger.close()


async def test_a_plain_link_to_a_role_that_needs_tls_says_what_to_check(pki, caplog):
    """A role started without --cert-dir, talking to one started with it, is closed at
    its first bytes without a word (the TLS handshake fails); what it reports is not a
    bare "closed the connection" but which setting to check, and the other side's log
    says that the peer does not speak TLS, not just "SSLError"."""
    server, port = await served(pki["master"])
    try:
        conn = await links.connect(HOST, port, None, "master")
        await conn.write_frame(Ok({}))
        with pytest.raises(
            ConnectionClosed, match=r"before answering \(if it runs with --cert-dir, this role"
        ):
            await conn.read_frame(timeout=3)
        conn.abort()
        assert (
            "TLS handshake failed: the peer does not speak TLS (is it started without --cert-dir"
            in caplog.text
        )
    finally:
        server.close()


async def test_client_refuses_a_server_of_the_wrong_role(pki):
    """A web front end connecting to something with a datanode certificate refuses it (a
    relay or a misconfigured address is not the master)."""
    server, port = await served(pki["datanode"])
    try:
        with pytest.raises(links.PeerRefused, match="datanode certificate, not a master one"):
            await links.connect(HOST, port, pki["web"], "master")
    finally:
        server.close()


async def test_request_from_a_role_not_allowed_is_forbidden(pki):
    """A datanode may take ReadBlob only from the master: a web certificate asking gets
    Error 'forbidden' and the link is closed; the master's own request is served."""
    server, port = await served(pki["datanode"])
    try:
        web = await links.connect(HOST, port, pki["web"], "datanode")
        await web.write_frame(ReadBlob(blob_id="0" * 32, offset=0, length=1))
        with pytest.raises(Exception, match="web may not send ReadBlob"):
            await web.read_expected(ReadBlob, timeout=3)
        master = await links.connect(HOST, port, pki["master"], "datanode")
        await master.write_frame(ReadBlob(blob_id="0" * 32, offset=0, length=1))
        assert await master.read_frame(timeout=3) == ReadBlob(blob_id="0" * 32, offset=0, length=1)
        await master.close()
    finally:
        server.close()


async def test_unlisted_request_type_is_denied_by_default(pki):
    """A request type the server did not list for any role is refused on a TLS link."""
    server, port = await served(pki["master"], allowed={})
    try:
        conn = await links.connect(HOST, port, pki["web"], "master")
        await conn.write_frame(Ok({}))
        with pytest.raises(Exception, match="may not send Ok"):
            await conn.read_expected(Ok, timeout=3)
    finally:
        server.close()


async def test_silent_socket_is_dropped_after_the_handshake_timeout(pki, monkeypatch):
    """A socket that connects to a TLS listener and sends nothing is closed after
    HANDSHAKE_TIMEOUT_S, holding its handshake place no longer."""
    monkeypatch.setattr(links, "HANDSHAKE_TIMEOUT_S", 0.3)
    server, port = await served(pki["master"])
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert time.monotonic() - started < 3
        writer.close()
    finally:
        server.close()


async def test_handshakes_past_the_per_address_bound_are_closed_not_queued(pki, monkeypatch):
    """With MAX_HANDSHAKING_PER_IP silent sockets from one address holding their places,
    the next one is closed at once; an authenticated peer still gets in once they leave."""
    server, port = await served(pki["master"])
    try:
        silent = [await asyncio.open_connection(HOST, port) for _ in range(links.MAX_HANDSHAKING_PER_IP)]
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_connection(HOST, port)
        assert await asyncio.wait_for(reader.read(), 2) == b""  # closed at once, not after 5 s
        writer.close()
        for _, silent_writer in silent:
            silent_writer.close()
        await asyncio.sleep(0.2)
        conn = await links.connect(HOST, port, pki["web"], "master")
        await conn.write_frame(Ok({}))
        assert await conn.read_frame(timeout=3) == Ok({})
        await conn.close()
    finally:
        server.close()


async def test_a_burst_through_a_pool_fits_the_handshake_bounds(pki):
    """Forty requests at once through one pool to a TLS server all succeed: the pool opens
    a few connections at a time, within the server's per-address handshake bound."""
    server, port = await served(pki["master"], max_connections=64)
    pool = ConnectionPool(lambda: links.connect(HOST, port, pki["web"], "master"))

    async def ask(n: int) -> protocol.Message:
        async def attempt(lease: Lease) -> protocol.Message:
            await lease.connection.write_frame(Ok({"n": n}))
            answer = await lease.connection.read_frame(timeout=5)
            lease.done()
            return answer

        return await pool.call(attempt)

    try:
        answers = await asyncio.gather(*(ask(n) for n in range(40)))
        assert answers == [Ok({"n": n}) for n in range(40)]
    finally:
        pool.close()
        server.close()


@pytest.fixture
def own_pki(tmp_path):
    """A CA of this test's own, whose cert dirs the test may renew and revoke in."""
    certs.init_ca(tmp_path / "ca")
    return tmp_path / "ca", {role: certs.issue(tmp_path / "ca", role, role) for role in certs.ROLES}


async def test_revoked_client_is_refused_after_the_handshake_with_the_reason_logged(own_pki, caplog):
    """A web certificate listed in the master's revoked.txt never gets a frame served; the
    master logs whose certificate it was and why. Another web certificate still gets in."""
    ca, dirs = own_pki
    master = tls_contexts.load(dirs["master"], "master")
    banned = certs.read_certificate(dirs["web"] / certs.NODE_CERT)
    certs.revoke(dirs["master"], {banned.serial: "web web"}, datetime.datetime.now(datetime.UTC))
    server, port = await served(master)
    try:
        conn = await links.connect(HOST, port, tls_contexts.load(dirs["web"], "web"), "master")
        with pytest.raises((ConnectionError, ssl.SSLError)):
            await conn.write_frame(Ok({}))
            await conn.read_frame(timeout=3)
        assert f"web's certificate (serial {banned.serial:x}) is revoked" in caplog.text
        other = tls_contexts.load(certs.issue(ca, "web", "web-2"), "web")
        conn = await links.connect(HOST, port, other, "master")
        await conn.write_frame(Ok({}))
        assert await conn.read_frame(timeout=3) == Ok({})
        await conn.close()
    finally:
        server.close()


async def test_client_refuses_a_revoked_server(own_pki):
    """A master whose revoked.txt lists a datanode's certificate refuses to talk to it."""
    _, dirs = own_pki
    server, port = await served(tls_contexts.load(dirs["datanode"], "datanode"))
    banned = certs.read_certificate(dirs["datanode"] / certs.NODE_CERT)
    certs.revoke(dirs["master"], {banned.serial: ""}, datetime.datetime.now(datetime.UTC))
    try:
        with pytest.raises(links.PeerRefused, match=f"serial {banned.serial:x}\\) is revoked"):
            await links.connect(HOST, port, tls_contexts.load(dirs["master"], "master"), "datanode")
    finally:
        server.close()


async def test_open_link_of_a_peer_revoked_meanwhile_is_cut(own_pki, monkeypatch):
    """A link authenticated before its certificate was revoked is closed by the server
    within REVOCATION_CHECK_S, even in the middle of a long request (a datanode's
    heartbeats are one), without waiting for the peer to ask anything."""
    monkeypatch.setattr(links, "REVOCATION_CHECK_S", 0.1)
    _, dirs = own_pki
    server, port = await served(tls_contexts.load(dirs["master"], "master"))
    try:
        conn = await links.connect(HOST, port, tls_contexts.load(dirs["web"], "web"), "master")
        await conn.write_frame(Ok({"n": 1}))
        assert await conn.read_frame(timeout=3) == Ok({"n": 1})
        serial = certs.read_certificate(dirs["web"] / certs.NODE_CERT).serial
        certs.revoke(dirs["master"], {serial: ""}, datetime.datetime.now(datetime.UTC))
        with pytest.raises(ConnectionError):
            await conn.read_frame(timeout=3)
    finally:
        server.close()


async def test_a_pooled_link_to_a_peer_revoked_meanwhile_is_not_used_again(own_pki, monkeypatch, caplog):
    """A master keeps idle links to a datanode in its pool; once that datanode's
    certificate is revoked in the master's revoked.txt, the next request does not go out
    on a kept link (it is closed, with the reason logged) but on a new one, which the
    master then refuses to open."""
    monkeypatch.setattr(links, "REVOCATION_CHECK_S", 0.1)
    _, dirs = own_pki
    master = tls_contexts.load(dirs["master"], "master")
    server, port = await served(tls_contexts.load(dirs["datanode"], "datanode"))
    pool = ConnectionPool(
        lambda: links.connect(HOST, port, master, "datanode"), revoked=links.RevokedPeers(master)
    )

    async def attempt(lease: Lease) -> protocol.Message:
        await lease.connection.write_frame(ReadBlob(blob_id="0" * 32, offset=0, length=0))
        answer = await lease.connection.read_frame(timeout=3)
        lease.done()
        return answer

    try:
        await pool.call(attempt)
        serial = certs.read_certificate(dirs["datanode"] / certs.NODE_CERT).serial
        certs.revoke(dirs["master"], {serial: ""}, datetime.datetime.now(datetime.UTC))
        await asyncio.sleep(0.2)  # past the period the revoked serials are read again
        with pytest.raises(links.PeerRefused, match="is revoked"):
            await pool.call(attempt)
        assert (
            f"pooled link to 127.0.0.1:{port} closed: certificate (serial {serial:x}) is revoked"
            in caplog.text
        )
        assert pool.opened == 1
    finally:
        pool.close()
        server.close()


async def test_renewed_certificate_serves_new_links_while_open_ones_carry_on(own_pki):
    """The master's certificate is issued again into its live cert dir: a link opened
    before keeps working, and the next link is made with the new certificate."""
    ca, dirs = own_pki
    server, port = await served(tls_contexts.load(dirs["master"], "master"))
    web = tls_contexts.load(dirs["web"], "web")
    try:
        before = await links.connect(HOST, port, web, "master")
        old_serial = before.peer_serial
        certs.issue(ca, "master", "master", dirs["master"])
        renewed = certs.read_certificate(dirs["master"] / certs.NODE_CERT).serial
        assert renewed != old_serial
        after = await links.connect(HOST, port, web, "master")
        assert after.peer_serial == renewed
        for conn in (before, after):
            await conn.write_frame(Ok({}))
            assert await conn.read_frame(timeout=3) == Ok({})
            await conn.close()
    finally:
        server.close()
