"""Mutual TLS between the cluster's roles: a role's SSL contexts, from its --cert-dir.

Theory of operation
-------------------
A role loads the --cert-dir that certs.py issued it (`load`): its `Tls` holds a context
for accepting links and one for opening them, both TLS 1.3 with a certificate required
of the peer, and the directory's certificate must be one of the role that loads it.

Host names are not checked (`check_hostname` off): nodes reach each other by whatever
address they advertise, often an IP, and identity is the CA-signed certificate and its
role, not the address (etcd and CockroachDB work the same way with their node certs).

Renewal without downtime: a role's `Tls` looks at its files (size, mtime, inode) each
time a link is opened or accepted and reads them again when they changed, so a renewed
`node.crt`/`node.key` (or `ca.crt`) copied into the directory is used for every new link
from then on while links already open carry on with the certificate they started with.
Files that do not make a usable identity (a key copied before its certificate, a
certificate for another role) are reported once and the identity in use is kept.

Revocation: `revoked.txt` (certs.py) is read again with the rest, and a peer presenting a
listed certificate is refused right after the handshake, before any frame, with the
reason logged; an authenticated link whose peer becomes revoked is closed at its next
request.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from myyoutube.certs import (
    CA_CERT,
    NODE_CERT,
    NODE_KEY,
    REVOKED,
    CertError,
    parse_revoked,
    peer_of_certificate,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Identity:
    """One reading of a --cert-dir: who we are, our contexts, and whom we refuse."""

    name: str
    serial: int
    server: ssl.SSLContext
    client: ssl.SSLContext
    revoked: frozenset[int]


def _context(purpose: ssl.Purpose, cert_dir: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(purpose, cafile=str(cert_dir / CA_CERT))
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False  # identity is the CA-signed certificate (see module doc)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(cert_dir / NODE_CERT, cert_dir / NODE_KEY)
    return context


def _read_identity(cert_dir: Path, expected_role: str) -> _Identity:
    # Named here: OpenSSL's own error for a missing file names no file at all.
    missing = [name for name in (CA_CERT, NODE_CERT, NODE_KEY) if not (cert_dir / name).is_file()]
    if missing:
        raise CertError(
            f"cannot use the certificates in {cert_dir}: {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing (`myyoutube cert issue` writes all three)"
        )
    try:
        peer = peer_of_certificate(x509.load_pem_x509_certificate((cert_dir / NODE_CERT).read_bytes()))
        server = _context(ssl.Purpose.CLIENT_AUTH, cert_dir)
        client = _context(ssl.Purpose.SERVER_AUTH, cert_dir)
        revoked = (
            parse_revoked((cert_dir / REVOKED).read_text()) if (cert_dir / REVOKED).exists() else frozenset()
        )
    except (OSError, ValueError, ssl.SSLError) as exc:
        raise CertError(f"cannot use the certificates in {cert_dir}: {exc}") from exc
    if peer.role != expected_role:
        raise CertError(
            f"{cert_dir / NODE_CERT} is a {peer.role or 'role-less'} certificate, not a {expected_role} one"
        )
    return _Identity(peer.name, peer.serial, server, client, revoked)


# The files whose change makes a role read its --cert-dir again.
_WATCHED = (CA_CERT, NODE_CERT, NODE_KEY, REVOKED)

Signature = tuple[tuple[int, int, int] | None, ...]


def files_signature(paths: Iterable[Path]) -> Signature:
    """What tells a changed file from an unchanged one without reading it (a stat() each;
    a file replaced by a rename has a new inode even if its time and size match)."""
    marks: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            status = os.stat(path)
        except OSError:
            marks.append(None)
            continue
        marks.append((status.st_mtime_ns, status.st_size, status.st_ino))
    return tuple(marks)


def _signature(cert_dir: Path) -> Signature:
    return files_signature(cert_dir / name for name in _WATCHED)


class Tls:
    """A role's TLS identity from its --cert-dir: contexts for accepting and for
    connecting (mutual both ways), and the revoked serials it refuses. Every use looks
    at the files and reads them again if they changed (renewal, revocation)."""

    def __init__(self, cert_dir: Path, role: str) -> None:
        self.cert_dir, self.role = cert_dir, role
        self._signature = _signature(cert_dir)
        self._identity = _read_identity(cert_dir, role)  # at start, unusable files are fatal
        self._unusable: Signature | None = None  # files already found unusable, said once
        if self._identity.serial in self._identity.revoked:
            self._say_own_certificate_revoked(self._identity)

    def _current(self) -> _Identity:
        signature = _signature(self.cert_dir)
        if signature in (self._signature, self._unusable):
            return self._identity
        try:
            identity = _read_identity(self.cert_dir, self.role)
        except CertError as exc:
            self._unusable = signature
            log.warning("keeping the certificate in use (serial %x): %s", self._identity.serial, exc)
            return self._identity
        if identity.serial != self._identity.serial:
            log.info(
                "new links use the renewed certificate of %s (serial %x)", identity.name, identity.serial
            )
        if identity.revoked != self._identity.revoked:
            log.info("revocation list read again: %d certificate(s) revoked", len(identity.revoked))
        if identity.serial in identity.revoked and (
            identity.serial != self._identity.serial or self._identity.serial not in self._identity.revoked
        ):
            self._say_own_certificate_revoked(identity)
        self._identity, self._signature = identity, signature
        return identity

    def _say_own_certificate_revoked(self, identity: _Identity) -> None:
        """Peers refuse a revoked certificate right after the handshake, which this side
        sees only as a closed connection ("master unreachable"): say why, once."""
        log.warning(
            "this %s's own certificate (%s, serial %x) is revoked in %s: every peer refuses its links; "
            "issue it a new one (`myyoutube cert issue --role %s --name %s DIR`) and copy it here",
            self.role,
            identity.name,
            identity.serial,
            self.cert_dir / REVOKED,
            self.role,
            identity.name,
        )

    @property
    def server(self) -> ssl.SSLContext:
        return self._current().server

    @property
    def client(self) -> ssl.SSLContext:
        return self._current().client

    @property
    def name(self) -> str:
        return self._current().name

    @property
    def serial(self) -> int:
        return self._current().serial

    @property
    def revoked(self) -> frozenset[int]:
        """The serials of the certificates to refuse."""
        return self._current().revoked

    def refusal(self, serial: int | None, name: str = "") -> str | None:
        """Why a peer presenting certificate `serial` must be refused, or None."""
        if serial is None or serial not in self._current().revoked:
            return None
        holder = f"{name}'s certificate" if name else "certificate"
        return f"{holder} (serial {serial:x}) is revoked in {self.cert_dir / REVOKED}"


def load(cert_dir: Path, expected_role: str) -> Tls:
    """The TLS identity in `cert_dir`; CertError (one line) if it is unusable or issued for
    another role."""
    return Tls(cert_dir, expected_role)


# What a failed handshake's reason (OpenSSL's) says about the setup, in words: each is a
# configuration to fix, not a moment of bad luck. Other reasons (a reset mid-handshake,
# a peer restarting) stay SSLErrors, which callers take as a link that may come back.
# (A peer refusing *our* certificate is not among them: under TLS 1.3 its alert comes
# after our side of the handshake is done, as the link's first read fails.)
_MISMATCHES = {
    "WRONG_VERSION_NUMBER": "does not speak TLS (is it started without --cert-dir, or another program's port?)",
    "CERTIFICATE_VERIFY_FAILED": "has a certificate this cluster's CA did not sign (`myyoutube cert` makes them)",
}

# OpenSSL's verify codes for a certificate outside its dates: signed by our CA, but to be
# renewed (or a clock to be set), not replaced by another CA's.
_OUTSIDE_ITS_DATES = {9: "is not valid yet", 10: "has expired"}


def mismatch(exc: ssl.SSLError) -> str | None:
    """What a handshake that failed with `exc` says about the peer, in words; None when
    it is no sign of a misconfiguration."""
    dates = _OUTSIDE_ITS_DATES.get(getattr(exc, "verify_code", 0))
    if dates is not None:
        return f"has a certificate that {dates} (renew it with `myyoutube cert issue`, or check the clocks)"
    return _MISMATCHES.get(getattr(exc, "reason", None) or "")
