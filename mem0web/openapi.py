"""What makes the generated OpenAPI schema true to the API (drf-spectacular), in one place.

* Every operation documents the error envelope (`Error`, mem0web/errors.py) for the statuses any API
  call can answer: 400 (invalid input), 401 (no or bad key), 403 (scope or role), 404 (missing or another
  tenant's), 409 (state conflict), 429 (rate limit or quota), 503/504 (no agent, agent timeout), and 413
  on operations with a body; under each media type the view renders (the events view's errors are JSON
  sent as text/event-stream when the client asked for that).
* Request strings say what the API accepts: DRF's CharField refuses NUL, and one that may not be blank
  refuses whitespace-only text (it trims first), so such fields get `minLength` and a `pattern`.
* List views set `pagination_class` so their 200 is the cursor page object, not a bare array.

`tests/sandboxes/test_openapi_schema.py` runs schemathesis against this schema and the live API so it stays true.
"""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

ERROR_STATUSES = {
    "400": "Invalid request (`invalid_request`, `unknown_runtime`, ...).",
    "401": "Missing, malformed, unknown, revoked or expired key (`authentication_failed`, `key_*`).",
    "403": "The key's scopes or the user's role do not allow this (`permission_denied`), or the organisation "
    "is suspended.",
    "404": "No such object in your organisation (`not_found`).",
    "409": "The object's state does not allow this (`conflict`, `sandbox_not_running`, `sandbox_busy`).",
    "429": "Rate limit (`rate_limited`, with Retry-After) or plan quota (`quota_exceeded`).",
    "503": "No healthy agent can serve this now (`agents_unavailable`).",
    "504": "The agent did not answer in time (`agent_timeout`).",
}
BODY_ERROR_STATUSES = {"413": "The body or a field in it is too large (`payload_too_large`)."}

ErrorSerializer = inline_serializer(
    "Error",
    {
        "error": inline_serializer(
            "ErrorBody",
            {
                "code": serializers.CharField(help_text="Stable error code, e.g. `not_found`."),
                "message": serializers.CharField(),
                "details": serializers.DictField(required=False),
            },
        )
    },
)

# Printable text without NUL (DRF's CharField refuses NUL) ...
NO_NUL = r"^[^\x00]*$"
# ... and with at least one character that is not whitespace (CharField trims, then refuses blank).
NOT_BLANK = r"^[^\x00]*[^\x00\s][^\x00]*$"


def string_map(*, max_properties: int, key_pattern: str, value_max_length: int | None = None) -> dict:
    """JSON schema of an object of strings (env, metadata)."""
    value = {"type": "string", "pattern": NO_NUL}
    if value_max_length is not None:
        value["maxLength"] = value_max_length
    return {
        "type": "object",
        "maxProperties": max_properties,
        "patternProperties": {key_pattern: value},
        "additionalProperties": False,
    }


class Mem0AutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        error = self.resolve_serializer(ErrorSerializer, "response").ref
        statuses = dict(ERROR_STATUSES)
        if self.method in ("POST", "PUT", "PATCH"):
            statuses.update(BODY_ERROR_STATUSES)
        # An error is rendered by the renderer the request negotiated (a JSON body either way).
        content = {media_type: {"schema": error} for media_type in self.map_renderers("media_type")}
        for status, description in statuses.items():
            responses.setdefault(status, {"description": description, "content": content})
        return responses

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        plain_text = type(field) in (serializers.CharField,) and "pattern" not in schema
        if direction == "request" and plain_text and schema.get("type") == "string":
            if field.allow_blank:
                schema["pattern"] = NO_NUL
            else:
                schema["pattern"] = NOT_BLANK
                schema["minLength"] = max(1, schema.get("minLength", 0))
        return schema
