"""A directory watch's changes as an async iterator, for SSE (files_api.py) and websockets (watch_consumer.py).

The agent publishes a watch's changes on the bus (engine/watch.py); reads block, so they run on the shared
reader pool (streaming.READERS), each one of the organisation's stream slots (stream_slots.py).
"""

import asyncio
import functools
import json
from collections.abc import AsyncIterator

from channels.db import database_sync_to_async

from sandboxes import dispatch, selectors
from sandboxes.models import Sandbox
from sandboxes.streaming import READERS

WATCH_BLOCK_MS = 10_000


async def watch_events(org, sandbox_id: str, stream: str) -> AsyncIterator[tuple[int, dict] | None]:
    """Yield `(seq, change)` in order, None as a keep-alive while idle; the last change is `{"type": "end"}`
    (from the agent, or here when the sandbox has ended and its agent is gone without saying so)."""
    loop = asyncio.get_running_loop()
    client = dispatch.engine()
    seq = 0
    while True:
        read = functools.partial(client.output, stream, after_seq=seq, block_ms=WATCH_BLOCK_MS)
        batch = await loop.run_in_executor(READERS, read)
        if not batch:
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


def stop_watch_later(stop) -> None:
    """Run `stop` (an agent round trip) on the reader pool, not on the thread closing the response."""
    READERS.submit(stop)
