"""The API's resources (DESIGN §6.1) as dataclasses.

`from_json` takes the fields this SDK knows and ignores the rest, so a newer server that adds fields never
breaks an older client; the full JSON stays in `.raw`. Times are timezone-aware `datetime`s (None if absent).

`Sandbox` and `AsyncSandbox` are bound to the client that fetched them, so `sandbox.run(...)` works
directly; the other resources are plain data.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _known(cls, data: dict) -> dict:
    """The keys of `data` that are data fields of `cls` (not `raw`, not the private client)."""
    names = {f.name for f in fields(cls) if f.name != "raw" and not f.name.startswith("_")}
    return {k: v for k, v in data.items() if k in names}


def _with_times(data: dict, *names: str) -> dict:
    return {**data, **{n: parse_time(data.get(n)) for n in names}}


@dataclass
class OutputEvent:
    """One chunk of a run's output, in order: `seq` counts from 1 across stdout and stderr."""

    seq: int
    stream: str
    data: str

    @classmethod
    def from_json(cls, data: dict) -> OutputEvent:
        return cls(
            seq=int(data.get("seq", 0)),
            stream=str(data.get("stream", "stdout")),
            data=str(data.get("data", "")),
        )


@dataclass
class ExitEvent:
    """The last event of a run: its final status, exit code and the limit it hit, if any."""

    seq: int
    status: str
    exit_code: int | None = None
    limit: str | None = None
    wall_ms: int | None = None
    cpu_ms: int | None = None
    peak_memory_bytes: int | None = None
    error: ExecutionError | None = None

    @classmethod
    def from_json(cls, data: dict) -> ExitEvent:
        known = _known(cls, data)
        known["error"] = ExecutionError.from_json(data.get("error"))
        return cls(**{**known, "seq": int(data.get("seq", 0)), "status": str(data.get("status", ""))})


@dataclass
class Result:
    """A rich result of a run, as Jupyter's display data: `data` maps MIME types to their content (the last
    expression's value, a `display()` call, a matplotlib figure). The properties pick the usual types."""

    data: dict = field(default_factory=dict)

    @property
    def text(self) -> str | None:
        return self.data.get("text/plain")

    @property
    def html(self) -> str | None:
        return self.data.get("text/html")

    @property
    def markdown(self) -> str | None:
        return self.data.get("text/markdown")

    @property
    def svg(self) -> str | None:
        return self.data.get("image/svg+xml")

    @property
    def png(self) -> bytes | None:
        """The PNG image's bytes (the server sends it base64-encoded)."""
        value = self.data.get("image/png")
        return base64.b64decode(value) if isinstance(value, str) else None

    @property
    def json(self) -> Any:
        return self.data.get("application/json")

    @property
    def formats(self) -> list[str]:
        return sorted(self.data)

    @classmethod
    def from_json(cls, data: Any) -> Result:
        return cls(data=dict(data) if isinstance(data, dict) else {})

    def __str__(self) -> str:
        return self.text if self.text is not None else json.dumps(self.formats)


@dataclass
class ResultEvent:
    """A rich result as it is produced, in order with the output (`seq` is shared with OutputEvents)."""

    seq: int
    result: Result

    @classmethod
    def from_json(cls, data: dict) -> ResultEvent:
        return cls(seq=int(data.get("seq", 0)), result=Result.from_json(data.get("data")))


@dataclass
class ExecutionError:
    """A run's uncaught exception (`name` is its type, e.g. ZeroDivisionError; `traceback` its lines), or
    `interpreter_exited` when the interpreter died and a fresh one took over the sandbox."""

    name: str
    value: str = ""
    traceback: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: Any) -> ExecutionError | None:
        if not isinstance(data, dict):
            return None
        tb = data.get("traceback")
        return cls(
            name=str(data.get("name", "")),
            value=str(data.get("value", "")),
            traceback=[str(line) for line in tb] if isinstance(tb, list) else [],
        )

    def __str__(self) -> str:
        return f"{self.name}: {self.value}"


def event_from_json(data: dict) -> OutputEvent | ResultEvent | ExitEvent:
    kind = data.get("type")
    if kind == "exit":
        return ExitEvent.from_json(data)
    if kind == "result":
        return ResultEvent.from_json(data)
    return OutputEvent.from_json(data)


