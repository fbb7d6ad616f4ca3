"""Tests for myyoutube.certs: the cluster CA, role certificates, loading a --cert-dir."""

from __future__ import annotations

import datetime

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


def test_missing_cert_dir_is_one_readable_error(tmp_path):
    """Pointing --cert-dir at an empty directory says what cannot be used."""
    with pytest.raises(certs.CertError, match="cannot use the certificates"):
        certs.load(tmp_path, "master")


def test_a_missing_key_is_named(tmp_path):
    """A cert dir without its node.key (a copy that left it behind) says which file is
    missing; it used to end in OpenSSL's '[Errno 2] No such file or directory', which
    names no file."""
    certs.init_ca(tmp_path / "ca")
    out = certs.issue(tmp_path / "ca", "datanode", "dn-1")
    (out / certs.NODE_KEY).unlink()
    with pytest.raises(certs.CertError) as refused:
        certs.load(out, "datanode")
    assert str(refused.value) == (
        f"cannot use the certificates in {out}: node.key is missing (`myyoutube cert issue` writes all three)"
    )


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
    tls = certs.load(certs.issue(tmp_path / "ca", "master", "m"), "master")
    assert "(serial 99) is revoked" in (tls.refusal(0x99) or "")
    assert tls.refusal(0x98) is None


def test_identity_is_read_again_when_its_files_change(tmp_path):
    """A certificate issued again into a loaded cert dir is what the next use sees."""
    certs.init_ca(tmp_path / "ca")
    out = certs.issue(tmp_path / "ca", "datanode", "dn-1")
    tls = certs.load(out, "datanode")
    first = tls.serial
    certs.issue(tmp_path / "ca", "datanode", "dn-1", out)
    assert tls.serial == certs.read_certificate(out / certs.NODE_CERT).serial != first
    assert sorted(p.name for p in out.iterdir()) == ["ca.crt", "node.crt", "node.key"]  # no leftovers


def test_unusable_new_files_keep_the_identity_in_use_and_are_reported_once(tmp_path, caplog):
    """A half-copied renewal (a foreign key beside the certificate) or a certificate of
    another role does not replace a working identity; the problem is logged once."""
    certs.init_ca(tmp_path / "ca")
    out = certs.issue(tmp_path / "ca", "datanode", "dn-1")
    tls = certs.load(out, "datanode")
    serial = tls.serial
    other = certs.issue(tmp_path / "ca", "datanode", "dn-2")
    (out / certs.NODE_KEY).write_bytes((other / certs.NODE_KEY).read_bytes())
    assert (tls.serial, tls.serial) == (serial, serial)
    assert caplog.text.count("keeping the certificate in use") == 1
    web = certs.issue(tmp_path / "ca", "web", "front")
    for name in (certs.NODE_CERT, certs.NODE_KEY):
        (out / name).write_bytes((web / name).read_bytes())
    assert tls.serial == serial and "web certificate, not a datanode one" in caplog.text


def test_a_role_whose_own_certificate_is_revoked_says_so_once(tmp_path, caplog):
    """A revoked datanode's peers close its links right after the handshake, and its log
    said only "master unreachable (... closed the connection)", retrying for ever; the
    revocation list copied into its own cert dir now makes it say, once, that its own
    certificate is revoked and what to do."""
    certs.init_ca(tmp_path / "ca")
    out = certs.issue(tmp_path / "ca", "datanode", "dn-2")
    tls = certs.load(out, "datanode")
    certs.revoke(tmp_path / "ca", {tls.serial: "datanode dn-2"}, NOW)
    (out / certs.REVOKED).write_bytes((tmp_path / "ca" / certs.REVOKED).read_bytes())
    assert tls.refusal(tls.serial) and tls.serial
    said = (
        f"this datanode's own certificate (dn-2, serial {tls.serial:x}) is revoked in {out / certs.REVOKED}"
    )
    assert caplog.text.count(said) == 1
    certs.load(out, "datanode")  # a restart with the list in place says it again
    assert caplog.text.count(said) == 2
