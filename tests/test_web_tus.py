"""Tests for myyoutube.web.tus: tus 1.0 headers parsed and checked, without sockets."""

from __future__ import annotations

import base64

import pytest

from myyoutube.web import tus

LIMIT = 1_000_000
TWO_LINES = "one\ntwo"


def encoded(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def creation_headers(**more: str) -> dict[str, str]:
    return {
        "Tus-Resumable": "1.0.0",
        "Upload-Length": "5000",
        "Upload-Metadata": f"filename {encoded('a b.mp4')}",
        **more,
    }


def test_a_creation_gives_length_name_title_and_visibility():
    """Metadata values are base64 UTF-8; title and visibility are optional."""
    headers = creation_headers(
        **{
            "Upload-Metadata": f"filename {encoded('été.mp4')},title {encoded(' Summer ')},visibility {encoded('private')},flag"
        }
    )
    assert tus.creation(headers, LIMIT) == tus.Creation(5000, "été.mp4", "", "Summer", "private")
    assert tus.creation(creation_headers(), LIMIT).visibility == "public"


def test_a_creation_carries_the_name_the_uploader_chose():
    """`name` metadata is the video's chosen name, beside the file's own name (tus-js-client
    and the CLI send `filename`); a chosen name alone is enough to name the upload."""
    chosen = creation_headers(**{"Upload-Metadata": f"filename {encoded('a.mp4')},name {encoded('Talk')}"})
    assert (tus.creation(chosen, LIMIT).filename, tus.creation(chosen, LIMIT).name) == ("a.mp4", "Talk")
    alone = creation_headers(**{"Upload-Metadata": f"name {encoded('Talk')}"})
    assert tus.creation(alone, LIMIT).name == "Talk"


@pytest.mark.parametrize(
    ("headers", "status", "words"),
    [
        ({"Tus-Resumable": "0.2.2"}, 412, "1.0.0"),
        ({"Upload-Length": "2000000"}, 413, "limit"),
        ({"Upload-Length": "-1"}, 400, "whole number"),
        # Past 2^63 is past the limit: it used to be "not a whole number" from 20 digits on.
        ({"Upload-Length": "9" * 20}, 413, "limit"),
        ({"Upload-Length": "9" * 41}, 400, "whole number"),
        ({"Upload-Length": "0"}, 400, "empty"),
        ({"Upload-Defer-Length": "1"}, 400, "Upload-Length"),
        ({"Upload-Metadata": "title " + encoded("x")}, 400, "filename"),
        ({"Upload-Metadata": "filename %%%"}, 400, "base64"),
        # A header's raw non-ASCII bytes arrive as surrogates (this was a 500).
        ({"Upload-Metadata": "filename \udce9\udce9"}, 400, "base64"),
        ({"Upload-Metadata": f"filename {encoded('a')},filename {encoded('b')}"}, 400, "each key once"),
        ({"Upload-Metadata": f"filename {encoded('a')},visibility {encoded('secret')}"}, 400, "visibility"),
        ({"Upload-Metadata": "x" * 10_000}, 400, "KiB"),
        # The title follows the rules of an edit (they were stored unchecked).
        ({"Upload-Metadata": f"filename {encoded('a')},title {encoded('t' * 201)}"}, 400, "200 characters"),
        ({"Upload-Metadata": f"filename {encoded('a')},title {encoded(TWO_LINES)}"}, 400, "line breaks"),
    ],
)
def test_bad_creations_are_refused_with_a_sentence(headers, status, words):
    with pytest.raises(tus.TusError) as refused:
        tus.creation(creation_headers(**headers), LIMIT)
    assert refused.value.status == status and words in str(refused.value)


def test_a_missing_length_is_named():
    headers = creation_headers()
    del headers["Upload-Length"]
    with pytest.raises(tus.TusError, match="Upload-Length header is missing"):
        tus.creation(headers, LIMIT)


def test_patch_needs_the_offset_content_type_and_the_upload_offset():
    base = {"Tus-Resumable": "1.0.0", "Content-Type": tus.OFFSET_CONTENT_TYPE, "Upload-Offset": "42"}
    assert tus.patch_offset(base) == 42
    with pytest.raises(tus.TusError) as refused:
        tus.patch_offset(dict(base, **{"Content-Type": "application/octet-stream"}))
    assert refused.value.status == 415
    with pytest.raises(tus.TusError) as refused:
        tus.patch_offset(dict(base, **{"Upload-Offset": "4 2"}))
    assert refused.value.status == 400


def test_a_patch_at_another_offset_is_409_and_past_the_end_413():
    """409 says the upload's offset (so a client can resume); 413 comes before a byte is read."""
    upload = {"offset": 100, "length": 1000}
    tus.check_patch(100, upload, 900)
    tus.check_patch(100, upload, None)  # chunked: counted as it arrives
    with pytest.raises(tus.TusError) as refused:
        tus.check_patch(90, upload, 10)
    assert refused.value.status == 409 and refused.value.headers == {"Upload-Offset": "100"}
    with pytest.raises(tus.TusError) as refused:
        tus.check_patch(100, upload, 901)
    assert refused.value.status == 413
    huge = {
        **creation_headers(),
        "Content-Type": "application/offset+octet-stream",
        "Upload-Offset": "9" * 20,
    }
    with pytest.raises(tus.TusError) as refused:
        tus.check_patch(tus.patch_offset(huge), upload, 10)
    assert refused.value.status == 409  # not "not a whole number": it is one, and not the offset


def test_options_and_answers_say_the_version_and_extensions():
    headers = tus.options_headers(LIMIT)
    assert headers["Tus-Resumable"] == headers["Tus-Version"] == "1.0.0"
    assert headers["Tus-Extension"] == "creation,creation-with-upload,termination,expiration"
    assert headers["Tus-Max-Size"] == str(LIMIT)
    assert tus.answer_headers(Upload_Offset="5") == {"Tus-Resumable": "1.0.0", "Upload-Offset": "5"}
    assert tus.expires(0) == "Thu, 01 Jan 1970 00:00:00 GMT"


def test_a_creation_body_is_seen_from_its_headers():
    assert tus.has_body({"Content-Type": tus.OFFSET_CONTENT_TYPE, "Content-Length": "10"})
    assert not tus.has_body({"Content-Type": tus.OFFSET_CONTENT_TYPE, "Content-Length": "0"})
    assert not tus.has_body({})
