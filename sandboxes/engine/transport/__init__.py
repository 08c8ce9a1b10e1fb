"""The bus between the Django side and agents: one interface, two transports.

* ``InProcessBus``: queues and condition variables in this process (embedded default, tests).
* ``RedisBus``: Redis Streams — a per-agent op stream read through a consumer group, a reply
  list per request, a per-execution output stream ``exec:{id}`` whose entry ids are the event
  sequence numbers (so replay from any seq is one XRANGE/XREAD), and an agent registry hash.

Output held by either is bounded in all and per owner (``budget.OutputBudget``, enforced by the
publisher: for Redis, each agent bounds what it put in Redis) and dropped soon after the execution is
recorded.

Both move the same ``protocol`` dataclasses.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable

from ..protocol import AgentInfo, ExitEvent, OpReply, OpRequest, OutputEvent


class Bus(abc.ABC):
    prefix: str

    # -- registry
    @abc.abstractmethod
    def register_agent(self, info: AgentInfo) -> None: ...

    @abc.abstractmethod
    def unregister_agent(self, agent_id: str) -> None: ...

    @abc.abstractmethod
    def list_agents(self) -> list[AgentInfo]: ...

    # -- ops (client side)
    @abc.abstractmethod
    def call(self, agent_id: str, request: OpRequest, timeout: float) -> OpReply:
        """Send ``request`` and wait for its reply; raises EngineError agent_timeout/agent_lost."""

    def call_then_read(
        self, agent_id: str, request: OpRequest, timeout: float, execution_id: str, block_ms: int
    ) -> tuple[OpReply, list[OutputEvent | ExitEvent]]:
        """``call``, then (once the reply is in) up to ``block_ms`` for the first output of
        ``execution_id``: a run's accept and its first events in one exchange where the transport
        can (Redis: one round trip fewer). The events are ``[]`` when the reply is a refusal."""
        reply = self.call(agent_id, request, timeout)
        return reply, (self.read_output(execution_id, 0, block_ms, 1000) if reply.ok else [])

    # -- ops (agent side)
    @abc.abstractmethod
    def serve_ops(self, agent_id: str, handle: Callable[[OpRequest], None], stop: threading.Event) -> None:
        """Block, calling ``handle`` for each request addressed to ``agent_id`` until ``stop``."""

    @abc.abstractmethod
    def reply(self, request: OpRequest, reply: OpReply) -> None: ...

    # -- output (held within byte budgets: see budget.py)
    @abc.abstractmethod
    def output_open(self, execution_id: str, owner: str) -> None:
        """Agent side, before a run starts: its stream's output counts against ``owner``'s budget."""

    @abc.abstractmethod
    def output_recorded(self, execution_id: str) -> None:
        """Django side, once the execution's result is in the database: the stream is dropped within
        ``OUTPUT_RECORDED_TTL_S`` (and first when room is needed)."""

    @abc.abstractmethod
    def publish(self, execution_id: str, events: list[OutputEvent | ExitEvent]) -> None: ...

    @abc.abstractmethod
    def read_output(
        self, execution_id: str, after_seq: int, block_ms: int, count: int
    ) -> list[OutputEvent | ExitEvent]: ...

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op for the in-process bus
        """Release connections (Redis); the in-process bus holds none."""


_INPROCESS: dict[str, Bus] = {}
_LOCK = threading.Lock()


def make_bus(redis_url: str | None, prefix: str = "mem0") -> Bus:
    """``None`` -> the process-wide in-process bus for ``prefix``; otherwise a Redis Streams bus."""
    if redis_url is None:
        from .inprocess import InProcessBus

        with _LOCK:
            if prefix not in _INPROCESS:
                _INPROCESS[prefix] = InProcessBus(prefix)
            return _INPROCESS[prefix]
    from .redis_streams import RedisBus

    return RedisBus(redis_url, prefix)
