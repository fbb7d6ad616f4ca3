"""Tests for myyoutube.ranges: RFC 9110 conditional and range GET/HEAD decisions (the
conditions through myyoutube.preconditions, which ranges.decide asks first)."""

from __future__ import annotations

import email.parser
import random
import re
import time

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from myyoutube.preconditions import Validators
from myyoutube.ranges import (
    COALESCE_GAP_BYTES,
    MAX_RANGE_HEADER_BYTES,
    MAX_RANGES,
    ByteRange,
    Decision,
    decide,
    multipart_closing,
    multipart_part_header,
)

SIZE = 10_000
# Printable ASCII so the stdlib email parser can read multipart bodies built from it.
CONTENT = bytes(random.Random(1).choices(b"abcdefghijklmnopqrstuvwxyz0123456789", k=SIZE))
ETAG = '"v1-abc123"'
LAST_MODIFIED = 784111777.75  # Sun, 06 Nov 1994 08:49:37.75 GMT
LAST_MODIFIED_HTTP = "Sun, 06 Nov 1994 08:49:37 GMT"
VALIDATORS = Validators(etag=ETAG, last_modified=LAST_MODIFIED)
BOUNDARY = "3d6b6a416f9b5f2a"
CONTENT_TYPE = "video/mp4"


def get(headers: dict[str, str] | None = None, *, size: int = SIZE, method: str = "GET"):
    """decide() for the test video with the given request headers."""
    return decide(method, headers or {}, size, CONTENT_TYPE, VALIDATORS, BOUNDARY)


def assert_full_200(decision: Decision, size: int = SIZE) -> None:
    assert decision.status == 200
    assert decision.ranges == ((ByteRange(0, size),) if size else ())
    assert decision.headers["Content-Length"] == str(size)
    assert decision.headers["Content-Type"] == CONTENT_TYPE
    assert "Content-Range" not in decision.headers


def build_body(decision: Decision, content: bytes = CONTENT) -> bytes:
    """The body exactly as the handler will write it."""
    if not decision.is_multipart:
        return b"".join(content[r.start : r.stop] for r in decision.ranges)
    body = b""
    for r in decision.ranges:
        body += multipart_part_header(r, len(content), CONTENT_TYPE, BOUNDARY)
        body += content[r.start : r.stop]
    return body + multipart_closing(BOUNDARY)


def parse_multipart(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]]:
    """A strict hand parser of multipart/byteranges, independent of the module."""
    delimiter = b"\r\n--" + boundary.encode()
    pieces = body.split(delimiter)
    assert pieces[0] == b"", "nothing but the leading CRLF may precede the first delimiter"
    assert pieces[-1] == b"--\r\n", "the body must end with the close-delimiter"
    parts = []
    for piece in pieces[1:-1]:
        assert piece.startswith(b"\r\n")
        head, separator, payload = piece[2:].partition(b"\r\n\r\n")
        assert separator
        fields = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        parts.append((fields, payload))
    return parts


# --- plain GET and HEAD -------------------------------------------------------------------


def test_plain_get_sends_whole_video_with_every_always_header():
    """A GET without conditions gets 200, the whole video, and all the always-present headers."""
    decision = get()
    assert_full_200(decision)
    assert decision.headers == {
        "Accept-Ranges": "bytes",
        "ETag": ETAG,
        "Last-Modified": LAST_MODIFIED_HTTP,
        "Cache-Control": "public, no-cache",
        "Content-Type": CONTENT_TYPE,
        "Content-Length": str(SIZE),
    }
    assert not decision.is_multipart


def test_request_header_names_are_case_insensitive_in_a_plain_dict():
    """Header names are matched case-insensitively even in a plain dict."""
    decision = get({"RANGE": "bytes=0-9", "iF-rAnGe": ETAG})
    assert decision.status == 206
    assert decision.ranges == (ByteRange(0, 10),)


