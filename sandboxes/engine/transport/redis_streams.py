"""Redis Streams transport (multi-host, production).

Keys (all under ``prefix``):
  ``{p}:agents``            hash agent id -> AgentInfo JSON (heartbeat inside)
  ``{p}:ops:{agent}``       stream of OpRequest, consumer group ``agents``; an entry is acked
                            after its reply is sent, so a crashed agent's unanswered ops are
                            reclaimed with XAUTOCLAIM when it restarts (stale ones, past their
                            deadline, are dropped unanswered: their caller has given up)
  ``{p}:reply:{request}``   list holding the OpReply; the caller BLPOPs it; expires
  ``{p}:exec:{execution}``  stream of output events; entry id ``0-{seq}``, so "events after
                            seq N" is XREAD from ``0-N``; capped (MAXLEN) and expiring; within the
                            publishing agent's byte budgets (budget.py: the agent accounts for what
                            it put in Redis, so the bounds hold per agent) and expiring
                            OUTPUT_RECORDED_TTL_S after the execution is recorded
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable

import redis

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
    event_from_dict,
)
from . import Bus
from .budget import OutputBudget

log = logging.getLogger("mem0.engine.redis")

GROUP = "agents"
OPS_MAXLEN = 10_000
REPLY_TTL_S = 120
RECLAIM_IDLE_MS = 30_000
# A stream's expiry moves to OUTPUT_TTL_S after each publish, unless its execution was recorded (its TTL
# was cut to OUTPUT_RECORDED_TTL_S or less): a killed run's exit record arrives after the kill recorded it.
KEEP_ALIVE = """
local ttl = redis.call('TTL', KEYS[1])
if ttl == -1 or ttl > tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
"""


class RedisBus(Bus):
    def __init__(
        self,
        url: str,
        prefix: str = "mem0",
        *,
        budget_bytes: int = OUTPUT_BUDGET_BYTES,
        owner_budget_bytes: int = OUTPUT_OWNER_BUDGET_BYTES,
        recorded_ttl_s: int = OUTPUT_RECORDED_TTL_S,
    ):
        self.prefix = prefix
        self.r = redis.Redis.from_url(url, socket_keepalive=True, health_check_interval=30)
        self._entries: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.budget = OutputBudget(budget_bytes, owner_budget_bytes)  # what this process published
        self.recorded_ttl_s = recorded_ttl_s
        self._last_sweep = time.monotonic()
        self._keep_alive = self.r.register_script(KEEP_ALIVE)

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # -- registry
    def register_agent(self, info: AgentInfo) -> None:
        self.r.hset(self._k("agents"), info.id, json.dumps(info.to_dict()))

    def unregister_agent(self, agent_id: str) -> None:
        self.r.hdel(self._k("agents"), agent_id)

    def list_agents(self) -> list[AgentInfo]:
        now = time.time()
        return [AgentInfo.from_dict(json.loads(v), now) for v in self.r.hgetall(self._k("agents")).values()]

    def _agent_alive(self, agent_id: str) -> bool | None:
        raw = self.r.hget(self._k("agents"), agent_id)
        return None if raw is None else AgentInfo.from_dict(json.loads(raw), time.time()).alive

    # -- ops, client side
    def call(self, agent_id: str, request: OpRequest, timeout: float) -> OpReply:
        self._send(agent_id, request, timeout)
        got = self.r.blpop([self._k("reply", request.request_id)], timeout=max(0.01, timeout))
        return self._reply(agent_id, request, got)

    def call_then_read(
        self, agent_id: str, request: OpRequest, timeout: float, execution_id: str, block_ms: int
    ) -> tuple[OpReply, list[OutputEvent | ExitEvent]]:
        # BLPOP and XREAD in one pipeline: Redis runs the read as soon as the reply is there, and a short
        # run's output comes back with it. A blocked XREAD is answered after the first entry the agent adds;
        # the second, non-blocking XREAD runs once the rest of that publish is in (the agent publishes the
        # events of one wake-up together). A refusal costs the read's block_ms.
        self._send(agent_id, request, timeout)
        key = self._k("exec", execution_id)
        pipe = self.r.pipeline(transaction=False)
        pipe.blpop([self._k("reply", request.request_id)], timeout=max(0.01, timeout))
        pipe.xread({key: "0-0"}, count=1000, block=max(1, block_ms))
        pipe.xread({key: "0-0"}, count=1000)
        got, first, later = pipe.execute()
        reply = self._reply(agent_id, request, got)
        return reply, (_events(later or first) if reply.ok else [])

    def _reply(self, agent_id: str, request: OpRequest, got) -> OpReply:
        if got is None:
            alive = self._agent_alive(agent_id)
            raise EngineError("agent_timeout" if alive else "agent_lost", f"{request.op} on {agent_id}")
        return OpReply.from_dict(json.loads(got[1]))

    def _send(self, agent_id: str, request: OpRequest, timeout: float) -> None:
        request.deadline = time.time() + timeout
        pipe = self.r.pipeline(transaction=False)
        pipe.hget(self._k("agents"), agent_id)
        pipe.xadd(
            self._k("ops", agent_id),
            {"r": json.dumps(request.to_dict())},
            maxlen=OPS_MAXLEN,
            approximate=True,
        )
        raw_info, _ = pipe.execute()
        if raw_info is None:
            raise EngineError("agents_unavailable", f"agent {agent_id} is not registered")
        if not AgentInfo.from_dict(json.loads(raw_info), time.time()).alive:
            raise EngineError("agent_lost", f"agent {agent_id} has stopped sending heartbeats")

    # -- ops, agent side
    def serve_ops(self, agent_id: str, handle: Callable[[OpRequest], None], stop: threading.Event) -> None:
        key = self._k("ops", agent_id)
        consumer = f"{agent_id}@{socket.gethostname()}"
        self._ensure_group(key)
        self._reclaim(key, consumer, handle, min_idle_ms=0)  # our own pending ops from before a crash
        last_reclaim = time.monotonic()
        while not stop.is_set():
            try:
                got = self.r.xreadgroup(GROUP, consumer, {key: ">"}, count=100, block=500)
            except redis.ConnectionError:
                log.warning("event=redis_unavailable")
                time.sleep(0.5)
                continue
            except redis.ResponseError as exc:  # stream or group deleted under us (NOGROUP, UNBLOCKED)
                log.warning("event=ops_stream_reset detail=%s", exc)
                self._ensure_group(key)
                continue
            for _, entries in got or []:
                for entry_id, fields in entries:
                    self._dispatch(key, entry_id, fields, handle)
            if time.monotonic() - last_reclaim > RECLAIM_IDLE_MS / 1000:
                last_reclaim = time.monotonic()
                self._reclaim(key, consumer, handle, min_idle_ms=RECLAIM_IDLE_MS)

    def _ensure_group(self, key: str) -> None:
        try:
            self.r.xgroup_create(key, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _reclaim(self, key: str, consumer: str, handle, min_idle_ms: int) -> None:
        start = "0-0"
        while True:
            res = self.r.xautoclaim(
                key, GROUP, consumer, min_idle_time=min_idle_ms, start_id=start, count=100
            )
            start, entries = res[0], res[1]
            for entry_id, fields in entries:
                if fields:
                    self._dispatch(key, entry_id, fields, handle)
            if start in (b"0-0", "0-0") or not entries:
                return

    def _dispatch(self, key: str, entry_id: bytes, fields: dict, handle) -> None:
        try:
            req = OpRequest.from_dict(json.loads(fields[b"r"]))
        except (KeyError, ValueError, TypeError):
            self.r.xack(key, GROUP, entry_id)
            return
        if req.deadline and time.time() > req.deadline:
            self.r.xack(key, GROUP, entry_id)  # the caller has given up
            return
        with self._lock:
            self._entries[req.request_id] = (key, entry_id)
        handle(req)

    def reply(self, request: OpRequest, reply: OpReply) -> None:
        with self._lock:
            entry = self._entries.pop(request.request_id, None)
        pipe = self.r.pipeline(transaction=False)
        rkey = self._k("reply", request.request_id)
        pipe.rpush(rkey, json.dumps(reply.to_dict()))
        pipe.expire(rkey, REPLY_TTL_S)
        if entry:
            pipe.xack(entry[0], GROUP, entry[1])
        pipe.execute()

    # -- output
    def output_open(self, execution_id: str, owner: str) -> None:
        with self._lock:
            self.budget.open(execution_id, owner, time.monotonic())

    def output_recorded(self, execution_id: str) -> None:
        key = self._k("exec", execution_id)
        if self.recorded_ttl_s > 0:
            self.r.expire(key, self.recorded_ttl_s)
        else:
            self.r.delete(key)

    def held_bytes(self, owner: str | None = None) -> int:
        """Output bytes this process published and still accounts for, in all or for one owner."""
        with self._lock:
            return self.budget.held if owner is None else self.budget.owner_held(owner)

    def publish(self, execution_id: str, events: list[OutputEvent | ExitEvent]) -> None:
        key = self._k("exec", execution_id)
        now = time.monotonic()
        with self._lock:
            admission = self.budget.admit(execution_id, events, now)
            if now - self._last_sweep >= 60:  # keys Redis expired meanwhile
                self._last_sweep = now
                for stale in self.budget.untouched_since(now - OUTPUT_TTL_S):
                    self.budget.forget(stale)
        events = admission.events
        pipe = self.r.pipeline(transaction=False)
        for eviction in admission.evictions:
            victim = self._k("exec", eviction.execution_id)
            if eviction.keep_exit is None:
                pipe.delete(victim)
            else:
                pipe.xtrim(victim, maxlen=1, approximate=False)  # the exit record is the last entry
        for e in events:
            pipe.xadd(
                key, {"e": json.dumps(e.to_dict())}, id=f"0-{e.seq}", maxlen=OUTPUT_MAXLEN, approximate=True
            )
        self._keep_alive(keys=[key], args=[OUTPUT_TTL_S, max(OUTPUT_RECORDED_TTL_S, self.recorded_ttl_s)], client=pipe)
        pipe.execute()

    def read_output(
        self, execution_id: str, after_seq: int, block_ms: int, count: int
    ) -> list[OutputEvent | ExitEvent]:
        got = self.r.xread(
            {self._k("exec", execution_id): f"0-{after_seq}"},
            count=count,
            block=block_ms if block_ms > 0 else None,
        )
        return _events(got)

    def close(self) -> None:
        self.r.close()


def _events(xread_reply) -> list[OutputEvent | ExitEvent]:
    return [event_from_dict(json.loads(fields[b"e"])) for _, entries in xread_reply or [] for _, fields in entries]
