"""Tests for myyoutube.certs: the cluster CA, role certificates, loading a --cert-dir."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from myyoutube import certs


def test_issued_certificate_names_its_role_and_is_a_ready_cert_dir(tmp_path):
    """`issue` writes ca.crt, node.crt and a 0600 node.key; loading it gives the role and
    name, and the certificate's role is read back from its SAN."""
    certs.init_ca(tmp_path / "ca")
    out = certs.issue(tmp_path / "ca", "datanode", "dn-7")
    assert out == tmp_path / "ca" / "dn-7"
    assert sorted(p.name for p in out.iterdir()) == ["ca.crt", "node.crt", "node.key"]
    assert (out / "node.key").stat().st_mode & 0o077 == 0
    assert (tmp_path / "ca" / "ca.key").stat().st_mode & 0o077 == 0
    tls = certs.load(out, "datanode")
    assert (tls.role, tls.name) == ("datanode", "dn-7")
    der = x509.load_pem_x509_certificate((out / "node.crt").read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    assert certs.role_of(der) == "datanode"


def test_a_certificate_for_another_role_is_refused_with_one_line(tmp_path):
    """A web certificate passed to a datanode is refused at start, naming both roles."""
    certs.init_ca(tmp_path / "ca")
    out = certs.issue(tmp_path / "ca", "web", "front")
    with pytest.raises(certs.CertError, match="web certificate, not a datanode one"):
        certs.load(out, "datanode")


def test_init_refuses_to_replace_an_existing_ca(tmp_path):
    """A second `cert init` on the same directory would orphan every issued certificate."""
    certs.init_ca(tmp_path / "ca")
    with pytest.raises(certs.CertError, match="exists already"):
        certs.init_ca(tmp_path / "ca")


@pytest.mark.parametrize(
    ("role", "name"), [("admin", "x"), ("web", ""), ("web", "../escape"), ("web", ".hidden")]
)
def test_bad_role_or_name_is_refused(tmp_path, role, name):
    """Only the three roles exist, and a name must be a plain directory name."""
    certs.init_ca(tmp_path / "ca")
    with pytest.raises(certs.CertError):
        certs.issue(tmp_path / "ca", role, name)


def test_missing_cert_dir_is_one_readable_error(tmp_path):
    """Pointing --cert-dir at an empty directory says what cannot be used."""
    with pytest.raises(certs.CertError, match="cannot use the certificates"):
        certs.load(tmp_path, "master")


def test_role_of_garbage_is_none():
    """Bytes that are no certificate grant no role."""
    assert certs.role_of(b"not a certificate") is None and certs.role_of(None) is None