def test_aiohttp_multidict_headers_are_accepted():
    """An aiohttp-style CIMultiDictProxy works, and a Range sent twice is ignored."""
    once = CIMultiDictProxy(CIMultiDict([("range", "bytes=5-9")]))
    decision = decide("GET", once, SIZE, CONTENT_TYPE, VALIDATORS, BOUNDARY)
    assert decision.ranges == (ByteRange(5, 10),)
    twice = CIMultiDictProxy(CIMultiDict([("Range", "bytes=0-1"), ("Range", "bytes=5-9")]))
    assert_full_200(decide("GET", twice, SIZE, CONTENT_TYPE, VALIDATORS, BOUNDARY))


def test_if_none_match_lines_are_combined_as_a_list():
    """Two If-None-Match lines form one list, so a match in the second line still gives 304."""
    headers = CIMultiDictProxy(CIMultiDict([("If-None-Match", '"other"'), ("If-None-Match", ETAG)]))
    assert decide("GET", headers, SIZE, CONTENT_TYPE, VALIDATORS, BOUNDARY).status == 304


def test_head_gets_get_headers_and_no_body():
    """HEAD gets the same headers as GET, with no body ranges to send."""
    decision = get(method="HEAD")
    assert decision.status == 200
    assert decision.ranges == ()
    assert decision.headers == get().headers


def test_head_ignores_range():
    """HEAD ignores Range (§14.2: range handling is defined for GET only) and describes the 200."""
    decision = get({"Range": "bytes=0-9"}, method="HEAD")
    assert decision.status == 200
    assert decision.ranges == ()
    assert decision.headers["Content-Length"] == str(SIZE)
    assert "Content-Range" not in decision.headers


def test_head_still_evaluates_preconditions():
    """HEAD with a matching If-None-Match gets 304 just like GET."""
    assert get({"If-None-Match": ETAG}, method="HEAD").status == 304


def test_last_modified_is_imf_fixdate_truncated_to_the_second():
    """Last-Modified is an IMF-fixdate with the sub-second part dropped."""
    assert get().headers["Last-Modified"] == "Sun, 06 Nov 1994 08:49:37 GMT"


# --- single ranges ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("range_header", "expected", "content_range"),
    [
        ("bytes=0-0", ByteRange(0, 1), "bytes 0-0/10000"),
        ("bytes=100-199", ByteRange(100, 200), "bytes 100-199/10000"),
        ("bytes=9000-", ByteRange(9000, SIZE), "bytes 9000-9999/10000"),
        ("bytes=0-", ByteRange(0, SIZE), "bytes 0-9999/10000"),
        ("bytes=-500", ByteRange(9500, SIZE), "bytes 9500-9999/10000"),
        ("bytes=9999-9999", ByteRange(9999, SIZE), "bytes 9999-9999/10000"),
    ],
)
def test_single_range_forms(range_header, expected, content_range):
    """Each of a-b, a- and -n selects the bytes §14.1.2 defines, with a matching Content-Range."""
    decision = get({"Range": range_header})
    assert decision.status == 206
    assert decision.ranges == (expected,)
    assert decision.headers["Content-Range"] == content_range
    assert decision.headers["Content-Length"] == str(expected.length)
    assert decision.headers["Content-Type"] == CONTENT_TYPE
    assert decision.headers["Cache-Control"] == "public, no-cache"
    assert build_body(decision) == CONTENT[expected.start : expected.stop]


def test_last_pos_past_the_end_is_clamped():
    """A last-pos at or beyond the size is clamped to size-1."""
    decision = get({"Range": "bytes=9990-123456789"})
    assert decision.status == 206
    assert decision.ranges == (ByteRange(9990, SIZE),)
    assert decision.headers["Content-Range"] == "bytes 9990-9999/10000"


def test_suffix_longer_than_video_selects_all_of_it():
    """A suffix-length larger than the video selects the entire video as a 206."""
    decision = get({"Range": "bytes=-99999"})
    assert decision.status == 206
    assert decision.ranges == (ByteRange(0, SIZE),)
    assert decision.headers["Content-Range"] == "bytes 0-9999/10000"


