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
    OUTPUT_BUDGET_BYTES,
    OUTPUT_MAXLEN,
    OUTPUT_OWNER_BUDGET_BYTES,
    OUTPUT_RECORDED_TTL_S,
    OUTPUT_TTL_S,
    AgentInfo,
    EngineError,
    ExitEvent,
    OpReply,
    OpRequest,
    OutputEvent,
)
from . import Bus
from .budget import OutputBudget, event_bytes

SWEEP_INTERVAL_S = 1.0


class _Stream:
    def __init__(self) -> None:
        self.events: list[OutputEvent | ExitEvent] = []
        self.touched = time.monotonic()
        self.drop_at: float | None = None  # set once recorded


class InProcessBus(Bus):
    def __init__(
        self,
        prefix: str,
        *,
        budget_bytes: int = OUTPUT_BUDGET_BYTES,
        owner_budget_bytes: int = OUTPUT_OWNER_BUDGET_BYTES,
        recorded_ttl_s: float = OUTPUT_RECORDED_TTL_S,
    ):
        self.prefix = prefix
        self.budget = OutputBudget(budget_bytes, owner_budget_bytes)
        self.recorded_ttl_s = recorded_ttl_s
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

    def output_open(self, execution_id: str, owner: str) -> None:
        with self._cond:
            self.budget.open(execution_id, owner, time.monotonic())

    def output_recorded(self, execution_id: str) -> None:
        with self._cond:
            self.budget.recorded(execution_id)
            stream = self._streams.get(execution_id)
            if stream is not None:
                stream.drop_at = time.monotonic() + self.recorded_ttl_s
            self._sweep(force=self.recorded_ttl_s <= 0)

    def held_bytes(self, owner: str | None = None) -> int:
        """Output bytes held (as the budget counts them), in all or for one owner."""
        with self._cond:
            return self.budget.held if owner is None else self.budget.owner_held(owner)

    def publish(self, execution_id: str, events: list[OutputEvent | ExitEvent]) -> None:
        with self._cond:
            now = time.monotonic()
            admission = self.budget.admit(execution_id, events, now)
            for eviction in admission.evictions:
                if eviction.keep_exit is None:
                    self._streams.pop(eviction.execution_id, None)
                elif eviction.execution_id in self._streams:
                    self._streams[eviction.execution_id].events = [eviction.keep_exit]
            stream = self._streams.setdefault(execution_id, _Stream())
            stream.events.extend(admission.events)
            if len(stream.events) > OUTPUT_MAXLEN:
                cut = len(stream.events) - OUTPUT_MAXLEN
                self.budget.shrink(execution_id, sum(event_bytes(e) for e in stream.events[:cut]))
                del stream.events[:cut]
            stream.touched = now
            self._sweep()
            self._cond.notify_all()

    def _sweep(self, force: bool = False) -> None:
        """Drop recorded streams past their grace and streams idle past OUTPUT_TTL_S (lock held)."""
        now = time.monotonic()
        if now - self._last_sweep < SWEEP_INTERVAL_S and not force:
            return
        self._last_sweep = now
        for key, s in list(self._streams.items()):
            if now - s.touched > OUTPUT_TTL_S or (s.drop_at is not None and now >= s.drop_at):
                del self._streams[key]
                self.budget.forget(key)
        for key in self.budget.untouched_since(now - OUTPUT_TTL_S):
            self.budget.forget(key)

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
