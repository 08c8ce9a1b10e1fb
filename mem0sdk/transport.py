"""What the sync and async clients share: settings, request shaping, retry policy, errors and SSE parsing.

Retries: a call is retried (up to `max_retries` times, with exponential backoff and jitter, or after the
server's `Retry-After`) when the server answers 429 rate_limited or 503 agents_unavailable, or when the
connection fails, but only if repeating it is safe: GET, HEAD, PUT and DELETE (idempotent in HTTP), or a
POST that carries an Idempotency-Key. quota_exceeded (also 429) is never retried: waiting does not help.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx

from mem0sdk import __version__
from mem0sdk.errors import AuthenticationError, Mem0ConnectionError, Mem0Error, RateLimitedError, error_for
from mem0sdk.models import ExitEvent, OutputEvent, ResultEvent, WatchEvent, event_from_json

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_RETRIES = 2
RETRYABLE_CODES = frozenset({"rate_limited", "agents_unavailable"})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})
MAX_BACKOFF_S = 30.0
# The longest run any plan allows (Enterprise max_run_seconds); a waiting run's read timeout when none is given.
MAX_RUN_S = 3600.0
# An SSE stream gets a keep-alive at least every 10 s from the server; silence for this long means it is dead.
STREAM_READ_TIMEOUT_S = 60.0
STREAM_RECONNECTS = 5
SSE_ACCEPT = "text/event-stream"


@dataclass(frozen=True)
class Settings:
    api_key: str
    base_url: str
    timeout: float
    max_retries: int

    @classmethod
    def resolve(
        cls, api_key: str | None, base_url: str | None, timeout: float | None, max_retries: int | None
    ) -> Settings:
        """Explicit arguments win; then MEM0_API_KEY / MEM0_BASE_URL; then the local default server."""
        key = api_key or os.environ.get("MEM0_API_KEY", "")
        if not key:
            raise AuthenticationError(
                "authentication_failed", "No API key: pass api_key= or set MEM0_API_KEY."
            )
        url = (base_url or os.environ.get("MEM0_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        return cls(
            api_key=key,
            base_url=url,
            timeout=DEFAULT_TIMEOUT_S if timeout is None else float(timeout),
            max_retries=DEFAULT_MAX_RETRIES if max_retries is None else int(max_retries),
        )

    def client_options(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "timeout": httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
            "headers": {
                "Authorization": f"Bearer {self.api_key}",
                "Accept": "application/json",
                "User-Agent": f"mem0sdk/{__version__} httpx/{httpx.__version__}",
            },
        }


def api_path(*parts: str) -> str:
    """/api/v1/<parts>, each part percent-quoted except the '/' of workspace paths."""
    return "/api/v1/" + "/".join(quote(str(p), safe="/") for p in parts)


def next_page_params(next_url: str | None) -> dict[str, str] | None:
    """The query of a cursor `next` link, re-applied to our own base URL (a proxy may rewrite the host)."""
    if not next_url:
        return None
    return dict(parse_qsl(urlsplit(next_url).query, keep_blank_values=True))


def sandbox_list_params(
    state: str | None = None,
    runtime: str | None = None,
    metadata: dict[str, str] | None = None,
    page_size: int | None = None,
) -> dict[str, str]:
    params = {"state": state, "runtime": runtime, "limit": page_size}
    params.update({f"metadata.{k}": v for k, v in (metadata or {}).items()})
    return {k: str(v) for k, v in params.items() if v is not None}


def snapshot_list_params(sandbox_id: str | None, tag: str | None, page_size: int | None) -> dict[str, str]:
    params = {"sandbox_id": sandbox_id, "tag": tag, "limit": page_size}
    return {k: str(v) for k, v in params.items() if v is not None}


def idempotency_headers(key: str | None) -> dict[str, str] | None:
    return {"Idempotency-Key": key} if key else None


def create_body(runtime: str, env: dict | None, metadata: dict | None, timeout_s: float | None) -> dict:
    body: dict[str, Any] = {"runtime": runtime}
    for name, value in (("env", env), ("metadata", metadata), ("timeout_s", timeout_s)):
        if value is not None:
            body[name] = value
    return body


def run_body(code: str, timeout_s: float | None, wait: bool, stdin: str | None = None) -> dict:
    body: dict[str, Any] = {"code": code, "wait": wait}
    if timeout_s is not None:
        body["timeout_s"] = timeout_s
    if stdin is not None:
        body["stdin"] = stdin
    return body


def deliver(event, on_stdout, on_stderr, on_result) -> None:
    """Hand one streamed event to the run's callbacks (`Sandbox.run(on_stdout=...)`)."""
    if isinstance(event, ResultEvent):
        if on_result is not None:
            on_result(event.result)
    elif isinstance(event, OutputEvent):
        callback = on_stderr if event.stream == "stderr" else on_stdout
        if callback is not None:
            callback(event.data)