def test_range_unit_is_case_insensitive():
    """'BYTES=' is the bytes unit (§14.1: range units are case-insensitive)."""
    assert get({"Range": "BYTES=1-2"}).ranges == (ByteRange(1, 3),)


def test_trailing_empty_list_element_is_accepted():
    """'bytes=0-1,' is a valid one-element list (§5.6.1.2 empty elements), not an error."""
    decision = get({"Range": "bytes=0-1,"})
    assert decision.status == 206
    assert decision.ranges == (ByteRange(0, 2),)


# --- unsatisfiable ------------------------------------------------------------------------


@pytest.mark.parametrize("range_header", ["bytes=10000-", "bytes=10000-20000", "bytes=-0", "bytes=-0,20000-"])
def test_unsatisfiable_range_set_is_416(range_header):
    """A set with no satisfiable range gets 416, 'bytes */SIZE', an empty body and no-store."""
    decision = get({"Range": range_header})
    assert decision.status == 416
    assert decision.ranges == ()
    assert decision.headers == {
        "Accept-Ranges": "bytes",
        "ETag": ETAG,
        "Last-Modified": LAST_MODIFIED_HTTP,
        "Cache-Control": "no-store",
        "Content-Length": "0",
        "Content-Range": "bytes */10000",
    }


def test_unsatisfiable_ranges_are_dropped_when_another_is_satisfiable():
    """Unsatisfiable range-specs are dropped and the satisfiable one is served."""
    decision = get({"Range": "bytes=20000-, -0, 10-19"})
    assert decision.status == 206
    assert decision.ranges == (ByteRange(10, 20),)


# --- malformed ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "range_header",
    [
        "",
        "bytes",
        "bytes=",
        "bytes=,",
        "bytes= , ,",
        "bytes=abc",
        "bytes=5-2",
        "bytes=0-1,5-2",
        "items=0-1",
        "bytes 0-1",
        "bytes = 0-1",
        "bytes=0-1;2-3",
        "bytes=-",
        "bytes=--1",
        "bytes=1-2-3",
        "bytes=0x10-20",
        "bytes=+1-2",
        "bytes=1 -2",
        "bytes=\u0663-5",  # ARABIC-INDIC DIGIT THREE is not a DIGIT
        "bytes=0-1\n",
    ],
)
def test_malformed_range_is_ignored(range_header):
    """A Range that is not a valid bytes ranges-specifier is ignored: 200 with the whole video."""
    assert_full_200(get({"Range": range_header}))


def test_overlong_range_header_is_ignored():
    """A Range over MAX_RANGE_HEADER_BYTES is ignored even if valid; one at the limit is used."""
    at_limit = "bytes=0-0" + " " * (MAX_RANGE_HEADER_BYTES - len("bytes=0-0"))
    assert get({"Range": at_limit}).ranges == (ByteRange(0, 1),)
    assert_full_200(get({"Range": at_limit + " "}))


# --- multiple ranges ----------------------------------------------------------------------


def test_multipart_body_has_exact_content_length_and_parses():
    """Distant ranges give multipart/byteranges whose built body fits Content-Length and parses."""
    decision = get({"Range": "bytes=0-99 , 5000-5099,\t-100"})
    assert decision.status == 206
    assert decision.is_multipart
    assert decision.ranges == (ByteRange(0, 100), ByteRange(5000, 5100), ByteRange(9900, SIZE))
    assert decision.headers["Content-Type"] == f"multipart/byteranges; boundary={BOUNDARY}"
    assert "Content-Range" not in decision.headers
    body = build_body(decision)
    assert len(body) == int(decision.headers["Content-Length"])
    parts = parse_multipart(body, BOUNDARY)
    assert [fields["Content-Range"] for fields, _ in parts] == [
        "bytes 0-99/10000",
        "bytes 5000-5099/10000",
        "bytes 9900-9999/10000",
    ]
    for fields, payload in parts:
        assert fields["Content-Type"] == CONTENT_TYPE
        content_range = re.fullmatch(r"bytes (\d+)-(\d+)/10000", fields["Content-Range"])
        first, last = map(int, content_range.groups())
        assert payload == CONTENT[first : last + 1]


