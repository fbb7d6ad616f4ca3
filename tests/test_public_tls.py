"""Tests for myyoutube.web.public_tls: the web's HTTPS certificate follows its renewals.

Real TLS handshakes against a real listening socket in this process, with certificates
made here; what a user would notice: after a renewal (certbot replacing the files) new
visitors get the new certificate without a restart, and a botched renewal (a key that
does not match) leaves the site up with the old one.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from myyoutube.web import public_tls
from myyoutube.web.public_tls import CertificateError, PublicCertificate


def write_certificate(folder: Path, common_name: str) -> tuple[Path, Path, int]:
    """A self-signed certificate and its key as PEM files; (cert, key, serial)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    serial = x509.random_serial_number()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "site.crt", folder / "site.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path, serial


def replace(path: Path, data: bytes) -> None:
    """As a renewal tool does: a new file renamed over the old one."""
    temporary = path.with_suffix(".new")
    temporary.write_bytes(data)
    os.replace(temporary, path)


async def served_serial(port: int) -> int:
    """Connect over TLS and return the serial of the certificate the server presented."""
    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    return x509.load_der_x509_certificate(der).serial_number


@pytest.fixture
def no_recheck_delay(monkeypatch):
    monkeypatch.setattr(public_tls, "RECHECK_S", 0.0)


async def serve(certificate: PublicCertificate) -> asyncio.Server:
    async def answer(reader, writer):
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0, ssl=certificate.listening)


async def test_a_renewed_certificate_is_served_to_new_connections(tmp_path, no_recheck_delay):
    """After the files are replaced, the next handshake presents the new certificate,
    with the same listening socket."""
    cert, key, first = write_certificate(tmp_path, "old.example")
    server = await serve(PublicCertificate(cert, key))
    port = server.sockets[0].getsockname()[1]
    try:
        assert await served_serial(port) == first
        renewed = tmp_path / "renewed"
        renewed.mkdir()
        new_cert, new_key, second = write_certificate(renewed, "new.example")
        replace(key, new_key.read_bytes())
        replace(cert, new_cert.read_bytes())
        assert await served_serial(port) == second
    finally:
        server.close()


async def test_a_botched_renewal_keeps_the_certificate_in_use(tmp_path, no_recheck_delay, caplog):
    """A certificate replaced without its key (they do not match) is refused with one
    warning, and handshakes go on with the old certificate."""
    cert, key, first = write_certificate(tmp_path, "old.example")
    server = await serve(PublicCertificate(cert, key))
    port = server.sockets[0].getsockname()[1]
    try:
        other = tmp_path / "other"
        other.mkdir()
        mismatched, _, _ = write_certificate(other, "other.example")
        replace(cert, mismatched.read_bytes())
        assert await served_serial(port) == first
        assert await served_serial(port) == first
        warnings = [r for r in caplog.records if "keeping the HTTPS certificate" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        server.close()


def test_unusable_files_at_start_are_an_error(tmp_path):
    """A key that does not exist is a clear error at start, naming the certificate."""
    cert, _, _ = write_certificate(tmp_path, "site.example")
    with pytest.raises(CertificateError, match=r"site\.crt"):
        PublicCertificate(cert, tmp_path / "missing.key")
