"""The only door from the Django side into the engine: ``EngineClient`` over a ``Bus``.

Every method raises ``EngineError`` with a stable ``code`` (see ``protocol.ERROR_CODES``).
"""

from __future__ import annotations

import base64
import time

from .protocol import AgentInfo, EngineError, ExitEvent, Limits, OpRequest, OutputEvent
from .transport import Bus

__all__ = ["EngineClient", "EngineError", "AgentInfo"]


class EngineClient:
    def __init__(self, bus: Bus):
        self.bus = bus

    def _call(self, agent_id: str, op: str, timeout: float, **args):
        return self.bus.call(agent_id, OpRequest(op=op, args=args), timeout).unwrap()

    def agents(self) -> list[AgentInfo]:
        return self.bus.list_agents()

    def create(
        self,
        agent_id: str,
        *,
        sandbox_id: str,
        runtime: str,
        env: dict[str, str],
        limits: Limits,
        timeout: float = 10,
    ) -> dict:
        return self._call(
            agent_id,
            "create",
            timeout,
            sandbox_id=sandbox_id,
            runtime=runtime,
            env=env,
            limits=limits.to_dict(),
        )

    def run(
        self,
        agent_id: str,
        *,
        sandbox_id: str,
        execution_id: str,
        code: str,
        timeout_s: float,
        timeout: float = 10,
        read_ms: int = 0,
    ) -> list[OutputEvent | ExitEvent]:
        """Start a run; with ``read_ms`` also wait up to that long for its first output (returned, from
        seq 1: a short run's whole output and exit often come back with the accept)."""
        request = OpRequest(op="run", args={"sandbox_id": sandbox_id, "execution_id": execution_id,
                                            "code": code, "timeout_s": timeout_s})
        if not read_ms:
            self.bus.call(agent_id, request, timeout).unwrap()
            return []
        reply, events = self.bus.call_then_read(agent_id, request, timeout, execution_id, read_ms)
        reply.unwrap()
        return events

    def output(
        self, execution_id: str, *, after_seq: int = 0, block_ms: int = 0, count: int = 1000
    ) -> list[OutputEvent | ExitEvent]:
        return self.bus.read_output(execution_id, after_seq, block_ms, count)

    def wait(self, execution_id: str, *, timeout: float) -> ExitEvent:
        """Block until the execution's exit record; raises ``agent_timeout`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        seq = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EngineError("agent_timeout", f"execution {execution_id} did not finish in {timeout}s")
            for event in self.output(
                execution_id, after_seq=seq, block_ms=int(min(remaining, 1.0) * 1000) or 1
            ):
                if isinstance(event, ExitEvent):
                    return event
                seq = event.seq

    def fork(
        self, agent_id: str, *, sandbox_id: str, new_sandbox_id: str, limits: Limits, timeout: float = 10
    ) -> dict:
        return self._call(
            agent_id,
            "fork",
            timeout,
            sandbox_id=sandbox_id,
            new_sandbox_id=new_sandbox_id,
            limits=limits.to_dict(),
        )

    def kill(self, agent_id: str, *, sandbox_id: str, timeout: float = 10) -> None:
        self._call(agent_id, "kill", timeout, sandbox_id=sandbox_id)

    def files_list(
        self, agent_id: str, *, sandbox_id: str, path: str = "", timeout: float = 10
    ) -> list[dict]:
        return self._call(agent_id, "files_list", timeout, sandbox_id=sandbox_id, path=path)

    def file_read(self, agent_id: str, *, sandbox_id: str, path: str, timeout: float = 30) -> bytes:
        return base64.b64decode(
            self._call(agent_id, "file_read", timeout, sandbox_id=sandbox_id, path=path)["data"]
        )

    def file_write(
        self, agent_id: str, *, sandbox_id: str, path: str, data: bytes, timeout: float = 30
    ) -> None:
        self._call(
            agent_id,
            "file_write",
            timeout,
            sandbox_id=sandbox_id,
            path=path,
            data=base64.b64encode(data).decode(),
        )

    def file_delete(self, agent_id: str, *, sandbox_id: str, path: str, timeout: float = 10) -> None:
        self._call(agent_id, "file_delete", timeout, sandbox_id=sandbox_id, path=path)

    def stats(self, agent_id: str, timeout: float = 10) -> dict:
        return self._call(agent_id, "stats", timeout)

    def snapshot(self, agent_id: str, *, sandbox_id: str, scope: str = "", timeout: float = 120) -> dict:
        """Snapshot into the block store scope ``scope`` ("" the unscoped store; see BlockStore.scoped)."""
        return self._call(agent_id, "snapshot", timeout, sandbox_id=sandbox_id, scope=scope)

    def restore(
        self,
        agent_id: str,
        *,
        digest: str,
        new_sandbox_id: str,
        runtime: str,
        env: dict[str, str],
        limits: Limits,
        scope: str = "",
        timeout: float = 120,
    ) -> dict:
        return self._call(
            agent_id,
            "restore",
            timeout,
            digest=digest,
            scope=scope,
            new_sandbox_id=new_sandbox_id,
            runtime=runtime,
            env=env,
            limits=limits.to_dict(),
        )

    def sandbox_ids(self, agent_id: str, timeout: float = 10) -> list[str]:
        return self._call(agent_id, "sandbox_ids", timeout)