def test_multipart_body_is_readable_by_the_stdlib_mime_parser():
    """The stdlib email parser, a second independent reader, finds the same parts."""
    decision = get({"Range": "bytes=10-19,3000-3009"})
    body = build_body(decision)
    message = email.parser.BytesParser().parsebytes(
        f"Content-Type: {decision.headers['Content-Type']}\r\n\r\n".encode() + body
    )
    assert message.is_multipart()
    parts = [(p["Content-Range"], p.get_payload(decode=True)) for p in message.get_payload()]
    assert parts == [
        ("bytes 10-19/10000", CONTENT[10:20]),
        ("bytes 3000-3009/10000", CONTENT[3000:3010]),
    ]


def test_multipart_part_header_exact_bytes():
    """A part header is CRLF, the delimiter, Content-Type and Content-Range, then a blank line."""
    header = multipart_part_header(ByteRange(5, 10), 100, "video/webm", "xyz")
    assert header == (b"\r\n--xyz\r\nContent-Type: video/webm\r\nContent-Range: bytes 5-9/100\r\n\r\n")
    assert multipart_closing("xyz") == b"\r\n--xyz--\r\n"


def test_parts_keep_request_order():
    """Parts that are not merged come out in the order the client listed them (§15.3.7.2)."""
    decision = get({"Range": "bytes=8000-8009,100-109,4000-4009"})
    assert decision.ranges == (ByteRange(8000, 8010), ByteRange(100, 110), ByteRange(4000, 4010))


def test_overlapping_ranges_coalesce_into_a_single_part():
    """Overlapping ranges merge, and one merged range is a plain single-part 206."""
    decision = get({"Range": "bytes=100-199,150-299,120-130"})
    assert decision.status == 206
    assert not decision.is_multipart
    assert decision.ranges == (ByteRange(100, 300),)
    assert decision.headers["Content-Range"] == "bytes 100-299/10000"
    assert decision.headers["Content-Type"] == CONTENT_TYPE


def test_ranges_within_the_gap_coalesce_and_beyond_it_do_not():
    """Ranges COALESCE_GAP_BYTES apart merge; one byte further apart stay separate parts."""
    gap = COALESCE_GAP_BYTES
    merged = get({"Range": f"bytes=0-9,{10 + gap}-{19 + gap}"})
    assert merged.ranges == (ByteRange(0, 20 + gap),)
    separate = get({"Range": f"bytes=0-9,{11 + gap}-{20 + gap}"})
    assert separate.ranges == (ByteRange(0, 10), ByteRange(11 + gap, 21 + gap))
    assert separate.is_multipart


def test_adjacent_ranges_merge_regardless_of_order():
    """Adjacent ranges listed backwards still merge, keeping the earliest listed group position."""
    decision = get({"Range": "bytes=9000-9099,20-29,10-19"})
    assert decision.ranges == (ByteRange(9000, 9100), ByteRange(10, 30))


def test_exactly_max_ranges_are_served():
    """MAX_RANGES distant ranges are all served as parts."""
    specs = ",".join(f"{i * 500}-{i * 500 + 9}" for i in range(MAX_RANGES))
    decision = get({"Range": f"bytes={specs}"})
    assert decision.status == 206
    assert len(decision.ranges) == MAX_RANGES
    assert len(build_body(decision)) == int(decision.headers["Content-Length"])


def test_more_than_max_ranges_is_ignored():
    """One range-spec more than MAX_RANGES makes the server ignore Range and send 200."""
    specs = ",".join(f"{i * 500}-{i * 500 + 9}" for i in range(MAX_RANGES + 1))
    assert_full_200(get({"Range": f"bytes={specs}"}))


def test_overlapping_amplification_is_refused():
    """Ranges adding up to more than the video are ignored (200), not multiplied into a 206."""
    assert_full_200(get({"Range": ",".join(["bytes=0-"] + ["0-"] * 9)}))
    assert_full_200(get({"Range": "bytes=0-5999,4000-9999"}))


