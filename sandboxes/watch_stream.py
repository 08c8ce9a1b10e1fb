"""A directory watch's changes as an async iterator, for SSE (files_api.py) and websockets (watch_consumer.py).

The agent publishes a watch's changes on the bus (engine/watch.py); reads block, so they run on the shared
reader pool (streaming.READERS), each one of the organisation's stream slots (stream_slots.py).
"""

import asyncio
import functools
import json
from collections.abc import AsyncIterator

from channels.db import database_sync_to_async

from mem0web.errors import InvalidRequest
from sandboxes import dispatch, selectors
from sandboxes.models import Sandbox
from sandboxes.streaming import READERS

WATCH_BLOCK_MS = 10_000
MAX_WATCH_TIMEOUT_S = 3600  # engine/watch.py MAX_WATCH_S: the agent ends a watch after an hour anyway


async def watch_events(
    org, sandbox_id: str, stream: str, timeout_s: int | None = None
) -> AsyncIterator[tuple[int, dict] | None]:
    """Yield `(seq, change)` in order, None as a keep-alive while idle; the last change is `{"type": "end"}`
    (from the agent; or here with reason `timeout` after `timeout_s` seconds, or `sandbox_ended` when the
    sandbox has ended and its agent is gone without saying so)."""
    loop = asyncio.get_running_loop()
    client = dispatch.engine()
    seq = 0
    deadline = None if timeout_s is None else loop.time() + timeout_s
    while True:
        block_ms = WATCH_BLOCK_MS
        if deadline is not None:
            left = deadline - loop.time()
            if left <= 0:
                yield seq + 1, {"type": "end", "reason": "timeout"}
                return
            block_ms = max(1, min(block_ms, int(left * 1000)))
        read = functools.partial(client.output, stream, after_seq=seq, block_ms=block_ms)
        batch = await loop.run_in_executor(READERS, read)
        if not batch:
            if deadline is not None and deadline <= loop.time():
                continue  # the end is said at the top of the loop
            sandbox = await database_sync_to_async(selectors.sandbox_by_id)(org, sandbox_id)
            if sandbox.state != Sandbox.State.RUNNING:
                yield seq + 1, {"type": "end", "reason": "sandbox_ended"}
                return
            yield None
            continue
        for event in batch:
            seq = event.seq
            if not hasattr(event, "stream"):
                return
            try:
                change = json.loads(event.data)
            except ValueError:
                continue
            if isinstance(change, dict):
                yield seq, change


def watch_timeout(text: str | None) -> int | None:
    """The `timeout` of a watch request: None, or whole seconds from 1 to MAX_WATCH_TIMEOUT_S (else 400)."""
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_WATCH_TIMEOUT_S:
        raise InvalidRequest(f"timeout must be whole seconds from 1 to {MAX_WATCH_TIMEOUT_S}.")
    return int(text)


def stop_watch_later(stop) -> None:
    """Run `stop` (an agent round trip) on the reader pool, not on the thread closing the response."""
    READERS.submit(stop)
