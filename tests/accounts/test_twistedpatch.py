"""The fast Content-Type parse agrees with Twisted's own (email-based) parse where it matters."""

from email.message import EmailMessage

import pytest

from mem0web.twistedpatch import parse_content_type

FORM_TYPES = {b"application/x-www-form-urlencoded", b"multipart/form-data"}


def email_parse(header: bytes) -> bytes:
    msg = EmailMessage()
    msg["content-type"] = header.decode("charmap")
    return msg.get_content_type().encode("charmap")


@pytest.mark.parametrize("header", [
    b"application/json", b"Application/JSON; charset=utf-8", b"multipart/form-data; boundary=xyz",
    b"Multipart/Form-Data;boundary=\"a b\"", b"application/x-www-form-urlencoded", b"text/html;charset=UTF-8",
    b"  application/json  ", b"application/octet-stream", b"garbage", b"", b"a/b/c",
])
def test_same_media_type_as_twisteds_parse(header):
    assert parse_content_type(header) == email_parse(header)


@pytest.mark.parametrize("header", [b"/json", b"application/", b";multipart/form-data", b"a b/c", b"x/y\"",
                                    b"multipart/form-data, text/plain"])
def test_malformed_headers_are_never_taken_for_forms_unless_twisted_would(header):
    assert (parse_content_type(header) in FORM_TYPES) == (email_parse(header) in FORM_TYPES)