@dataclass
class Execution:
    """One run of code in a sandbox. `status` is queued, running, succeeded, failed, timeout, killed, cancelled,
    agent_lost, compile_error (compiled runtimes: the code did not compile; the compiler's messages are in
    `stderr`). `results` are its rich results (`Result`), `error` its uncaught exception (`ExecutionError`)."""

    id: str
    sandbox_id: str | None = None
    status: str = ""
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    truncated: bool = False
    wall_ms: int | None = None
    cpu_ms: int | None = None
    peak_memory_bytes: int | None = None
    limit: str | None = None
    results: list[Result] = field(default_factory=list)
    error: ExecutionError | None = None
    timeout_s: float | None = None
    stream_url: str | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    FINISHED = frozenset({"succeeded", "failed", "timeout", "killed", "cancelled", "agent_lost", "compile_error"})

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    @property
    def finished(self) -> bool:
        return self.status in self.FINISHED

    @classmethod
    def from_json(cls, data: dict) -> Execution:
        known = _with_times(_known(cls, data), "created_at", "finished_at")
        known["results"] = [Result.from_json(r) for r in data.get("results") or [] if isinstance(r, dict)]
        known["error"] = ExecutionError.from_json(data.get("error"))
        return cls(
            **{**known, "stdout": data.get("stdout") or "", "stderr": data.get("stderr") or ""}, raw=data
        )


@dataclass
class Snapshot:
    """A stored workspace tree plus runtime, env and code history; `parent_id` links the lineage graph."""

    id: str
    sandbox_id: str | None = None
    parent_id: str | None = None
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    digest: str | None = None
    runtime: str | None = None
    logical_bytes: int | None = None
    new_bytes: int | None = None
    stored_bytes: int | None = None
    tier: str | None = None
    created_at: datetime | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict) -> Snapshot:
        known = _with_times(_known(cls, data), "created_at")
        return cls(**{**known, "tags": list(data.get("tags") or [])}, raw=data)


@dataclass
class Lineage:
    """A snapshot's lineage graph: nodes (`kind` snapshot or sandbox) and edges (`from`, `to`, `kind`)."""

    nodes: list[dict] = field(default_factory=list)
    edges: list[dict] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict) -> Lineage:
        return cls(nodes=list(data.get("nodes") or []), edges=list(data.get("edges") or []))


@dataclass
class FileEntry:
    """One entry of a workspace directory listing; `path` is relative to /workspace."""

    name: str
    path: str | None = None
    type: str | None = None
    size: int | None = None
    mode: int | None = None
    mtime: float | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_dir(self) -> bool:
        return self.type in ("dir", "directory") or bool(self.raw.get("is_dir"))

    @classmethod
    def from_json(cls, data: dict) -> FileEntry:
        known = _known(cls, data)
        name = known.pop("name", None) or str(data.get("path", "")).rsplit("/", 1)[-1]
        if "type" not in known and "is_dir" in data:
            known["type"] = "dir" if data["is_dir"] else "file"
        return cls(name=name, **known, raw=data)


@dataclass
class Runtime:
    """A runtime the server offers; `available` is False while no healthy agent runs it."""

    name: str
    language: str | None = None
    description: str | None = None
    version: str | None = None
    fork_memory: str | None = None  # "carried" (a fork copies the interpreter's memory) or "fresh"
    can_fork_memory: bool | None = None
    pool_size: int | None = None
    available: bool | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict) -> Runtime:
        return cls(**_known(cls, data), raw=data)


@dataclass
class WatchEvent:
    """A change in a watched directory: `type` is created, modified, deleted, moved (to `dest`), overflow
    (changes came faster than they could be told apart: list the directory again) or end (`reason`)."""

    type: str
    path: str | None = None
    dest: str | None = None
    is_dir: bool = False
    reason: str | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict) -> WatchEvent:
        return cls(**_known(cls, data), raw=data)


