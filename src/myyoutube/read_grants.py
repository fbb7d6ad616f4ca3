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
as every other order of the master's. A master that restarts thus voids the grants it
gave; a read that meets that is refused and retried through the master.

Pure: no clock reads (time comes in as `now`, Unix seconds), no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

# How long a grant may be shown. A read shows it on its start and again at each replica
# it fails over to, which may come an hour into a long video, while the player asks for
# a new range (and so a new grant) every few seconds to minutes. It also covers the
# difference between the master's clock and a datanode's on another machine. A leaked
# grant reads only its one blob, which the web was allowed to read anyway.
GRANT_TTL_S = 600.0

# Bytes of the master's read key: an HMAC-SHA256 key as long as its output.
READ_KEY_BYTES = 32

# A grant is "<expiry>.<64 hex digits>"; anything longer is not one (a peer's string is
# bounded before it is parsed).
GRANT_MAX_CHARS = 96


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


def refusal(key: str, shown: str, blob_id: str, now: float) -> str | None:
    """Why a read of `blob_id` showing `shown` may not be served (a sentence for the
    reader's log); None if the grant is good. `key` is '' until the master has sent one."""
    if not key:
        return "this datanode has not heard from the master since it started; no grant is valid yet"
    expires_text, _, mac = shown.partition(".")
    if len(shown) > GRANT_MAX_CHARS or not expires_text.isdigit():
        return "the read has no grant from the master"
    expires = int(expires_text)
    if not hmac.compare_digest(mac, _mac(key, blob_id, expires)):
        return "the grant is not the master's for this blob (or the master restarted since)"
    if now > expires:
        return "the grant has expired"
    return None
