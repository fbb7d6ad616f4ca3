"""Conditional requests (RFC 9110 §13): a stored video's validators, and whether the
preconditions a request sends hold for them (pure, no I/O).

Theory of operation
-------------------
A video's bytes are vouched for by a strong ETag (its sha256, quoted) and, for parts whose
bytes never change after their upload, a Last-Modified date (`Validators`). ranges.decide
asks `failed_status` first, in the order §13.2.2 fixes: If-Match, else If-Unmodified-Since
(failure is 412); If-None-Match, else If-Modified-Since (failure is 304). Then, with a
Range only, `if_range_matches` says whether the client's partial copy is of these bytes.

Nothing here raises on what a client sent: an entity-tag list or a date that does not
parse matches nothing, which is always the safe side (a 412 for If-Match, a full answer
for If-None-Match and If-Range). A Validators built from bad server data raises, since
that is a bug.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

# etagc (§8.8.3): visible ASCII except DQUOTE, plus obs-text (any non-ASCII character).
_OPAQUE_TAG = r'"[^\x00-\x20"\x7f]*"'
# One element of a #entity-tag list (§5.6.1): optional tag, then a comma or the end.
# Empty elements (",,") are legal and skipped (§5.6.1.2).
_ENTITY_TAG_ELEMENT_RE = re.compile(rf"[ \t]*(?:(W/)?({_OPAQUE_TAG}))?[ \t]*(?:,|\Z)")
# The three HTTP-date shapes of §5.6.7 (IMF-fixdate, RFC 850, asctime), all GMT and case
# sensitive. email.utils alone would also take numeric zones and trailing junk.
_HTTP_DATE_RE = re.compile(
    r"[A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
    r"|[A-Z][a-z]{5,8}, [0-9]{2}-[A-Z][a-z]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
    r"|[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4}"
)


@dataclass(frozen=True)
class Validators:
    """The stored video's validators: a strong ETag with quotes, and a Unix time, or None
    when no date can vouch for the bytes (they may change under the same date): then no
    Last-Modified is sent and every date condition is ignored (§13.1.3-13.1.5)."""

    etag: str
    last_modified: float | None

    def __post_init__(self) -> None:
        # Server data, not client input: a bad value is a bug, and raising finds it.
        if not re.fullmatch(_OPAQUE_TAG, self.etag):
            raise ValueError(f"not a strong entity tag: {self.etag!r}")
        if self.last_modified is not None and not math.isfinite(self.last_modified):
            raise ValueError(f"last_modified is not finite: {self.last_modified!r}")

    def date(self) -> int | None:
        """Last-Modified in whole seconds, as HTTP-dates have them (None if none)."""
        return None if self.last_modified is None else math.floor(self.last_modified)


def failed_status(headers: dict[str, str], validators: Validators) -> int | None:
    """412 or 304 when a precondition fails (§13.2.2), None to go on. `headers`: the
    request's fields by lower-cased name, each one's lines combined (as ranges.decide
    passes them)."""
    last_modified = validators.date()
    if_match = headers.get("if-match")
    if if_match is not None:
        # §13.1.1: strong comparison; "*" is true because the video exists.
        if if_match.strip(" \t") != "*" and not _any_tag_matches(if_match, validators, weak=False):
            return 412
    else:
        # §13.1.4: true if the video was not modified after the given date.
        since = _parse_http_date(headers.get("if-unmodified-since"))
        if since is not None and last_modified is not None and last_modified > since:
            return 412
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        # §13.1.2: weak comparison; "*" matches because the video exists.
        matches = _any_tag_matches(if_none_match, validators, weak=True)
        if matches or if_none_match.strip(" \t") == "*":
            return 304
    else:
        # §13.1.3: evaluated only without If-None-Match, which is the more exact validator.
        since = _parse_http_date(headers.get("if-modified-since"))
        if since is not None and last_modified is not None and last_modified <= since:
            return 304
    return None


def _any_tag_matches(field_value: str, validators: Validators, *, weak: bool) -> bool:
    """Whether any entity-tag in the list matches ours (§8.8.3.2).

    A list that does not parse matches nothing: for If-Match that is a 412, the safe side;
    for If-None-Match it is a full response, also safe.
    """
    position = 0
    while position < len(field_value):
        element = _ENTITY_TAG_ELEMENT_RE.match(field_value, position)
        if element is None:
            return False
        is_weak, opaque_tag = element.group(1, 2)
        if opaque_tag == validators.etag and (weak or not is_weak):
            return True
        position = element.end()
    return False


def if_range_matches(field_value: str, validators: Validators) -> bool:
    """§13.1.5: a strong ETag compared strongly, or a date equal to Last-Modified."""
    value = field_value.strip(" \t")
    # §13.1.5: a DQUOTE within the first three characters marks an entity-tag. A weak tag
    # (W/"...") never matches, being neither our strong tag nor a date: its bytes may differ
    # from ours, and splicing ranges of two byte sequences would corrupt the client's copy.
    if value.startswith('"'):
        return value == validators.etag
    date = _parse_http_date(value)
    return date is not None and date == validators.date()


def _parse_http_date(field_value: str | None) -> int | None:
    """Seconds since the epoch of an HTTP-date (§5.6.7), or None if it is not one.

    The shape is checked here; email.utils turns the fields into a time and rejects
    impossible ones (31 Feb). Its two-digit-year pivot (69-99 mean 19xx) stands in for
    §5.6.7's "not more than 50 years in the future", which would need a clock.
    """
    if field_value is None or not _HTTP_DATE_RE.fullmatch(field_value.strip(" \t")):
        return None
    try:
        parsed = parsedate_to_datetime(field_value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:  # asctime carries no zone; every HTTP-date is in GMT
        parsed = parsed.replace(tzinfo=UTC)
    return math.floor(parsed.timestamp())
