"""Request bodies are capped before they are read, not after they are parsed (finding 12: a 150 MB JSON body was
parsed, +600 MB of memory, before its 400).

The cap of a path: MEM0_MAX_JSON_BYTES (1 MiB) for every endpoint, except views that declare
`body_limit_setting` (the file upload: MEM0_MAX_FILE_BYTES). It is enforced at each layer a body passes:

1. Daphne (Twisted) buffers a whole request body before the application sees it, so `install()` patches its
   request class: a `Content-Length` over the cap is answered `413 payload_too_large` as soon as the headers
   are in, and a chunked body as soon as it passes the cap; the connection is then closed, the rest unread.
2. Mem0ASGIHandler (any ASGI server) refuses the same before reading, and stops reading at the cap.
3. The DRF JSON parser reads at most cap + 1 bytes (Django's DATA_UPLOAD_MAX_MEMORY_SIZE guards
   `request.body` and forms, but DRF parses `request.stream`, which it does not check).

Websocket messages: autobahn (under Daphne) refuses frames and messages over MEM0_MAX_WS_MESSAGE_BYTES
with close 1009 before reading their payload (`install()` sets it; Daphne has no option for it), and the
consumers check the size again (sandboxes/consumers.py).
"""

import json

from django.conf import settings
from django.urls import Resolver404, resolve
from rest_framework.parsers import JSONParser

from mem0web.errors import PayloadTooLarge, error_body


def body_limit(path: str) -> int:
    """The most bytes a request body to `path` may have."""
    try:
        view = resolve(path).func
    except Resolver404:
        return settings.MEM0_MAX_JSON_BYTES
    name = getattr(getattr(view, "view_class", view), "body_limit_setting", "MEM0_MAX_JSON_BYTES")
    return getattr(settings, name)


class BodyCap:
    """The cap of one request's body, looked up (a URL resolve) only once a body passes the smallest cap of
    all, so the common small request costs no lookup."""

    def __init__(self, path: str):
        self.path = path
        self._limit = None

    def allows(self, size: int) -> bool:
        if size <= min(settings.MEM0_MAX_JSON_BYTES, settings.MEM0_MAX_FILE_BYTES):
            return True
        return size <= self.limit

    @property
    def limit(self) -> int:
        if self._limit is None:
            self._limit = body_limit(self.path)
        return self._limit


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body may be at most {limit} bytes here.", details={"limit": limit})


def too_large_json(limit: int) -> bytes:
    exc = too_large(limit)
    return json.dumps(error_body(exc.code, exc.message, exc.details)).encode()


class LimitedJSONParser(JSONParser):
    """DRF's JSON parser, reading at most the view's cap (+1 byte to tell that it was passed)."""

    def parse(self, stream, media_type=None, parser_context=None):
        view = (parser_context or {}).get("view")
        limit = getattr(settings, getattr(view, "body_limit_setting", "MEM0_MAX_JSON_BYTES"))
        data = stream.read(limit + 1) if stream is not None else b""
        if len(data) > limit:
            raise too_large(limit)
        return super().parse(_Bytes(data), media_type, parser_context)


class _Bytes:
    """A stream over bytes already read (JSONParser wraps what it is given in a decoder)."""

    def __init__(self, data: bytes):
        self.data = data

    def read(self, *args) -> bytes:
        data, self.data = self.data, b""
        return data


def install() -> None:
    """Cap request bodies in Daphne and websocket messages in autobahn (idempotent)."""
    from daphne.http_protocol import WebRequest
    from daphne.ws_protocol import WebSocketFactory

    if getattr(WebRequest, "mem0_capped", False):
        return
    WebRequest.mem0_capped = True
    got_length, handle_chunk, received = (
        WebRequest.gotLength,
        WebRequest.handleContentChunk,
        WebRequest.requestReceived,
    )

    def gotLength(self, length):
        self.mem0_cap = BodyCap(getattr(self.channel, "_path", b"/").split(b"?", 1)[0].decode("latin1"))
        self.mem0_read = 0
        got_length(self, length)
        if length is not None and not self.mem0_cap.allows(length):
            self.requestHeaders.removeHeader(b"Expect")  # no "100 Continue" after the refusal
            _refuse(self)

    def handleContentChunk(self, data):
        if getattr(self, "mem0_refused", False):
            return
        self.mem0_read += len(data)
        if not self.mem0_cap.allows(self.mem0_read):
            _refuse(self)
            return
        handle_chunk(self, data)

    def requestReceived(self, command, path, version):
        if not getattr(self, "mem0_refused", False):
            received(self, command, path, version)

    WebRequest.gotLength, WebRequest.handleContentChunk = gotLength, handleContentChunk
    WebRequest.requestReceived = requestReceived

    reset = WebSocketFactory.resetProtocolOptions

    def resetProtocolOptions(self):
        reset(self)
        self.maxFramePayloadSize = self.maxMessagePayloadSize = settings.MEM0_MAX_WS_MESSAGE_BYTES
        self.failByDrop = False  # say why (close 1009) instead of dropping the TCP connection

    WebSocketFactory.resetProtocolOptions = resetProtocolOptions


def _refuse(request) -> None:
    """Answer 413 on the raw connection and close it: the rest of the body is never read."""
    request.mem0_refused = True
    body = too_large_json(request.mem0_cap.limit)
    head = (
        b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    )
    request.channel.transport.write(head + body)
    request.channel.transport.loseConnection()
