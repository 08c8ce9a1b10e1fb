"""The Django side's door to the fork-agents: the engine client, placement and the circuit breaker.

Placement: new sandboxes go to the least-loaded healthy agent that has the runtime; forks, runs and
files go to the sandbox's own agent. Circuit breaker: an agent that timed out is skipped for
BREAKER_OPEN_SECONDS; when no agent can take work the API answers 503 agents_unavailable at once.
"""

import logging
import threading
import time

from django.conf import settings

from mem0web.errors import Mem0Error

log = logging.getLogger("mem0.dispatch")

BREAKER_OPEN_SECONDS = 5.0
# Control ops (run start, kill, files, fork) are acknowledged in milliseconds; 5 s is well under the
# heartbeat TTL, so a silent-but-registered agent answers 504 agent_timeout, a dead one 503 agent_lost.
OP_TIMEOUT_S = 5.0
CONTROL_OPS = frozenset({"run", "fork", "kill", "files_list", "file_delete"})
_lock = threading.Lock()
_engine = None
_embedded = None
_open_until: dict[str, float] = {}
# Placement reads the registry at most this often per process (one Redis round trip per create saved);
# agents report their load in heartbeats seconds apart, so the view is no staler than what it shows.
PLACEMENT_VIEW_S = 0.5
_placement_view: tuple[float, list] = (float("-inf"), [])

ENGINE_STATUS = {
    "agents_unavailable": 503,
    "agent_timeout": 504,
    "agent_lost": 503,
    "sandbox_not_running": 409,
    "sandbox_busy": 409,
    "sandbox_paused": 409,
    "not_found": 404,
    "unknown_runtime": 400,
    "invalid_request": 400,
    "payload_too_large": 413,
    "conflict": 409,
    "rate_limited": 429,
    "internal_error": 500,
}


class AgentsUnavailable(Mem0Error):
    code, status, message = "agents_unavailable", 503, "No agent can take this work right now; retry shortly."


def engine():
    """The process-wide engine client; starts the embedded agent on first use when configured."""
    global _engine, _embedded
    if _engine is not None:
        return _engine
    with _lock:
        if _engine is None:
            from sandboxes.engine.client import EngineClient
            from sandboxes.engine.transport import make_bus

            bus = make_bus(settings.MEM0_BUS_URL or None, prefix=settings.MEM0_BUS_PREFIX)
            if settings.MEM0_EMBEDDED_AGENT:
                from sandboxes.engine.agent import start_embedded_agent
                from sandboxes.storage import block_store

                _embedded = start_embedded_agent(bus, agent_id="local", state_dir=settings.MEM0_AGENT_STATE_DIR,
                                                 blockstore=block_store())
            _engine = EngineClient(bus)
    return _engine


def reset() -> None:
    """Forget the engine client and breaker state (tests switch buses)."""
    global _engine, _placement_view
    with _lock:
        _engine = None
        _open_until.clear()
        _placement_view = (float("-inf"), [])


def engine_error(exc) -> Mem0Error:
    """Turn an EngineError into the API's error with the right status."""
    return Mem0Error(exc.message, code=exc.code, status=ENGINE_STATUS.get(exc.code, 500),
                     details=exc.details)


def call(agent_id: str, method: str, *, owner=None, **kwargs):
    """Call one agent; a timeout opens its breaker, and every engine failure becomes a Mem0Error.

    `owner`: the organisation the op is for (its pk); the agent bounds each owner's share of its op
    workers (engine/agent.py OPS_PER_OWNER), and an op over it is 429 rate_limited."""
    from sandboxes.engine.client import EngineError

    if _open_until.get(agent_id, 0) > time.monotonic():
        raise AgentsUnavailable(f"Agent {agent_id} is failing; retry shortly.")
    try:
        if method in CONTROL_OPS:
            kwargs.setdefault("timeout", OP_TIMEOUT_S)
        client = engine() if owner is None else engine().for_owner(str(owner))
        return getattr(client, method)(agent_id, **kwargs)
    except EngineError as exc:
        if exc.code in ("agent_timeout", "agent_lost"):
            _open_until[agent_id] = time.monotonic() + BREAKER_OPEN_SECONDS
        raise engine_error(exc) from exc


def output_recorded(execution_ids) -> None:
    """Tell the bus these executions are recorded, so it drops their output streams soon. Best effort: a
    stream left behind still expires (OUTPUT_TTL_S) and is evicted first when the bus needs room."""
    try:
        client = engine()
        for execution_id in execution_ids:
            client.output_recorded(execution_id)
    except Exception as exc:  # never fail the request that recorded the result
        log.warning("output_drop_failed executions=%d error=%s", len(execution_ids), type(exc).__name__)


def pick_agent(runtime: str, exclude: set[str] | frozenset = frozenset()) -> str:
    """The least-loaded healthy agent with the runtime, skipping open breakers."""
    now = time.monotonic()
    candidates = [a for a in _agents_for_placement(now)
                  if a.alive and runtime in a.runtimes and a.id not in exclude and _open_until.get(a.id, 0) <= now
                  and a.load < a.capacity]
    if not candidates:
        raise AgentsUnavailable(f"No healthy agent offers the {runtime!r} runtime right now.")
    return min(candidates, key=lambda a: (a.load / max(a.capacity, 1), a.id)).id


def _agents_for_placement(now: float) -> list:
    global _placement_view
    at, agents = _placement_view
    if now - at >= PLACEMENT_VIEW_S:
        agents = engine().agents()
        _placement_view = (now, agents)
    return agents


def known_runtimes() -> set[str]:
    return {r for a in engine().agents() if a.alive for r in a.runtimes}
