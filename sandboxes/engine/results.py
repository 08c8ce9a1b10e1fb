"""Rich results on the wire: the frames that carry them from a sandbox and the agent's checks.

A result (Jupyter's display data: ``{mime: data}``) or a run's structured error (``{name, value,
traceback}``) is one JSON message, sent by the interpreter (``display.py``) as framed parts on its
framed pipe: ``RESULT_PART`` frames, then one ``RESULT_END`` frame (each frame <= PIPE_BUF, so
atomic). User code shares the interpreter's address space and can write any frame, so the agent
treats every message as hostile: a message is refused (the run ends, ``protocol violation``) when
  * its parts pass ``MAX_RESULT_BYTES`` before their end,
  * it is not JSON, nests deeper than ``MAX_DEPTH``, or is not one of the two shapes below,
  * a result names a MIME type off ``MIME_TYPES`` or holds a non-string value (only
    ``application/json`` may hold any JSON value), or an ``image/png`` is not base64 of a PNG,
  * an error's fields are not strings (traceback: at most ``MAX_TRACEBACK_LINES`` strings) or
    pass ``MAX_ERROR_BYTES``.
Results count against the run's output cap (their encoded size); more than ``MAX_RESULTS`` in one
run, or one that does not fit what is left of the cap, ends the run as ``limit: "output"``.

Shapes: ``{"type": "result", "data": {mime: value}}``; ``{"type": "error", "name": str,
"value": str, "traceback": [str]}``.
"""

from __future__ import annotations

import base64
import binascii
import json

RESULT_PART_ID, RESULT_END_ID = 4, 5  # frame stream ids (see ``kernel.py`` for 1-3)
MAX_RESULT_BYTES = 2 << 20  # one message, as encoded on the pipe
MAX_RESULTS = 100  # messages per run (results and errors)
MAX_DEPTH = 32  # nesting of an ``application/json`` value
MAX_ERROR_BYTES = 64 << 10
MAX_TRACEBACK_LINES = 200
# What a client may be handed as a result. No script types: a console renders HTML and SVG only in
# a sandboxed frame, and nothing here is executable by itself.
MIME_TYPES = frozenset(
    {
        "text/plain",
        "text/html",
        "text/markdown",
        "text/latex",
        "image/png",
        "image/jpeg",
        "image/svg+xml",
        "application/json",
    }
)
_MAGIC = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}


class ResultRejected(ValueError):
    """A result message the agent will not pass on (the reason goes in the run's stderr)."""


def parse(payload: bytes) -> tuple[str, dict]:
    """Validate one message: ``("result", {mime: value})`` or ``("error", {name, value, traceback})``."""
    if len(payload) > MAX_RESULT_BYTES:
        raise ResultRejected(f"result larger than {MAX_RESULT_BYTES} bytes")
    try:
        msg = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise ResultRejected(f"result is not JSON ({type(exc).__name__})") from None
    if not isinstance(msg, dict):
        raise ResultRejected("result is not an object")
    kind = msg.get("type")
    if kind == "result" and set(msg) == {"type", "data"}:
        return "result", _bundle(msg["data"])
    if kind == "error" and set(msg) == {"type", "name", "value", "traceback"}:
        return "error", _error(msg)
    raise ResultRejected("unknown result message")


def _bundle(data) -> dict:
    if not isinstance(data, dict) or not data:
        raise ResultRejected("result data is not a non-empty object")
    for mime, value in data.items():
        if mime not in MIME_TYPES:
            raise ResultRejected(f"MIME type not allowed: {mime[:60]!r}")
        if mime == "application/json":
            _check_depth(value)
        elif not isinstance(value, str):
            raise ResultRejected(f"{mime} value is not a string")
        elif mime in _MAGIC:
            try:
                head = base64.b64decode(value[:16], validate=True)
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise ResultRejected(f"{mime} is not base64") from None
            if not head.startswith(_MAGIC[mime]):
                raise ResultRejected(f"{mime} data is not a {mime.split('/')[1].upper()} image")
    return data


def _check_depth(value) -> None:
    """Walk a JSON value without recursion; refuse nesting past MAX_DEPTH."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                raise ResultRejected(f"application/json nests deeper than {MAX_DEPTH}")
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))


def _error(msg: dict) -> dict:
    name, value, tb = msg["name"], msg["value"], msg["traceback"]
    if not (isinstance(name, str) and isinstance(value, str) and isinstance(tb, list)):
        raise ResultRejected("error fields have the wrong types")
    if len(tb) > MAX_TRACEBACK_LINES or not all(isinstance(line, str) for line in tb):
        raise ResultRejected("error traceback is not a short list of strings")
    if len(name) + len(value) + sum(len(line) for line in tb) > MAX_ERROR_BYTES:
        raise ResultRejected(f"error larger than {MAX_ERROR_BYTES} characters")
    return {"name": name, "value": value, "traceback": tb}


def encode_frames(msg: dict, frame_payload: int, mark: int) -> list[bytes]:
    """The frames that carry ``msg`` (used by the interpreter; a forger needs nothing from here)."""
    body = json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "replace")
    parts = [body[i : i + frame_payload] for i in range(0, len(body), frame_payload)] or [b""]
    frames = []
    for i, part in enumerate(parts):
        kind = RESULT_END_ID if i == len(parts) - 1 else RESULT_PART_ID
        frames.append(bytes((mark, kind)) + len(part).to_bytes(2, "big") + part)
    return frames
