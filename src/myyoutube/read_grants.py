"""Grants: the master's permission for a reader other than itself to read one blob.

Theory of operation
-------------------
The web front end reads a video's bytes straight from the datanodes, so that every byte
crosses one hop fewer (the master used to relay them all). It must not be able to read
just any blob, though: it runs FFmpeg on files strangers upload, and a datanode also
holds the index's snapshots (every account's password hash). So the web asks the master
where a video's part is (LocateVideo), the master checks that the visitor may see it,
and answers with the datanodes that hold it and a grant: an HMAC, under a key only the
master and its datanodes know, of the blob's id and an expiry. A datanode serves a
ReadBlob from the web only with a valid grant for that blob.

The key is made afresh each time the master starts and reaches each datanode in the
answers to its control connection (Commands.read_key), over the same authenticated link
as every other order of the master's. A datanode accepts grants under the key it has
and the one before (`KeyRing`): a stream that started before a master restart may have
to fail over to another replica after it, and must not be refused then. A second
restart voids them. A read refused all the same is retried through the master.

Pure: no clock reads (time comes in as `now`, Unix seconds), no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

# How long a grant may be shown. A read shows it on its start and again at each replica
# it fails over to, which may come hours into a film a browser asked for in one request
# (`Range: bytes=0-`, read as it plays). It also covers the difference between the
# master's clock and a datanode's on another machine. Short grants would buy little: a
# grant reads only its one blob, which the web was allowed to read, and the web already
# vouches for who the visitor is; what a grant keeps from the web is every other blob.
GRANT_TTL_S = 6 * 3600.0

# Bytes of the master's read key: an HMAC-SHA256 key as long as its output.
READ_KEY_BYTES = 32

# A grant is "<expiry>.<64 hex digits>"; anything longer is not one (a peer's string is
# bounded before it is parsed).
GRANT_MAX_CHARS = 96

# What `grant` makes: decimal seconds, a dot, a lowercase hex SHA-256.
_GRANT_SHAPE = re.compile(r"[0-9]+\.[0-9a-f]{64}")


def new_key() -> str:
    """A fresh read key, as hex (how it travels in Commands)."""
    return secrets.token_hex(READ_KEY_BYTES)


def _mac(key: str, blob_id: str, expires: int) -> str:
    message = f"{blob_id}\n{expires}".encode()
    return hmac.new(bytes.fromhex(key), message, hashlib.sha256).hexdigest()


def grant(key: str, blob_id: str, now: float) -> str:
    """The master's permission to read `blob_id` until GRANT_TTL_S from `now`."""
    expires = int(now + GRANT_TTL_S)
    return f"{expires}.{_mac(key, blob_id, expires)}"


class KeyRing:
    """A datanode's read keys: the master's latest, and the one before it."""

    def __init__(self) -> None:
        self.keys: tuple[str, ...] = ()  # newest first; none until the master first answers

    def learn(self, key: str) -> None:
        """The master's key, as its latest answer carried it (the same one, mostly)."""
        if key and (not self.keys or key != self.keys[0]):
            self.keys = (key, *self.keys[:1])


def refusal(keys: tuple[str, ...], shown: str, blob_id: str, now: float) -> str | None:
    """Why a read of `blob_id` showing `shown` may not be served (a sentence for the
    reader's log); None if the grant is good under one of `keys` (a KeyRing's)."""
    if not keys:
        return "this datanode has not heard from the master since it started; no grant is valid yet"
    # ASCII digits and hex only: str.isdigit() also takes "²", which int() refuses, and
    # compare_digest raises on non-ASCII text; a peer's string must not raise here.
    if len(shown) > GRANT_MAX_CHARS or not _GRANT_SHAPE.fullmatch(shown):
        return "the read has no grant from the master"
    expires_text, _, mac = shown.partition(".")
    expires = int(expires_text)
    if not any(hmac.compare_digest(mac, _mac(key, blob_id, expires)) for key in keys):
        return "the grant is not the master's for this blob (or the master restarted twice since)"
    if now > expires:
        return "the grant has expired"
    return None
