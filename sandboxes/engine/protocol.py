"""Messages that cross the bus between the Django side and agents, as plain dataclasses.

Both transports carry exactly these, serialised with ``to_dict``/``from_dict`` as JSON.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field, fields

HEARTBEAT_INTERVAL = 2.0
HEARTBEAT_TTL = 10.0  # an agent whose heartbeat is older than this is not alive
OUTPUT_TTL_S = 3600  # output streams expire an hour after their last event
OUTPUT_MAXLEN = 20_000  # events kept per execution stream
# Run output a bus holds (see transport/budget.py): in all, and per owner (organisation). A stream is
# dropped OUTPUT_RECORDED_TTL_S after its execution is recorded (readers already connected finish from the
# bus; later ones replay the database copy), and before anything else when room is needed.
OUTPUT_BUDGET_BYTES = 256 << 20
OUTPUT_OWNER_BUDGET_BYTES = 64 << 20
OUTPUT_RECORDED_TTL_S = 30

ERROR_CODES = frozenset(
    {
        "agents_unavailable",
        "agent_timeout",
        "agent_lost",
        "sandbox_not_running",
        "not_found",
        "unknown_runtime",
        "invalid_request",
        "payload_too_large",
        "conflict",
        "sandbox_busy",
        "sandbox_paused",
        "rate_limited",
        "internal_error",
    }
)

RUN_STATUSES = ("succeeded", "failed", "timeout", "killed", "compile_error", "cancelled")
LIMITS_HIT = ("timeout", "memory", "output", "pids", "disk")


class EngineError(Exception):
    """A failure with a stable ``code`` (one of ``ERROR_CODES``), a human ``message`` and optional
    ``details`` (JSON values, e.g. the running execution's id of ``sandbox_busy``)."""

    def __init__(self, code: str, message: str = "", details: dict | None = None):
        if code not in ERROR_CODES:
            code, message = "internal_error", f"{code}: {message}"
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details


@dataclass
class Limits:
    memory_bytes: int = 256 << 20
    pids: int = 64
    cpu_cores: float = 1.0
    run_timeout_s: float = 30.0
    output_bytes: int = 1 << 20
    workspace_bytes: int = 256 << 20
    network: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> Limits:
        data = data or {}
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise EngineError("invalid_request", f"unknown limits: {sorted(unknown)}")
        limits = cls(**data)
        limits.validate()
        return limits

    def validate(self) -> None:
        checks = (
            (16 << 20) <= self.memory_bytes <= (64 << 30),
            4 <= self.pids <= 32768,
            0.01 <= self.cpu_cores <= 64,
            0 < self.run_timeout_s <= 86400,
            0 <= self.output_bytes <= (1 << 30),
            (1 << 20) <= self.workspace_bytes <= (64 << 30),
        )
        if not all(checks):
            raise EngineError("invalid_request", f"limits out of range: {self.to_dict()}")


@dataclass
class OutputEvent:
    seq: int
    stream: str  # "stdout" | "stderr"
    data: str

    def to_dict(self) -> dict:
        return {"type": "output", "seq": self.seq, "stream": self.stream, "data": self.data}


@dataclass
class ExitEvent:
    seq: int
    status: str  # succeeded | failed | timeout | killed | compile_error
    exit_code: int | None
    limit: str | None  # None | timeout | memory | output | pids | disk
    wall_ms: float
    cpu_ms: float
    peak_memory_bytes: int
    sandbox_alive: bool
    # ``{name, value, traceback}``: the run's uncaught exception (validated, bounded: ``results.py``),
    # or the agent's own account of an interpreter that died (name ``interpreter_exited``).
    error: dict | None = None
    # Memory lost during the run, workspace kept: the interpreter died and a fresh one took over the
    # sandbox, or the runtime's own process was replaced (Node.js).
    memory_lost: bool = False

    def to_dict(self) -> dict:
        return {"type": "exit", **asdict(self)}


@dataclass
class ResultEvent:
    """A rich result of a run (Jupyter's display data): ``data`` maps allowed MIME types to
    strings (``image/png`` base64; ``application/json`` any JSON value), validated and bounded
    by the agent (``results.py``)."""

    seq: int
    data: dict
    nbytes: int = 0  # what it counts against the run's output cap and the bus's budgets

    def to_dict(self) -> dict:
        return {"type": "result", "seq": self.seq, "data": self.data, "nbytes": self.nbytes}


def event_from_dict(data: dict) -> OutputEvent | ExitEvent | ResultEvent:
    data = dict(data)
    kind = data.pop("type", "output")
    if kind == "exit":
        return ExitEvent(**data)
    if kind == "result":
        return ResultEvent(**data)
    return OutputEvent(**data)


@dataclass
class AgentInfo:
    id: str
    host: str
    capacity: int
    runtimes: list[str]
    load: int
    last_heartbeat: float
    alive: bool = False
    # Per runtime: name, language, version, fork_memory ("carried"/"fresh"), pool_size (runtime_info.py).
    templates: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, now: float) -> AgentInfo:
        known = {f.name for f in fields(cls)}
        info = cls(**{k: v for k, v in data.items() if k in known})
        info.alive = (now - info.last_heartbeat) < HEARTBEAT_TTL
        return info


@dataclass
class OpRequest:
    op: str
    args: dict
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    deadline: float = 0.0  # unix time after which the agent drops the request unanswered
    owner: str = ""  # the organisation the op is for: the agent bounds each owner's share of its workers

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> OpRequest:
        return cls(
            op=data["op"],
            args=data.get("args") or {},
            request_id=data["request_id"],
            deadline=float(data.get("deadline") or 0),
            owner=str(data.get("owner") or "")[:128],
        )


@dataclass
class OpReply:
    request_id: str
    ok: bool
    result: dict | list | None = None
    error_code: str | None = None
    error_message: str | None = None
    error_details: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> OpReply:
        return cls(**data)

    def unwrap(self):
        if not self.ok:
            raise EngineError(
                self.error_code or "internal_error", self.error_message or "", self.error_details
            )
        return self.result
