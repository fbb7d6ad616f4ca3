"""Tests for myyoutube.certs: the cluster CA, role certificates, the revocation list."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from myyoutube import certs, tls_contexts


def test_issued_certificate_names_its_role_and_is_a_ready_cert_dir(tmp_path):
    """`issue` writes ca.crt, node.crt and a 0600 node.key; loading it gives the role and
    name, and the certificate's role is read back from its SAN."""
    certs.init_ca(tmp_path / "ca")
    out = certs.issue(tmp_path / "ca", "datanode", "dn-7")
    assert out == tmp_path / "ca" / "dn-7"
    assert sorted(p.name for p in out.iterdir()) == ["ca.crt", "node.crt", "node.key"]
    assert (out / "node.key").stat().st_mode & 0o077 == 0
    assert (tmp_path / "ca" / "ca.key").stat().st_mode & 0o077 == 0
    tls = tls_contexts.load(out, "datanode")
    assert (tls.role, tls.name) == ("datanode", "dn-7")
    der = x509.load_pem_x509_certificate((out / "node.crt").read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    assert certs.role_of(der) == "datanode"


def test_issuing_from_a_folder_with_no_ca_says_how_to_make_one(tmp_path):
    """`cert issue ... ./typo` said "cannot read the CA in typo: [Errno 2] No such file or
    directory: 'typo/ca.key'"; it now names the missing file in words and the command that
    makes a CA, and writes nothing."""
    with pytest.raises(certs.CertError) as refused:
        certs.issue(tmp_path / "typo", "datanode", "dn1")
    assert str(refused.value) == (
        f"cannot read the CA in {tmp_path / 'typo'}: {tmp_path / 'typo' / 'ca.key'} does not exist "
        f"(`myyoutube cert init {tmp_path / 'typo'}` creates a CA there)"
    )
    assert not (tmp_path / "typo").exists()


def test_issuing_over_another_roles_certificate_is_refused(tmp_path):
    """`cert issue --role web --name master ./ca` where ./ca/master holds the master's
    certificate replaced the master's key and certificate by a web one without a word;
    it is refused and the master's files stay. The same role there is a renewal."""
    certs.init_ca(tmp_path / "ca")
    master = certs.issue(tmp_path / "ca", "master", "master")
    before = {name: (master / name).read_bytes() for name in (certs.NODE_CERT, certs.NODE_KEY)}
    with pytest.raises(certs.CertError) as refused:
        certs.issue(tmp_path / "ca", "web", "master")
    assert str(refused.value) == (
        f"{master} holds the master certificate of master; a web certificate there would "
        "replace it and its key: choose another --name (or --out)"
    )
    assert {name: (master / name).read_bytes() for name in before} == before
    certs.issue(tmp_path / "ca", "master", "master")  # a renewal
    assert (master / certs.NODE_KEY).read_bytes() != before[certs.NODE_KEY]


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


def test_role_of_garbage_is_none():
    """Bytes that are no certificate grant no role."""
    assert certs.role_of(b"not a certificate") is None and certs.role_of(None) is None


NOW = datetime.datetime(2026, 11, 30, 5, 0, tzinfo=datetime.UTC)


def test_revocation_list_reads_serials_as_people_copy_them():
    """First word per line, hex with or without 0x and colons; comments and blanks ignored."""
    text = "# revoked by the operator\n\n1a2b  # datanode dn-3 revoked ...\n0xFF\n  de:ad:be:ef extra words\n"
    assert certs.parse_revoked(text) == {0x1A2B, 0xFF, 0xDEADBEEF}


def test_a_bad_revocation_line_is_named_by_number():
    with pytest.raises(certs.CertError, match=r"revoked\.txt line 2: 'zz' is not a hexadecimal serial"):
        certs.parse_revoked("1a\nzz\n")


def test_revoke_adds_each_serial_once_and_keeps_the_existing_lines(tmp_path):
    """revoke() appends new serials with a note, leaves what was listed, says what it added."""
    (tmp_path / certs.REVOKED).write_text("# kept\n1a")
    assert certs.revoke(tmp_path, {0x1A: "", 0x2B: "web front-2"}, NOW) == [0x2B]
    assert (
        tmp_path / certs.REVOKED
    ).read_text() == "# kept\n1a\n2b  # web front-2 revoked 2026-11-30T05:00:00Z\n"
    assert certs.revoke(tmp_path, {0x2B: ""}, NOW) == []
    assert certs.parse_revoked((tmp_path / certs.REVOKED).read_text()) == {0x1A, 0x2B}


def test_issue_copies_the_cas_revocation_list(tmp_path):
    """A cert dir issued after a revocation in the CA's directory already refuses it."""
    certs.init_ca(tmp_path / "ca")
    certs.revoke(tmp_path / "ca", {0x99: ""}, NOW)
    tls = tls_contexts.load(certs.issue(tmp_path / "ca", "master", "m"), "master")
    assert "(serial 99) is revoked" in (tls.refusal(0x99) or "")
    assert tls.refusal(0x98) is None
