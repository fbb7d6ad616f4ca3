"""The web's public HTTPS certificate (--tls-cert/--tls-key), read again when it changes.

Theory of operation
-------------------
Public certificates are short-lived (Let's Encrypt: 90 days) and renewed by a tool that
replaces the files in place. The web must serve the new one without a restart, which
would cut every stream in progress. The listening socket keeps one SSL context for its
whole life, but Python lets a server pick another context per connection from the SNI
callback, which runs inside each TLS handshake before the certificate is sent. So the
listening context's callback looks at the two files (a stat each, at most once per
RECHECK_S) and hands the handshake the context of the newest pair that loads.

A replacement that does not load (a half-written file, a key that does not match) is
logged once and the certificate in use is kept, so a botched renewal never takes the
site down; it is tried again as soon as the files change again. At start, files that do
not load are fatal, as before.
"""

from __future__ import annotations

import logging
import ssl
import time
from pathlib import Path

from myyoutube.tls_contexts import Signature, files_signature

log = logging.getLogger(__name__)

# How often a handshake may look at the files. Renewals happen every few weeks; a second
# is prompt enough, and keeps a burst of handshakes from stat()ing the files each.
RECHECK_S = 1.0


class CertificateError(Exception):
    """The certificate or key cannot be used."""


def _load(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise CertificateError(f"cannot load the TLS certificate {cert}: {exc}") from exc
    return context


class PublicCertificate:
    """The listening SSL context of the web, serving whichever certificate is current."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.cert, self.key = cert, key
        self._signature = files_signature((cert, key))
        # The context the listening socket keeps; CertificateError at start stops the web.
        self.listening = _load(cert, key)
        self.listening.sni_callback = self._on_hello
        self._context = self.listening  # the newest that loads, handed to each handshake
        self._unusable: Signature | None = None  # a replacement already found bad, said once
        self._checked_at = time.monotonic()

    def current(self) -> ssl.SSLContext:
        """The context of the newest certificate that loads (looked at once per RECHECK_S)."""
        now = time.monotonic()
        if now - self._checked_at < RECHECK_S:
            return self._context
        self._checked_at = now
        signature = files_signature((self.cert, self.key))
        if signature in (self._signature, self._unusable):
            return self._context
        try:
            context = _load(self.cert, self.key)
        except CertificateError as exc:
            self._unusable = signature
            log.warning("keeping the HTTPS certificate in use: %s", exc)
            return self._context
        log.info("new HTTPS connections get the renewed certificate %s", self.cert)
        self._context, self._signature = context, signature
        return context

    def _on_hello(
        self, connection: ssl.SSLObject, server_name: str | None, listening: ssl.SSLContext
    ) -> None:
        # Returning None goes on with the handshake, now under the context set here.
        connection.context = self.current()
