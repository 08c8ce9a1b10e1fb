"""`AsyncSandbox.commands`: `mem0sdk.commands` for `AsyncMem0`, method for method, awaited."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

from mem0sdk import transport
from mem0sdk.commands import CommandResult, OutputCallback
from mem0sdk.models import ExitEvent, OutputEvent
from mem0sdk.transport import api_path


async def _call(callback: OutputCallback | None, data: str) -> None:
    if callback is not None:
        result = callback(data)
        if inspect.isawaitable(result):
            await result


class AsyncCommandHandle:
    """As `CommandHandle`; the callbacks may be plain functions or coroutines."""

    def __init__(self, commands: AsyncSandboxCommands, result: CommandResult,
                 on_stdout: OutputCallback | None = None, on_stderr: OutputCallback | None = None):
        self._commands = commands
        self.id, self.pid = result.id, result.pid
        self.result = result
        self.on_stdout, self.on_stderr = on_stdout, on_stderr

    def events(self, after: int = 0) -> AsyncIterator[OutputEvent | ExitEvent]:
        return self._commands._client.executions.events(self.id, after=after)

    async def wait(self, on_stdout: OutputCallback | None = None,
                   on_stderr: OutputCallback | None = None) -> CommandResult:
        out, err = on_stdout or self.on_stdout, on_stderr or self.on_stderr
        async for event in self.events():
            if isinstance(event, OutputEvent):
                await _call(err if event.stream == "stderr" else out, event.data)
        self.result = await self._commands.get(self.id)
        return self.result

    async def send_stdin(self, data: str, close: bool = False) -> None:
        await self._commands._post(self.id, "stdin", {"data": data, "close": close})

    async def close_stdin(self) -> None:
        await self._commands._post(self.id, "stdin", {"data": "", "close": True})

    async def signal(self, signal: str = "SIGTERM") -> None:
        await self._commands._post(self.id, "signal", {"signal": signal})

    async def kill(self) -> None:
        await self.signal("SIGKILL")


class AsyncSandboxCommands:
    def __init__(self, client, sandbox_id: str):
        self._client, self.sandbox_id = client, sandbox_id

    def _path(self, *parts: str) -> str:
        return api_path("sandboxes", self.sandbox_id, "commands", *parts)

    async def _post(self, command_id: str, action: str, body: dict) -> dict:
        return (await self._client.request("POST", self._path(command_id, action), json=body)).json()

    async def run(
        self,
        cmd: str | list[str],
        *,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
        background: bool = False,
        stdin: str | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> CommandResult | AsyncCommandHandle:
        """As `SandboxCommands.run`."""
        body: dict[str, Any] = {"cmd": cmd, "background": background}
        for name, value in (("stdin", stdin), ("cwd", cwd), ("env", env), ("timeout_s", timeout_s)):
            if value is not None:
                body[name] = value
        stream = background or on_stdout is not None or on_stderr is not None
        body["wait"] = not stream
        response = await self._client.request(
            "POST", self._path(), json=body,
            timeout=None if stream else transport.run_timeout(self._client.settings.timeout, timeout_s),
        )
        result = CommandResult.from_json(response.json())
        if background:
            return AsyncCommandHandle(self, result, on_stdout, on_stderr)
        if not stream:
            return result
        return await AsyncCommandHandle(self, result).wait(on_stdout, on_stderr)

    async def get(self, command_id: str) -> CommandResult:
        return CommandResult.from_json(await self._client.get_json(self._path(command_id)))

    async def list(self, include_ended: bool = False) -> list[CommandResult]:
        body = await self._client.get_json(self._path(), {"all": "true"} if include_ended else None)
        return [CommandResult.from_json(c) for c in body.get("commands", [])]

    async def connect(self, command_id: str, on_stdout: OutputCallback | None = None,
                      on_stderr: OutputCallback | None = None) -> AsyncCommandHandle:
        return AsyncCommandHandle(self, await self.get(command_id), on_stdout, on_stderr)