def test_small_overlapping_ranges_within_size_are_served():
    """Overlaps whose total stays within the size are fine and merge into one range."""
    decision = get({"Range": "bytes=0-4999,0-4999"})
    assert decision.status == 206
    assert decision.ranges == (ByteRange(0, 5000),)


# --- If-Range -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("if_range", "honored"),
    [
        (ETAG, True),
        (f" {ETAG} ", True),
        (f"W/{ETAG}", False),  # weak tags never match If-Range
        ('"v0-stale"', False),
        (f"{ETAG}, {ETAG}", False),  # a list is not an entity-tag
        (LAST_MODIFIED_HTTP, True),
        ("Sunday, 06-Nov-94 08:49:37 GMT", True),  # RFC 850 form of the same date
        ("Sun Nov  6 08:49:37 1994", True),  # asctime form of the same date
        ("Sun, 06 Nov 1994 08:49:36 GMT", False),
        ("Sun, 06 Nov 1994 08:49:38 GMT", False),
        ("not a date", False),
        ("", False),
    ],
)
def test_if_range(if_range, honored):
    """If-Range honors Range only for our strong ETag or a date exactly equal to Last-Modified."""
    decision = get({"Range": "bytes=0-9", "If-Range": if_range})
    if honored:
        assert decision.status == 206
        assert decision.ranges == (ByteRange(0, 10),)
    else:
        assert_full_200(decision)


@pytest.mark.parametrize(
    "conditions",
    [
        {"Range": "bytes=0-9", "If-Range": LAST_MODIFIED_HTTP},
        {"If-Modified-Since": LAST_MODIFIED_HTTP},
        {"If-Unmodified-Since": "Sun, 06 Nov 1994 08:49:36 GMT"},
    ],
)
def test_without_a_date_no_date_validates(conditions):
    """Validators without a date (bytes that may change under the same date) send no
    Last-Modified, and every date condition is ignored: If-Range with a date restarts
    with the whole video, If-Modified-Since never gives 304, If-Unmodified-Since never 412."""
    decision = decide(
        "GET", conditions, SIZE, CONTENT_TYPE, Validators(etag=ETAG, last_modified=None), BOUNDARY
    )
    assert_full_200(decision)
    assert "Last-Modified" not in decision.headers and decision.headers["ETag"] == ETAG