@dataclass
class Sandbox:
    """A live isolated process with state. `state` is starting, running, paused, stopped or lost.

    `memory` is set on forks: `copied` (the child has the parent's interpreter memory) or `fresh`; and
    `lost` once its interpreter died and a fresh one took over (the workspace is kept).
    The object is a snapshot of the server's answer; `refresh()` fetches the current state.
    """

    id: str
    runtime: str = ""
    state: str = ""
    parent_id: str | None = None
    source_snapshot_id: str | None = None
    memory: str | None = None
    env: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    agent: str | None = None
    limits: dict = field(default_factory=dict)
    stop_reason: str | None = None
    created_at: datetime | None = None
    last_active_at: datetime | None = None
    expires_at: datetime | None = None
    paused_at: datetime | None = None
    stopped_at: datetime | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)
    _client: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict, client: Any = None):
        known = _with_times(_known(cls, data), "created_at", "last_active_at", "expires_at", "paused_at",
                            "stopped_at")
        for name in ("env", "metadata", "limits"):
            known[name] = dict(data.get(name) or {})
        return cls(**known, raw=data, _client=client)

    def _sandboxes(self):
        if self._client is None:
            raise RuntimeError("This Sandbox is not bound to a client; get it with client.sandboxes.get(id).")
        return self._client.sandboxes

    def _update(self, other: Sandbox) -> None:
        for f in fields(self):
            if f.name != "_client":
                setattr(self, f.name, getattr(other, f.name))

    def refresh(self) -> Sandbox:
        self._update(self._sandboxes().get(self.id))
        return self

    @property
    def commands(self):
        """Shell commands and processes in this sandbox (``mem0sdk.commands.SandboxCommands``)."""
        from mem0sdk.commands import SandboxCommands

        self._sandboxes()  # bound to a client, or a clear error
        return SandboxCommands(self._client, self.id)

    def run(
        self,
        code: str,
        timeout_s: float | None = None,
        *,
        stdin: str | None = None,
        on_stdout: Callable[[str], Any] | None = None,
        on_stderr: Callable[[str], Any] | None = None,
        on_result: Callable[[Result], Any] | None = None,
    ) -> Execution:
        """Run code and wait for it to finish; variables persist between runs (like a notebook kernel).

        `stdin` is what the run's `input()` / `sys.stdin` read. With a callback the run is streamed: each
        callback gets its output chunks or `Result`s as they are produced; the finished Execution is returned."""
        return self._sandboxes().run(
            self.id,
            code,
            timeout_s=timeout_s,
            stdin=stdin,
            on_stdout=on_stdout,
            on_stderr=on_stderr,
            on_result=on_result,
        )

    def stream(
        self, code: str, timeout_s: float | None = None, *, stdin: str | None = None
    ) -> Iterator[OutputEvent | ResultEvent | Execution]:
        """Run code and yield its OutputEvents and ResultEvents as they are produced, then the finished Execution."""
        return self._sandboxes().stream(self.id, code, timeout_s=timeout_s, stdin=stdin)

    def fork(self, idempotency_key: str | None = None) -> Sandbox:
        return self._sandboxes().fork(self.id, idempotency_key=idempotency_key)

    def kill(self) -> Sandbox:
        self._update(self._sandboxes().kill(self.id))
        return self

    def pause(self) -> Sandbox:
        """Freeze it between runs, memory kept; runs raise SandboxPausedError until `resume()`."""
        self._update(self._sandboxes().pause(self.id))
        return self

    def resume(self) -> Sandbox:
        self._update(self._sandboxes().resume(self.id))
        return self

    def set_timeout(self, timeout_s: float) -> Sandbox:
        """End it `timeout_s` seconds from now (within the plan's maximum lifetime)."""
        self._update(self._sandboxes().set_timeout(self.id, timeout_s))
        return self

    def snapshot(self, name: str | None = None, idempotency_key: str | None = None) -> Snapshot:
        return self._sandboxes().snapshot(self.id, name=name, idempotency_key=idempotency_key)

    @property
    def files(self):
        return self._sandboxes().files(self.id)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.kill()


@dataclass
class AsyncSandbox(Sandbox):
    """`Sandbox` bound to an `AsyncMem0`: the same methods, awaited; `stream` is an async iterator."""

    async def refresh(self) -> AsyncSandbox:
        self._update(await self._sandboxes().get(self.id))
        return self

    @property
    def commands(self):
        """Shell commands and processes in this sandbox (``mem0sdk.async_commands.AsyncSandboxCommands``)."""
        from mem0sdk.async_commands import AsyncSandboxCommands

        self._sandboxes()
        return AsyncSandboxCommands(self._client, self.id)

    async def run(
        self,
        code: str,
        timeout_s: float | None = None,
        *,
        stdin: str | None = None,
        on_stdout: Callable[[str], Any] | None = None,
        on_stderr: Callable[[str], Any] | None = None,
        on_result: Callable[[Result], Any] | None = None,
    ) -> Execution:
        return await self._sandboxes().run(
            self.id,
            code,
            timeout_s=timeout_s,
            stdin=stdin,
            on_stdout=on_stdout,
            on_stderr=on_stderr,
            on_result=on_result,
        )

    def stream(
        self, code: str, timeout_s: float | None = None, *, stdin: str | None = None
    ) -> AsyncIterator[OutputEvent | ResultEvent | Execution]:
        return self._sandboxes().stream(self.id, code, timeout_s=timeout_s, stdin=stdin)

    async def fork(self, idempotency_key: str | None = None) -> AsyncSandbox:
        return await self._sandboxes().fork(self.id, idempotency_key=idempotency_key)

    async def kill(self) -> AsyncSandbox:
        self._update(await self._sandboxes().kill(self.id))
        return self

    async def pause(self) -> AsyncSandbox:
        self._update(await self._sandboxes().pause(self.id))
        return self

    async def resume(self) -> AsyncSandbox:
        self._update(await self._sandboxes().resume(self.id))
        return self

    async def set_timeout(self, timeout_s: float) -> AsyncSandbox:
        self._update(await self._sandboxes().set_timeout(self.id, timeout_s))
        return self

    async def snapshot(self, name: str | None = None, idempotency_key: str | None = None) -> Snapshot:
        return await self._sandboxes().snapshot(self.id, name=name, idempotency_key=idempotency_key)

    def __enter__(self):
        raise TypeError("Use 'async with' on an AsyncSandbox.")

    async def __aenter__(self) -> AsyncSandbox:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.kill()
