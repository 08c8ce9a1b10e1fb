"""How the file endpoints describe workspace paths and SSE events in the OpenAPI schema."""

from drf_spectacular.utils import OpenApiParameter

# A workspace path (validation.clean_workspace_path), written without lookaheads as api.FILE_PATH is; a
# segment is at most 255 characters (the agent counts 255 bytes: a UTF-8 rule a pattern cannot state).
_SEGMENT = r"(?:[^/\\\x00.][^/\\\x00]{0,254}|\.[^/\\\x00.][^/\\\x00]{0,253}|\.\.[^/\\\x00]{1,253})"
PATH_PATTERN = rf"^{_SEGMENT}(?:/{_SEGMENT})*$"
DIR_PATTERN = rf"^(?:{_SEGMENT}(?:/{_SEGMENT})*)?$"  # "" is the workspace itself


def path_param(required: bool = True) -> OpenApiParameter:
    """A file's path (required), or a directory's ("" or absent: the workspace)."""
    return OpenApiParameter(
        "path",
        {"type": "string", "pattern": PATH_PATTERN if required else DIR_PATTERN, "maxLength": 1024},
        required=required,
        description="A path relative to /workspace.",
    )


# SSE as schemathesis and clients parse it: one object per event; `data` is the JSON change.
SSE_EVENT = {
    "type": "object",
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}, "id": {"type": "string"}},
}
