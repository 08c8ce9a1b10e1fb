"""Typed exceptions for the API's error envelope `{"error": {"code", "message", "details"}}`.

Every failure the server reports becomes a `Mem0Error` subclass chosen by its stable `code`; a code this
SDK does not know yet becomes a plain `Mem0Error`, so new server codes never break old clients.
"""

from __future__ import annotations

from typing import Any


class Mem0Error(Exception):
    """A failure reported by the Mem0 API (or, with `status=None`, by the connection to it)."""

    def __init__(
        self, code: str, message: str, status: int | None = None, details: dict[str, Any] | None = None
    ):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.details = details or {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, status={self.status!r}, message={self.message!r})"


class AuthenticationError(Mem0Error):
    """401: no key, or the key is malformed, unknown, revoked or expired (`code` says which)."""


class PermissionDeniedError(Mem0Error):
    """403: the key lacks a scope or role, or the organisation is suspended."""


class NotFoundError(Mem0Error):
    """404: no such object in this organisation (another tenant's ids answer the same)."""


class InvalidRequestError(Mem0Error):
    """400 (and other client mistakes such as 405): the request itself is wrong; `details` names the fields."""


class PayloadTooLargeError(Mem0Error):
    """413: code, a file or env is over the server's size limit (`details["limit"]` in bytes)."""


class QuotaExceededError(Mem0Error):
    """429 quota_exceeded: a plan limit; `details` has `limit_name`, `used`, `limit`, `resets_at`."""


class RateLimitedError(Mem0Error):
    """429 rate_limited: too many requests; `retry_after` is the server's hint in seconds (or None)."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int | None = None,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(code, message, status, details)
        self.retry_after = retry_after


class ConflictError(Mem0Error):
    """409 conflict: e.g. an Idempotency-Key reused for a different request, or still in progress."""


class SandboxNotRunningError(Mem0Error):
    """409 sandbox_not_running: the sandbox was stopped, killed or lost (`details["state"]`)."""


class SandboxPausedError(Mem0Error):
    """409 sandbox_paused: the sandbox is paused; `resume()` it before running code."""


class AgentError(Mem0Error):
    """Base of the failures of the fork-agents that run sandboxes."""


class AgentsUnavailableError(AgentError):
    """503 agents_unavailable: no healthy agent can take the work now; safe to retry shortly."""


class AgentTimeoutError(AgentError):
    """504 agent_timeout: the agent did not answer in time."""


class AgentLostError(AgentError):
    """503 agent_lost: the agent running the sandbox died; the sandbox is `lost`."""


class InternalError(Mem0Error):
    """500 internal_error: a server bug; the server logged it."""


class Mem0ConnectionError(Mem0Error):
    """The server could not be reached or the connection broke (`status` is None)."""


ERROR_CLASSES: dict[str, type[Mem0Error]] = {
    "authentication_failed": AuthenticationError,
    "key_malformed": AuthenticationError,
    "key_unknown": AuthenticationError,
    "key_revoked": AuthenticationError,
    "key_expired": AuthenticationError,
    "permission_denied": PermissionDeniedError,
    "organization_suspended": PermissionDeniedError,
    "not_found": NotFoundError,
    "invalid_request": InvalidRequestError,
    "unknown_runtime": InvalidRequestError,
    "method_not_allowed": InvalidRequestError,
    "not_acceptable": InvalidRequestError,
    "unsupported_media_type": InvalidRequestError,
    "payload_too_large": PayloadTooLargeError,
    "quota_exceeded": QuotaExceededError,
    "rate_limited": RateLimitedError,
    "conflict": ConflictError,
    "sandbox_not_running": SandboxNotRunningError,
    "sandbox_paused": SandboxPausedError,
    "agents_unavailable": AgentsUnavailableError,
    "agent_timeout": AgentTimeoutError,
    "agent_lost": AgentLostError,
    "internal_error": InternalError,
    "connection_error": Mem0ConnectionError,
}

# The code to assume when a response has no envelope (a proxy's HTML page, an empty body).
STATUS_CODES = {
    400: "invalid_request",
    401: "authentication_failed",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    429: "rate_limited",
    500: "internal_error",
    503: "agents_unavailable",
    504: "agent_timeout",
}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds form only; dates are ignored)."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def error_for(status: int, body: Any, retry_after: str | None = None) -> Mem0Error:
    """The exception for an error response: its envelope if it has one, else a code guessed from the status."""
    envelope = body.get("error") if isinstance(body, dict) else None
    if isinstance(envelope, dict) and isinstance(envelope.get("code"), str):
        code = envelope["code"]
        message = str(envelope.get("message") or code)
        details = envelope.get("details") if isinstance(envelope.get("details"), dict) else {}
    else:
        code = STATUS_CODES.get(status, "http_error")
        message = f"HTTP {status}" + (f": {body[:200]}" if isinstance(body, str) and body else "")
        details = {}
    cls = ERROR_CLASSES.get(code, Mem0Error)
    if cls is RateLimitedError:
        return RateLimitedError(code, message, status, details, retry_after=parse_retry_after(retry_after))
    return cls(code, message, status, details)
