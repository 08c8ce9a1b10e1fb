"""Python SDK and CLI for the Mem0 sandbox API. Depends only on httpx and the standard library.

Usage: `Mem0()` reads MEM0_API_KEY and MEM0_BASE_URL; `client.sandboxes.create()` returns a `Sandbox`
whose `run()`, `stream()`, `fork()`, `files` and `snapshot()` act on it. `AsyncMem0` is the asyncio twin.
"""

__version__ = "0.1.0"

from mem0sdk.async_client import AsyncMem0  # noqa: E402
from mem0sdk.client import Mem0  # noqa: E402
from mem0sdk.commands import CommandHandle, CommandResult, SandboxCommands  # noqa: E402
from mem0sdk.errors import (  # noqa: E402
    AgentError,
    AgentLostError,
    AgentsUnavailableError,
    AgentTimeoutError,
    AuthenticationError,
    ConflictError,
    InternalError,
    InvalidRequestError,
    Mem0ConnectionError,
    Mem0Error,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitedError,
    SandboxNotRunningError,
    SandboxPausedError,
)
from mem0sdk.models import (  # noqa: E402
    AsyncSandbox,
    Execution,
    ExecutionError,
    ExitEvent,
    FileEntry,
    Lineage,
    OutputEvent,
    Result,
    ResultEvent,
    Runtime,
    Sandbox,
    Snapshot,
    WatchEvent,
)

__all__ = [
    "AgentError",
    "AgentLostError",
    "AgentTimeoutError",
    "AgentsUnavailableError",
    "AsyncMem0",
    "AsyncSandbox",
    "AuthenticationError",
    "CommandHandle",
    "CommandResult",
    "ConflictError",
    "Execution",
    "ExecutionError",
    "ExitEvent",
    "FileEntry",
    "InternalError",
    "InvalidRequestError",
    "Lineage",
    "Mem0",
    "Mem0ConnectionError",
    "Mem0Error",
    "NotFoundError",
    "OutputEvent",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RateLimitedError",
    "Result",
    "ResultEvent",
    "Runtime",
    "Sandbox",
    "SandboxCommands",
    "SandboxNotRunningError",
    "SandboxPausedError",
    "Snapshot",
    "WatchEvent",
]