def test_zoneless_asctime_dates_are_gmt_whatever_the_local_zone(monkeypatch):
    """An asctime date is read as GMT even when the process runs in another time zone."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert get({"Range": "bytes=0-9", "If-Range": "Sun Nov  6 08:49:37 1994"}).status == 206
        assert get({"If-Modified-Since": "Sun Nov  6 08:49:36 1994"}).status == 200
    finally:
        monkeypatch.undo()
        time.tzset()


def test_failed_if_range_sends_whole_video_even_for_unsatisfiable_range():
    """A false If-Range means 200 with the whole video, not 416, for an unsatisfiable Range."""
    assert_full_200(get({"Range": "bytes=20000-", "If-Range": '"v0-stale"'}))


def test_if_range_without_range_is_ignored():
    """If-Range alone, even stale, does not change a plain 200."""
    assert_full_200(get({"If-Range": '"v0-stale"'}))


# --- preconditions ------------------------------------------------------------------------


@pytest.mark.parametrize("if_match", [ETAG, "*", f'"a", {ETAG}', f"  ,{ETAG} ,"])
def test_if_match_passes(if_match):
    """If-Match with our ETag in the list, or '*', lets the request through."""
    assert_full_200(get({"If-Match": if_match}))


@pytest.mark.parametrize("if_match", ['"other"', f"W/{ETAG}", "", "garbage", f"{ETAG} junk", "**"])
def test_if_match_fails_with_412(if_match):
    """If-Match without a strong match (weak tags never match) answers 412 with an empty body."""
    decision = get({"If-Match": if_match})
    assert decision.status == 412
    assert decision.ranges == ()
    assert decision.headers["Content-Length"] == "0"
    assert decision.headers["Cache-Control"] == "no-store"
    assert "Content-Range" not in decision.headers


def test_if_unmodified_since():
    """If-Unmodified-Since gives 412 only for a date before Last-Modified; bad dates are ignored."""
    assert get({"If-Unmodified-Since": "Sun, 06 Nov 1994 08:49:36 GMT"}).status == 412
    assert_full_200(get({"If-Unmodified-Since": LAST_MODIFIED_HTTP}))
    assert_full_200(get({"If-Unmodified-Since": "Mon, 07 Nov 1994 08:49:37 GMT"}))
    assert_full_200(get({"If-Unmodified-Since": "yesterday"}))


def test_if_match_takes_precedence_over_if_unmodified_since():
    """With If-Match present, If-Unmodified-Since is not evaluated (§13.2.2 step 2)."""
    headers = {"If-Match": ETAG, "If-Unmodified-Since": "Sat, 01 Jan 1994 00:00:00 GMT"}
    assert_full_200(get(headers))


def test_412_wins_over_304():
    """A failed If-Match answers 412 even when If-None-Match would answer 304."""
    assert get({"If-Match": '"other"', "If-None-Match": ETAG}).status == 412


@pytest.mark.parametrize("if_none_match", [ETAG, f"W/{ETAG}", "*", f'"a",{ETAG}', f'"a", W/{ETAG}'])
def test_if_none_match_gives_304(if_none_match):
    """If-None-Match matching weakly, or '*', gives 304 with validators and no length."""
    decision = get({"If-None-Match": if_none_match})
    assert decision.status == 304
    assert decision.ranges == ()
    assert decision.headers == {
        "Accept-Ranges": "bytes",
        "ETag": ETAG,
        "Last-Modified": LAST_MODIFIED_HTTP,
        "Cache-Control": "public, no-cache",
    }


@pytest.mark.parametrize("if_none_match", ['"other"', "garbage", "", '"v1-abc123'])
def test_if_none_match_mismatch_sends_the_video(if_none_match):
    """If-None-Match that does not match (or does not parse) leads to the normal 200."""
    assert_full_200(get({"If-None-Match": if_none_match}))


def test_if_none_match_wins_over_if_modified_since():
    """If-Modified-Since is ignored when If-None-Match is present, in both directions."""
    future = "Sat, 01 Jan 2050 00:00:00 GMT"
    assert_full_200(get({"If-None-Match": '"other"', "If-Modified-Since": future}))
    past = "Sat, 01 Jan 1994 00:00:00 GMT"
    assert get({"If-None-Match": ETAG, "If-Modified-Since": past}).status == 304


@pytest.mark.parametrize(
    ("if_modified_since", "status"),
    [
        (LAST_MODIFIED_HTTP, 304),  # equal at whole-second precision despite the .75 s
        ("Sunday, 06-Nov-94 08:49:37 GMT", 304),
        ("Sun Nov  6 08:49:37 1994", 304),
        ("Sun, 06 Nov 1994 09:49:37 +0100", 200),  # HTTP-dates are GMT only
        ("sun, 06 nov 1994 08:49:37 gmt", 200),  # HTTP-date is case-sensitive (§5.6.7)
        (" Sun, 06 Nov 1994 08:49:37 GMT ", 304),  # surrounding whitespace is not the value
        ("Sun, 06 Nov 1994 08:49:38 GMT", 304),
        ("Sun, 06 Nov 1994 08:49:36 GMT", 200),
        ("Sun, 06 Nov 1994 08:49:37 GMT junk", 200),
        ("Sun, 31 Feb 1994 08:49:37 GMT", 200),
        ("0", 200),
        ("Sun, 06 Nov 1994 08:49:37 GMT" + " x" * 100, 200),
        ("Sun, 06 Nov 99999 08:49:37 GMT", 200),
    ],
)
def test_if_modified_since(if_modified_since, status):
    """If-Modified-Since gives 304 if unmodified since, in all HTTP-date forms; junk is ignored."""
    assert get({"If-Modified-Since": if_modified_since}).status == status


def test_304_takes_precedence_over_range():
    """A satisfied If-None-Match answers 304 even with a Range."""
    assert get({"If-None-Match": ETAG, "Range": "bytes=0-9"}).status == 304


def test_passing_preconditions_then_range():
    """When every precondition passes, Range is processed."""
    headers = {"If-Match": ETAG, "If-None-Match": '"other"', "Range": "bytes=5-9"}
    assert get(headers).ranges == (ByteRange(5, 10),)


# --- zero-size video ----------------------------------------------------------------------


@pytest.mark.parametrize("range_header", [None, "bytes=0-", "bytes=0-0", "bytes=-5", "bytes=-0"])
def test_zero_size_video_ignores_range(range_header):
    """An empty video always answers 200 with Content-Length 0 and nothing to send."""
    headers = {"Range": range_header} if range_header else {}
    decision = get(headers, size=0)
    assert_full_200(decision, size=0)
    assert decision.ranges == ()


def test_zero_size_video_still_honors_preconditions():
    """An empty video still answers 304 to a matching If-None-Match."""
    assert get({"If-None-Match": ETAG}, size=0).status == 304


# --- programming errors and robustness ---------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: decide("POST", {}, SIZE, CONTENT_TYPE, VALIDATORS, BOUNDARY),
        lambda: decide("get", {}, SIZE, CONTENT_TYPE, VALIDATORS, BOUNDARY),
        lambda: decide("GET", {}, -1, CONTENT_TYPE, VALIDATORS, BOUNDARY),
        lambda: decide("GET", {}, SIZE, "video/mp4\r\nX-Evil: 1", VALIDATORS, BOUNDARY),
        lambda: decide("GET", {}, SIZE, CONTENT_TYPE, VALIDATORS, "has space"),
        lambda: decide("GET", {}, SIZE, CONTENT_TYPE, VALIDATORS, ""),
        lambda: Validators(etag="abc", last_modified=0),
        lambda: Validators(etag='W/"abc"', last_modified=0),
        lambda: Validators(etag='"abc"', last_modified=float("nan")),
        lambda: ByteRange(5, 5),
    ],
)
def test_server_side_mistakes_raise(call):
    """Bad arguments from our own code (not the client) raise ValueError."""
    with pytest.raises(ValueError):
        call()


def random_range_header(rng: random.Random, junk: list[str]) -> str:
    """Either junk or a plausible bytes range-set of 1 to 18 specs, some unsatisfiable."""
    if rng.random() < 0.3:
        return "".join(rng.choices(junk, k=rng.randint(0, 12)))
    specs = []
    for _ in range(rng.randint(1, rng.choice([3, 18]))):
        first = rng.randint(0, 12_000)
        last = first + rng.randint(-50, 1_000)
        low, high = sorted((first, last))
        specs.append(rng.choice([f"{first}-{last}", f"{first}-", f"-{last}", f"{low}-{high}"]))
    return "bytes=" + rng.choice([",", ", ", " ,"]).join(specs)


def test_random_hostile_headers_never_raise():
    """Random junk in every header yields a consistent decision, never an exception."""
    rng = random.Random(20240601)
    junk = [
        '"',
        "W/",
        "*",
        ",",
        " ",
        "-",
        "=",
        "bytes",
        "0",
        "9",
        "99999",
        "\t",
        "é",
        ";",
        ETAG,
        LAST_MODIFIED_HTTP,
        "Sun Nov  6 08:49:37 1994",
        "GMT",
        "\x00",
        "\r\n",
    ]
    names = ["If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"]
    for _ in range(3000):
        headers = {
            name: "".join(rng.choices(junk, k=rng.randint(0, 4))) for name in names if rng.random() < 0.15
        }
        headers["Range"] = random_range_header(rng, junk)
        decision = get(headers)
        assert decision.status in (200, 206, 304, 412, 416)
        if decision.status in (200, 206):
            assert len(build_body(decision)) == int(decision.headers["Content-Length"])
            assert sum(r.length for r in decision.ranges) <= SIZE
            assert all(0 <= r.start < r.stop <= SIZE for r in decision.ranges)
