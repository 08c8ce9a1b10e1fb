"""In-process transport: the agent runs as threads in the caller's process."""

from __future__ import annotations

import bisect
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from ..protocol import (
    OUTPUT_MAXLEN,
    OUTPUT_TTL_S,
    AgentInfo,
    EngineError,
    ExitEvent,
    OpReply,
    OpRequest,
    OutputEvent,
)
from . import Bus


class _Stream:
    def __init__(self) -> None:
        self.events: list[OutputEvent | ExitEvent] = []
        self.touched = time.monotonic()


class InProcessBus(Bus):
    def __init__(self, prefix: str):
        self.prefix = prefix
        self._agents: dict[str, dict] = {}
        self._queues: dict[str, queue.Queue] = {}
        self._pending: dict[str, Future] = {}
        self._streams: dict[str, _Stream] = {}
        self._cond = threading.Condition()
        self._lock = threading.Lock()
        self._last_sweep = time.monotonic()

    def _queue(self, agent_id: str) -> queue.Queue:
        with self._lock:
            return self._queues.setdefault(agent_id, queue.Queue())

    def register_agent(self, info: AgentInfo) -> None:
        with self._lock:
            self._agents[info.id] = info.to_dict()

    def unregister_agent(self, agent_id: str) -> None:
        with self._lock:
            self._agents.pop(agent_id, None)

    def list_agents(self) -> list[AgentInfo]:
        now = time.time()
        with self._lock:
            return [AgentInfo.from_dict(d, now) for d in self._agents.values()]

    def call(self, agent_id: str, request: OpRequest, timeout: float) -> OpReply:
        with self._lock:
            known = agent_id in self._agents
        if not known:
            raise EngineError("agents_unavailable", f"agent {agent_id} is not registered")
        fut: Future = Future()
        self._pending[request.request_id] = fut
        request.deadline = time.time() + timeout
        self._queue(agent_id).put(request)
        try:
            return fut.result(timeout)
        except FutureTimeout:
            alive = any(a.id == agent_id and a.alive for a in self.list_agents())
            raise EngineError(
                "agent_timeout" if alive else "agent_lost", f"{request.op} on {agent_id}"
            ) from None
        finally:
            self._pending.pop(request.request_id, None)

    def serve_ops(self, agent_id: str, handle: Callable[[OpRequest], None], stop: threading.Event) -> None:
        q = self._queue(agent_id)
        while not stop.is_set():
            try:
                req = q.get(timeout=0.2)
            except queue.Empty:
                continue
            if req is None:
                break
            handle(req)

    def wake(self, agent_id: str) -> None:
        self._queue(agent_id).put(None)

    def reply(self, request: OpRequest, reply: OpReply) -> None:
        fut = self._pending.get(request.request_id)
        if fut is not None and not fut.done():
            fut.set_result(reply)

    def publish(self, execution_id: str, events: list[OutputEvent | ExitEvent]) -> None:
        with self._cond:
            stream = self._streams.setdefault(execution_id, _Stream())
            stream.events.extend(events)
            if len(stream.events) > OUTPUT_MAXLEN:
                del stream.events[: len(stream.events) - OUTPUT_MAXLEN]
            stream.touched = time.monotonic()
            self._sweep()
            self._cond.notify_all()

    def _sweep(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep < 60:
            return
        self._last_sweep = now
        for key in [k for k, s in self._streams.items() if now - s.touched > OUTPUT_TTL_S]:
            del self._streams[key]

    def read_output(
        self, execution_id: str, after_seq: int, block_ms: int, count: int
    ) -> list[OutputEvent | ExitEvent]:
        deadline = time.monotonic() + block_ms / 1000
        with self._cond:
            while True:
                stream = self._streams.get(execution_id)
                if stream is not None:
                    start = bisect.bisect_right(stream.events, after_seq, key=lambda e: e.seq)
                    out = stream.events[start : start + count]
                    if out:
                        return out
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._cond.wait(remaining)
