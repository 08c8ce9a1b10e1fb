"""`sandbox.commands`: shell commands and processes in a sandbox, beside its interpreter.

    result = sandbox.commands.run("ls | wc -l")                       # wait, then CommandResult
    result = sandbox.commands.run(["python3", "-V"], on_stdout=print)  # stream each chunk as it comes
    handle = sandbox.commands.run("python3 -m http.server", background=True)
    handle.send_stdin("line\\n"); handle.kill(); handle.wait()
    again = sandbox.commands.connect(handle.id)                        # reattach, output from any offset

A command's output is an execution's event stream (`client.executions.events`), so a dropped stream
resumes where it stopped and a reattach replays from sequence 0 (or any `after`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mem0sdk import transport
from mem0sdk.models import Execution, ExitEvent, OutputEvent
from mem0sdk.transport import api_path

OutputCallback = Callable[[str], Any]


@dataclass
class CommandResult(Execution):
    """A command's execution: `cmd` (argv; a string was run as `sh -c`), `cwd`, `pid` inside the sandbox,
    `background`. `exit_code` is the process's (negative: killed by that signal)."""

    cmd: list = field(default_factory=list)
    cwd: str = ""
    pid: int | None = None
    background: bool = False

    @classmethod
    def from_json(cls, data: dict) -> CommandResult:
        base = Execution.from_json(data)
        values = {f: getattr(base, f) for f in base.__dataclass_fields__}
        pid = data.get("pid")
        return cls(**values, cmd=list(data.get("cmd") or []), cwd=str(data.get("cwd") or ""),
                   pid=pid if isinstance(pid, int) else None, background=bool(data.get("background")))


class CommandHandle:
    """A command started with `background=True` (or reattached with `connect`)."""

    def __init__(self, commands: SandboxCommands, result: CommandResult,
                 on_stdout: OutputCallback | None = None, on_stderr: OutputCallback | None = None):
        self._commands = commands
        self.id, self.pid = result.id, result.pid
        self.result = result
        self.on_stdout, self.on_stderr = on_stdout, on_stderr

    def events(self, after: int = 0) -> Iterator[OutputEvent | ExitEvent]:
        """Its events after sequence `after` (0: from the start), live, ending with the ExitEvent."""
        return self._commands._client.executions.events(self.id, after=after)

    def wait(self, on_stdout: OutputCallback | None = None, on_stderr: OutputCallback | None = None) -> CommandResult:
        """Follow its output (to the callbacks) until it ends; its result."""
        _follow(self.events(), on_stdout or self.on_stdout, on_stderr or self.on_stderr)
        self.result = self._commands.get(self.id)
        return self.result

    def send_stdin(self, data: str, close: bool = False) -> None:
        """Write to its stdin (all of it, or a `conflict` error when its pipe is full); then close if asked."""
        self._commands._post(self.id, "stdin", {"data": data, "close": close})

    def close_stdin(self) -> None:
        self._commands._post(self.id, "stdin", {"data": "", "close": True})

    def signal(self, signal: str = "SIGTERM") -> None:
        """Send a signal (SIGTERM, SIGKILL, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGSTOP, SIGCONT) to its
        process group."""
        self._commands._post(self.id, "signal", {"signal": signal})

    def kill(self) -> None:
        self.signal("SIGKILL")


def _follow(events, on_stdout: OutputCallback | None, on_stderr: OutputCallback | None) -> None:
    for event in events:
        if isinstance(event, OutputEvent):
            callback = on_stderr if event.stream == "stderr" else on_stdout
            if callback is not None:
                callback(event.data)


class SandboxCommands:
    """The commands of one sandbox."""

    def __init__(self, client, sandbox_id: str):
        self._client, self.sandbox_id = client, sandbox_id

    def _path(self, *parts: str) -> str:
        return api_path("sandboxes", self.sandbox_id, "commands", *parts)

    def _post(self, command_id: str, action: str, body: dict) -> dict:
        return self._client.request("POST", self._path(command_id, action), json=body).json()

    def run(
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
    ) -> CommandResult | CommandHandle:
        """Run `cmd` (a shell string, run as `sh -c`, or an argv list). Foreground: wait and return its
        CommandResult (streaming chunks to the callbacks if given). `background=True`: return a
        CommandHandle at once (stdin stays open); the callbacks are used by `handle.wait()`."""
        body: dict[str, Any] = {"cmd": cmd, "background": background}
        for name, value in (("stdin", stdin), ("cwd", cwd), ("env", env), ("timeout_s", timeout_s)):
            if value is not None:
                body[name] = value
        stream = background or on_stdout is not None or on_stderr is not None
        body["wait"] = not stream
        response = self._client.request(
            "POST", self._path(), json=body,
            timeout=None if stream else transport.run_timeout(self._client.settings.timeout, timeout_s),
        )
        result = CommandResult.from_json(response.json())
        if background:
            return CommandHandle(self, result, on_stdout, on_stderr)
        if not stream:
            return result
        return CommandHandle(self, result).wait(on_stdout, on_stderr)

    def get(self, command_id: str) -> CommandResult:
        return CommandResult.from_json(self._client.get_json(self._path(command_id)))

    def list(self, include_ended: bool = False) -> list[CommandResult]:
        """Its running commands (with `include_ended`, recent ended ones too), newest first."""
        body = self._client.get_json(self._path(), {"all": "true"} if include_ended else None)
        return [CommandResult.from_json(c) for c in body.get("commands", [])]

    def connect(self, command_id: str, on_stdout: OutputCallback | None = None,
                on_stderr: OutputCallback | None = None) -> CommandHandle:
        """A handle on a command started earlier (by anyone in the organisation): follow, signal, stdin."""
        return CommandHandle(self, self.get(command_id), on_stdout, on_stderr)

