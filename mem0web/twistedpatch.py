"""Twisted parses every request's Content-Type through `email.message.EmailMessage` (twisted.web.http's
`_parseContentType`): py-spy put it at 13 % of Daphne's event loop under POST-heavy load. Twisted only uses
the result to decide whether to parse a form body (`application/x-www-form-urlencoded`,
`multipart/form-data`), so a direct parse does: the lower-cased `type/subtype` without parameters. It gives
the same answer as the email parser for well-formed headers (tests/accounts/test_twistedpatch.py).
"""

from twisted.web import http


def parse_content_type(line: bytes) -> bytes:
    media_type = line.split(b";", 1)[0].strip().lower()
    return media_type if media_type.count(b"/") == 1 else b"text/plain"


def install() -> None:
    http._parseContentType = parse_content_type
