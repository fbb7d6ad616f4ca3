"""Tests for myyoutube.tls_contexts: loading a --cert-dir, and reading it again when it changes."""

from __future__ import annotations

import datetime
import ssl

import pytest

from myyoutube import certs, tls_contexts

NOW = datetime.datetime(2026, 11, 30, 5, 0, tzinfo=datetime.UTC)


def test_a_certificate_for_another_role_is_refused_with_one_line(tmp_path):
    """A web certificate passed to a datanode is refused at start, naming both roles."""
    certs.init_ca(tmp_path / "ca")
    out = certs.issue(tmp_path / "ca", "web", "front")
    with pytest.raises(certs.CertError, match="web certificate, not a datanode one"):
        tls_contexts.load(out, "datanode")


def test_missing_cert_dir_is_one_readable_error(tmp_path):
    """Pointing --cert-dir at an empty directory says what cannot be used."""
    with pytest.raises(certs.CertError, match="cannot use the certificates"):
        tls_contexts.load(tmp_path, "master")


def test_a_missing_key_is_named(tmp_path):
    """A cert dir without its node.key (a copy that left it behind) says which file is
    missing; it used to end in OpenSSL's '[Errno 2] No such file or directory', which
    names no file."""
    certs.init_ca(tmp_path / "ca")
    out = certs.issue(tmp_path / "ca", "datanode", "dn-1")
    (out / certs.NODE_KEY).unlink()
    with pytest.raises(certs.CertError) as refused:
        tls_contexts.load(out, "datanode")
    assert str(refused.value) == (
        f"cannot use the certificates in {out}: node.key is missing (`myyoutube cert issue` writes all three)"
    )


def test_identity_is_read_again_when_its_files_change(tmp_path):
    """A certificate issued again into a loaded cert dir is what the next use sees."""
    certs.init_ca(tmp_path / "ca")
    out = certs.issue(tmp_path / "ca", "datanode", "dn-1")
    tls = tls_contexts.load(out, "datanode")
    first = tls.serial
    certs.issue(tmp_path / "ca", "datanode", "dn-1", out)
    assert tls.serial == certs.read_certificate(out / certs.NODE_CERT).serial != first
    assert sorted(p.name for p in out.iterdir()) == ["ca.crt", "node.crt", "node.key"]  # no leftovers


def test_unusable_new_files_keep_the_identity_in_use_and_are_reported_once(tmp_path, caplog):
    """A half-copied renewal (a foreign key beside the certificate) or a certificate of
    another role does not replace a working identity; the problem is logged once."""
    certs.init_ca(tmp_path / "ca")
    out = certs.issue(tmp_path / "ca", "datanode", "dn-1")
    tls = tls_contexts.load(out, "datanode")
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
    tls = tls_contexts.load(out, "datanode")
    certs.revoke(tmp_path / "ca", {tls.serial: "datanode dn-2"}, NOW)
    (out / certs.REVOKED).write_bytes((tmp_path / "ca" / certs.REVOKED).read_bytes())
    assert tls.refusal(tls.serial) and tls.serial
    said = (
        f"this datanode's own certificate (dn-2, serial {tls.serial:x}) is revoked in {out / certs.REVOKED}"
    )
    assert caplog.text.count(said) == 1
    tls_contexts.load(out, "datanode")  # a restart with the list in place says it again
    assert caplog.text.count(said) == 2


def test_a_certificate_outside_its_dates_is_told_to_be_renewed():
    """An expired (or not yet valid) certificate fails verification with the same reason
    as one another CA signed, CERTIFICATE_VERIFY_FAILED; it is told apart by its verify
    code, so the operator renews it (or sets the clock) rather than making a new CA."""

    def failed(verify_code: int) -> ssl.SSLCertVerificationError:
        exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
        exc.reason, exc.verify_code = "CERTIFICATE_VERIFY_FAILED", verify_code
        return exc

    assert "has expired (renew it with `myyoutube cert issue`" in str(tls_contexts.mismatch(failed(10)))
    assert "is not valid yet" in str(tls_contexts.mismatch(failed(9)))
    assert "this cluster's CA did not sign" in str(tls_contexts.mismatch(failed(20)))  # unknown issuer
