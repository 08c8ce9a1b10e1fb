"""Checks on user-supplied sandbox input: env, metadata, code and workspace paths."""

import posixpath
import re

from django.conf import settings

from mem0web.errors import InvalidRequest, Mem0Error, PayloadTooLarge
from mem0web.filters import field_name

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_ENV_BYTES = 32 * 1024
MAX_METADATA_KEYS = 32
MAX_PATH_BYTES = 1024


class UnknownRuntime(Mem0Error):
    code, status, message = "unknown_runtime", 400, "No such runtime."


def clean_env(env) -> dict[str, str]:
    if env is None:
        return {}
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise InvalidRequest("env must be an object of string values.")
    bad = [k for k in env if not ENV_NAME.match(k)]
    if bad:
        raise InvalidRequest("Invalid environment variable names.", details={"names": bad[:10]})
    if sum(len(k) + len(v) for k, v in env.items()) > MAX_ENV_BYTES:
        raise PayloadTooLarge(f"env may hold at most {MAX_ENV_BYTES} bytes.")
    return dict(env)


def clean_metadata(metadata) -> dict[str, str]:
    """Labels: keys are names `?metadata.KEY=` can filter on (mem0web/filters.py), values strings without NUL."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise InvalidRequest("metadata must be an object of string values.")
    if len(metadata) > MAX_METADATA_KEYS or any(len(k) > 64 or len(v) > 512 for k, v in metadata.items()):
        raise InvalidRequest(f"metadata holds at most {MAX_METADATA_KEYS} keys of 64 chars, values of 512.")
    for key, value in metadata.items():
        field_name(key, what="metadata key")
        if "\x00" in value:
            raise InvalidRequest("metadata values may not contain NUL.", details={"metadata key": key})
    return dict(metadata)


def clean_code(code) -> str:
    if not isinstance(code, str):
        raise InvalidRequest("code must be a string.")
    if len(code.encode("utf-8", "surrogatepass")) > settings.MEM0_MAX_CODE_BYTES:
        raise PayloadTooLarge(f"code may be at most {settings.MEM0_MAX_CODE_BYTES} bytes.",
                              details={"limit": settings.MEM0_MAX_CODE_BYTES})
    if "\x00" in code:
        raise InvalidRequest("code may not contain NUL bytes.")
    return code


def clean_workspace_path(path: str, *, allow_root: bool = False) -> str:
    """A normalised path relative to /workspace; absolute paths and any `..` are refused."""
    if not isinstance(path, str) or len(path.encode()) > MAX_PATH_BYTES or "\x00" in path:
        raise InvalidRequest("Invalid path.")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if path.startswith("/") or "\\" in path or any(p == ".." for p in parts):
        raise InvalidRequest("Paths are relative to /workspace and may not contain '..'.",
                             details={"path": path[:200]})
    clean = posixpath.join(*parts) if parts else ""
    if not clean and not allow_root:
        raise InvalidRequest("A file path is required.")
    return clean
