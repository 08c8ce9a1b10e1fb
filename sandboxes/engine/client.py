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
    def __init__(self, bus: Bus, owner: str = ""):
        self.bus = bus
        self.owner = owner

    def for_owner(self, owner: str) -> EngineClient:
        """This client with its ops tagged as ``owner``'s (an organisation): an agent gives each
        owner at most ``agent.OPS_PER_OWNER`` of its op workers at a time."""
        return EngineClient(self.bus, owner)

    def _call(self, agent_id: str, op: str, timeout: float, **args):
        return self.bus.call(agent_id, OpRequest(op=op, args=args, owner=self.owner), timeout).unwrap()

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
        owner: str | None = None,
        stdin: str | None = None,
    ) -> list[OutputEvent | ExitEvent]:
        """Start a run; with ``read_ms`` also wait up to that long for its first output (returned, from
        seq 1: a short run's whole output and exit often come back with the accept). ``owner``: whose
        output budget on the bus it counts against (the organisation). ``stdin``: what the run's
        ``sys.stdin`` reads (then end of file)."""
        args = {"sandbox_id": sandbox_id, "execution_id": execution_id, "code": code, "timeout_s": timeout_s}
        args.update({"owner": owner} if owner else {})
        args.update({"stdin": stdin} if stdin else {})
        request = OpRequest(op="run", args=args)
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

    def output_recorded(self, execution_id: str) -> None:
        """The execution's result is stored: its output stream may go (see ``Bus.output_recorded``)."""
        self.bus.output_recorded(execution_id)

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

    def command_start(
        self,
        agent_id: str,
        *,
        sandbox_id: str,
        execution_id: str,
        argv: list[str],
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        stdin: str | None = None,
        stdin_open: bool = False,
        background: bool = False,
        timeout_s: float | None = None,
        timeout: float = 10,
        read_ms: int = 0,
        owner: str | None = None,
    ) -> tuple[dict, list[OutputEvent | ExitEvent]]:
        """Start a command in the sandbox (``commands.py``): (``{"execution_id", "pid"}``, the
        events read within ``read_ms`` of the accept, from seq 1). Its output streams under
        ``execution_id`` like a run's."""
        args = {"sandbox_id": sandbox_id, "execution_id": execution_id, "argv": argv, "cwd": cwd, "env": env or {},
                "stdin": stdin, "stdin_open": stdin_open, "background": background, "timeout_s": timeout_s}
        request = OpRequest(op="command_start", args={**args, **({"owner": owner} if owner else {})},
                            owner=self.owner)
        if not read_ms:
            return self.bus.call(agent_id, request, timeout).unwrap(), []
        reply, events = self.bus.call_then_read(agent_id, request, timeout, execution_id, read_ms)
        return reply.unwrap(), events

    def command_stdin(
        self, agent_id: str, *, sandbox_id: str, execution_id: str, data: str = "", close: bool = False,
        timeout: float = 10,
    ) -> dict:
        return self._call(agent_id, "command_stdin", timeout, sandbox_id=sandbox_id, execution_id=execution_id,
                          data=data, close=close)

    def command_signal(
        self, agent_id: str, *, sandbox_id: str, execution_id: str, signal: str = "SIGTERM", timeout: float = 10
    ) -> dict:
        return self._call(agent_id, "command_signal", timeout, sandbox_id=sandbox_id, execution_id=execution_id,
                          signal=signal)

    def command_list(self, agent_id: str, *, sandbox_id: str, timeout: float = 10) -> list[dict]:
        """The sandbox's live commands on this agent (``Command.describe``)."""
        return self._call(agent_id, "command_list", timeout, sandbox_id=sandbox_id)

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

    def cancel(self, agent_id: str, *, sandbox_id: str, execution_id: str, timeout: float = 10) -> dict:
        """Interrupt a run without killing its sandbox (see ``Agent.op_cancel``); ``{"cancelled": bool}``."""
        return self._call(agent_id, "cancel", timeout, sandbox_id=sandbox_id, execution_id=execution_id)

    def kill(self, agent_id: str, *, sandbox_id: str, timeout: float = 10) -> dict:
        """``{"killed": bool, "cpu_ms": lifetime CPU or None}`` (see ``Agent.op_kill``)."""
        return self._call(agent_id, "kill", timeout, sandbox_id=sandbox_id)

    def pause(self, agent_id: str, *, sandbox_id: str, timeout: float = 10) -> dict:
        return self._call(agent_id, "pause", timeout, sandbox_id=sandbox_id)

    def resume(self, agent_id: str, *, sandbox_id: str, timeout: float = 10) -> dict:
        return self._call(agent_id, "resume", timeout, sandbox_id=sandbox_id)

    def port_expose(self, agent_id: str, *, sandbox_id: str, port: int, timeout: float = 10) -> dict:
        """``{"relay": address}``: where the web tier connects to reach exposed ports (``ports.py``)."""
        return self._call(agent_id, "port_expose", timeout, sandbox_id=sandbox_id, port=port)

    def port_unexpose(self, agent_id: str, *, sandbox_id: str, port: int, timeout: float = 10) -> dict:
        return self._call(agent_id, "port_unexpose", timeout, sandbox_id=sandbox_id, port=port)

    def files_list(
        self, agent_id: str, *, sandbox_id: str, path: str = "", depth: int = 1, timeout: float = 10
    ) -> list[dict]:
        """Entries below ``path``, ``depth`` levels down (1: the directory's own entries)."""
        extra = {} if depth == 1 else {"depth": depth}
        return self._call(agent_id, "files_list", timeout, sandbox_id=sandbox_id, path=path, **extra)

    def file_stat(self, agent_id: str, *, sandbox_id: str, path: str, timeout: float = 10) -> dict:
        """``{name, path, type, size, mode, mtime}``; ``not_found`` when it does not exist."""
        return self._call(agent_id, "file_stat", timeout, sandbox_id=sandbox_id, path=path)

    def file_mkdir(
        self, agent_id: str, *, sandbox_id: str, path: str, parents: bool = True, timeout: float = 10
    ) -> dict:
        return self._call(agent_id, "file_mkdir", timeout, sandbox_id=sandbox_id, path=path, parents=parents)

    def file_move(
        self,
        agent_id: str,
        *,
        sandbox_id: str,
        source: str,
        destination: str,
        overwrite: bool = False,
        timeout: float = 10,
    ) -> dict:
        return self._call(
            agent_id,
            "file_move",
            timeout,
            sandbox_id=sandbox_id,
            source=source,
            destination=destination,
            overwrite=overwrite,
        )

    def files_watch(
        self,
        agent_id: str,
        *,
        sandbox_id: str,
        path: str = "",
        recursive: bool = True,
        timeout: float = 10,
    ) -> dict:
        """Start a watch: ``{"watch_id", "stream"}``; read its events with ``output(stream)``. Its events
        count against this client's owner's output budget on the bus (``for_owner``)."""
        return self._call(
            agent_id,
            "files_watch",
            timeout,
            sandbox_id=sandbox_id,
            path=path,
            recursive=recursive,
            owner=self.owner,
        )

    def files_unwatch(self, agent_id: str, *, sandbox_id: str, watch_id: str, timeout: float = 10) -> dict:
        return self._call(agent_id, "files_unwatch", timeout, sandbox_id=sandbox_id, watch_id=watch_id)

    def file_read(
        self, agent_id: str, *, sandbox_id: str, path: str, max_bytes: int | None = None, timeout: float = 30
    ) -> bytes:
        """The file's bytes; ``payload_too_large`` past ``max_bytes`` (default: the agent's cap)."""
        cap = {} if max_bytes is None else {"max_bytes": max_bytes}
        return base64.b64decode(
            self._call(agent_id, "file_read", timeout, sandbox_id=sandbox_id, path=path, **cap)["data"]
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

    def file_delete(
        self, agent_id: str, *, sandbox_id: str, path: str, recursive: bool = True, timeout: float = 10
    ) -> None:
        extra = {} if recursive else {"recursive": False}
        self._call(agent_id, "file_delete", timeout, sandbox_id=sandbox_id, path=path, **extra)

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

    def sandboxes_cpu(self, agent_id: str, timeout: float = 10) -> dict[str, float]:
        """Lifetime CPU (ms) of each live sandbox of the agent."""
        return self._call(agent_id, "sandboxes_cpu", timeout)

    def sandbox_ids(self, agent_id: str, timeout: float = 10) -> list[str]:
        return self._call(agent_id, "sandbox_ids", timeout)
