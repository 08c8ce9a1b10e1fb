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


ERROR_FIELD_CHARS = 64 << 10


def clean_error(error) -> dict | None:
    """A run's structured error as it may be stored: `{name, value, traceback}` of strings (the agent checked
    and bounded it already; this holds for whatever it sent), NULs replaced (PostgreSQL's jsonb refuses them)."""
    if not isinstance(error, dict):
        return None
    traceback = error.get("traceback")
    lines = [line for line in traceback if isinstance(line, str)][:200] if isinstance(traceback, list) else []
    return {"name": _no_nul(str(error.get("name", ""))[:200]),
            "value": _no_nul(str(error.get("value", ""))[:ERROR_FIELD_CHARS]),
            "traceback": [_no_nul(line[:ERROR_FIELD_CHARS]) for line in lines]}


def clean_result(data: dict) -> dict:
    """A rich result `{mime: data}` (checked by the agent: allowed MIME types, bounded size and depth) with
    NULs replaced in every string, keys included, so jsonb takes it."""
    return _strip_nul(data)


def _strip_nul(value):
    stack, root = [], [value]
    stack.append((root, 0))
    while stack:
        container, key = stack.pop()
        item = container[key]
        if isinstance(item, str):
            container[key] = _no_nul(item)
        elif isinstance(item, list):
            stack.extend((item, i) for i in range(len(item)))
        elif isinstance(item, dict):
            clean = {_no_nul(k): v for k, v in item.items()}
            container[key] = clean
            stack.extend((clean, k) for k in clean)
    return root[0]


def _no_nul(text: str) -> str:
    return text.replace("\x00", "\ufffd") if "\x00" in text else text
