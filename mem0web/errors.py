"""The one place that turns failures into Mem0's JSON error envelope (DESIGN §6).

Services raise `Mem0Error` subclasses with a stable `code`; DRF exceptions, Django's 404/500 handlers
and the websocket consumers all end up in `error_body()`, so every error path has the same shape:
`{"error": {"code": "...", "message": "...", "details": {...}}}`.
"""

import logging

from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

log = logging.getLogger("mem0.errors")


class Mem0Error(Exception):
    """A domain failure with a stable code, an HTTP status and optional details."""

    code = "internal_error"
    status = 500
    message = "Internal error."

    def __init__(self, message: str | None = None, *, code: str | None = None, status: int | None = None,
                 details: dict | None = None, headers: dict | None = None):
        self.message = message or self.message
        self.code = code or self.code
        self.status = status or self.status
        self.details = details or {}
        self.headers = headers or {}
        super().__init__(self.message)


class InvalidRequest(Mem0Error):
    code, status, message = "invalid_request", 400, "The request is not valid."


class NotFound(Mem0Error):
    code, status, message = "not_found", 404, "Not found."


class PermissionDenied(Mem0Error):
    code, status, message = "permission_denied", 403, "You do not have permission for this action."


class Conflict(Mem0Error):
    code, status, message = "conflict", 409, "The request conflicts with the current state."


class PayloadTooLarge(Mem0Error):
    code, status, message = "payload_too_large", 413, "The payload is too large."


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    body = {"error": {"code": code, "message": message}}
    if details:
        body["error"]["details"] = details
    return body


_DRF_CODES = {
    drf.ParseError: ("invalid_request", 400),
    drf.ValidationError: ("invalid_request", 400),
    drf.NotAuthenticated: ("authentication_failed", 401),
    drf.AuthenticationFailed: ("authentication_failed", 401),
    drf.PermissionDenied: ("permission_denied", 403),
    drf.NotFound: ("not_found", 404),
    drf.MethodNotAllowed: ("method_not_allowed", 405),
    drf.NotAcceptable: ("not_acceptable", 406),
    drf.UnsupportedMediaType: ("unsupported_media_type", 415),
    drf.Throttled: ("rate_limited", 429),
}


def api_exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: every API failure becomes the envelope; unknown ones become 500."""
    if isinstance(exc, Mem0Error):
        resp = Response(error_body(exc.code, exc.message, exc.details), status=exc.status)
        for name, value in exc.headers.items():
            resp[name] = value
        return resp
    if isinstance(exc, Http404):
        return Response(error_body("not_found", "Not found."), status=404)
    for cls, (code, status) in _DRF_CODES.items():
        if isinstance(exc, cls):
            code = getattr(exc, "mem0_code", code)
            details = None
            if isinstance(exc, drf.ValidationError):
                details = {"fields": exc.detail} if isinstance(exc.detail, dict) else {"errors": exc.detail}
                message = "The request is not valid."
            else:
                message = str(exc.detail)
            resp = Response(error_body(code, message, details), status=status)
            if status == 401:
                resp["WWW-Authenticate"] = 'Bearer realm="api"'
            if isinstance(exc, drf.Throttled) and exc.wait:
                resp["Retry-After"] = str(int(exc.wait) + 1)
            return resp
    view = context.get("view")
    log.exception("unhandled_api_error view=%s", type(view).__name__ if view else None)
    return Response(error_body("internal_error", "Internal error."), status=500)


def _wants_json(request) -> bool:
    return request.path.startswith(("/api/", "/ws/", "/healthz")) or "application/json" in request.headers.get(
        "Accept", ""
    )


def handler404(request, exception=None):
    if _wants_json(request):
        return JsonResponse(error_body("not_found", "No such endpoint or object."), status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request):
    if _wants_json(request):
        return JsonResponse(error_body("internal_error", "Internal error."), status=500)
    from django.views.defaults import server_error

    return server_error(request)


def handler400(request, exception=None):
    return JsonResponse(error_body("invalid_request", "Bad request."), status=400)


def handler403(request, exception=None):
    return JsonResponse(error_body("permission_denied", "Forbidden."), status=403)
