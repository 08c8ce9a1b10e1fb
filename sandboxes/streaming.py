"""Live output for SSE and websockets: an async iterator over an execution's events from any sequence number.

Reading the agent bus blocks, so reads run on a dedicated thread pool (not the default executor, which
has only cpu+4 threads and is shared with Django's sync views). When the stream has expired on the bus,
a finished execution is replayed from its stored (capped) output.
"""

import asyncio
import functools
import json
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from channels.db import database_sync_to_async
from django.conf import settings

from sandboxes import dispatch
from sandboxes.engine.protocol import ExitEvent, ResultEvent
from sandboxes.models import Execution
from sandboxes.validation import clean_error, clean_result

# Shared by every tenant's streams; sandboxes/stream_slots.py keeps any one organisation to a part of it.
READERS = ThreadPoolExecutor(max_workers=settings.MEM0_STREAM_READERS, thread_name_prefix="mem0-stream")
BLOCK_MS = 10_000


def event_json(event) -> dict:
    """Output `{seq, stream, data}`, a rich result `{seq, type: "result", data: {mime: data}}`, or the exit
    record (with the run's structured `error`)."""
    if isinstance(event, ResultEvent):
        return {"seq": event.seq, "type": "result", "data": clean_result(event.data)}
    if not isinstance(event, ExitEvent):
        return {"seq": event.seq, "stream": event.stream, "data": event.data}
    return {"seq": event.seq, "type": "exit", "status": event.status, "exit_code": event.exit_code,
            "limit": event.limit, "wall_ms": event.wall_ms, "cpu_ms": event.cpu_ms,
            "peak_memory_bytes": event.peak_memory_bytes, "error": clean_error(event.error)}


def stored_events(execution: Execution, after: int) -> list[dict]:
    """The events of a finished execution rebuilt from its row (used once the bus stream has expired)."""
    events = []
    for stream in ("stdout", "stderr"):
        text = getattr(execution, stream)
        if text:
            events.append({"stream": stream, "data": text})
    events.extend({"type": "result", "data": data} for data in execution.results or [])
    events.append({"type": "exit", "status": execution.status, "exit_code": execution.exit_code,
                   "limit": execution.limit, "wall_ms": execution.wall_ms, "cpu_ms": execution.cpu_ms,
                   "peak_memory_bytes": execution.peak_memory_bytes, "error": execution.error})
    for seq, event in enumerate(events, start=1):
        event["seq"] = seq
    return [e for e in events if e["seq"] > after]


async def execution_events(execution_id: str, after: int = 0) -> AsyncIterator[dict | None]:
    """Yield event dicts in order, ending with the exit event; yields None as a keep-alive while idle."""
    loop = asyncio.get_running_loop()
    client = dispatch.engine()
    seq, first = after, True
    while True:
        read = functools.partial(client.output, execution_id, after_seq=seq, block_ms=0 if first else BLOCK_MS)
        batch = await loop.run_in_executor(READERS, read)
        if first and not batch:
            execution = await database_sync_to_async(Execution.objects.get)(pk=execution_id)
            if execution.status not in Execution.OPEN_STATUSES:
                for event in stored_events(execution, after):
                    yield event
                return
        first = False
        if not batch:
            execution = await database_sync_to_async(Execution.objects.get)(pk=execution_id)
            if execution.status not in Execution.OPEN_STATUSES:  # ended without an exit record: agent lost
                exit_event = stored_events(execution, 0)[-1]
                yield {**exit_event, "seq": seq + 1}
                return
            yield None
            continue
        for event in batch:
            seq = event.seq
            yield event_json(event)
            if isinstance(event, ExitEvent):
                return


class HeldStream:
    """A streaming response body that holds a stream slot: Django calls `close()` on the body when the
    response closes (sent, client gone, or never started), which gives the slot back."""

    def __init__(self, body: AsyncIterator[bytes], slot):
        self.body, self.slot = body, slot

    def __aiter__(self):
        return self.body.__aiter__()

    def close(self) -> None:
        self.slot.release()


async def sse_stream(execution_id: str, after: int) -> AsyncIterator[bytes]:
    yield b"retry: 1000\n\n"
    async for event in execution_events(execution_id, after):
        if event is None:
            yield b": keep-alive\n\n"
            continue
        kind = event.get("type") if event.get("type") in ("exit", "result") else "output"
        yield f"id: {event['seq']}\nevent: {kind}\ndata: {json.dumps(event)}\n\n".encode()