def may_retry(method: str, headers: dict[str, str] | None) -> bool:
    return method.upper() in IDEMPOTENT_METHODS or bool(headers and headers.get("Idempotency-Key"))


def backoff(attempt: int, error: Mem0Error | None = None) -> float:
    """Seconds to wait before retry number `attempt` (0-based): Retry-After if given, else 0.5 s × 2^n ± jitter."""
    if isinstance(error, RateLimitedError) and error.retry_after is not None:
        return min(error.retry_after, MAX_BACKOFF_S)
    return min(0.5 * 2**attempt, MAX_BACKOFF_S) * random.uniform(0.75, 1.25)


def retryable(error: Mem0Error) -> bool:
    return error.code in RETRYABLE_CODES or isinstance(error, Mem0ConnectionError)


def error_from_response(response: httpx.Response) -> Mem0Error:
    """The typed error of a non-2xx response whose body has been read."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return error_for(response.status_code, body, response.headers.get("Retry-After"))


def connection_error(exc: httpx.TransportError) -> Mem0ConnectionError:
    return Mem0ConnectionError(
        "connection_error", f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    )


def json_or_none(response: httpx.Response) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    return response.json()


def run_timeout(base: float, timeout_s: float | None) -> httpx.Timeout:
    """A waiting run holds the request open for the whole run: read for its timeout plus the usual margin."""
    return httpx.Timeout(base, connect=min(base, 10.0), read=(timeout_s or MAX_RUN_S) + base)


def stream_timeout(base: float) -> httpx.Timeout:
    return httpx.Timeout(base, connect=min(base, 10.0), read=max(base, STREAM_READ_TIMEOUT_S))


@dataclass
class SSEMessage:
    event: str
    data: str
    id: str | None


class SSEDecoder:
    """Incremental text/event-stream parser (WHATWG rules): feed lines, get a message at each blank line."""

    def __init__(self) -> None:
        self.retry_ms: int | None = None
        self._event, self._data, self._id = "", [], None

    def feed(self, line: str) -> SSEMessage | None:
        line = line.rstrip("\r\n")
        if not line:
            if not self._data:
                self._event = ""
                return None
            message = SSEMessage(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data = "", []
            return message
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None


def decode_event(decoder: SSEDecoder, line: str) -> OutputEvent | ResultEvent | ExitEvent | None:
    """Feed one line; the event it completes, if any (keep-alives and non-JSON messages give None)."""
    message = decoder.feed(line)
    if message is None:
        return None
    try:
        payload = json.loads(message.data)
    except ValueError:
        return None
    return event_from_json(payload) if isinstance(payload, dict) else None


def reconnect_delay(failures: int) -> float:
    """Seconds before reconnecting a dropped event stream: 1 s, 2 s, 4 s... (the server's `retry:` is 1 s)."""
    return min(2.0 ** (failures - 1), MAX_BACKOFF_S)


def decode_watch_event(decoder: SSEDecoder, line: str) -> WatchEvent | None:
    """Feed one line of a watch stream; the change it completes, if any."""
    message = decoder.feed(line)
    if message is None:
        return None
    try:
        payload = json.loads(message.data)
    except ValueError:
        return None
    return (
        WatchEvent.from_json(payload)
        if isinstance(payload, dict) and isinstance(payload.get("type"), str)
        else None
    )


def watch_params(path: str, recursive: bool, timeout_s: int | None = None) -> dict[str, str]:
    params = {"path": path, "recursive": "true" if recursive else "false"}
    if timeout_s is not None:
        params["timeout"] = str(int(timeout_s))
    return params
