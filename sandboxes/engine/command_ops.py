"""The agent's command ops (mixed into ``Agent``): validate what the Django side sends, make the
command's pipes, have the interpreter start it and hand it to the ``CommandTable`` (``commands.py``)."""

from __future__ import annotations

import errno
import fcntl
import os
import time

from . import status
from .commands import MAX_COMMANDS, SIGNALS, Command, CommandTable
from .protocol import EngineError, OutputEvent

MAX_ARGV_BYTES = 128 << 10
MAX_STDIN_BYTES = 1 << 20
MAX_CWD_BYTES = 4096
MAX_ENV_BYTES = 64 << 10
START_WAIT_S = 5.0


def _check_argv(argv) -> list[str]:
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise EngineError("invalid_request", "argv must be a non-empty list of strings")
    if any("\x00" in a for a in argv):
        raise EngineError("invalid_request", "argv must not contain NUL bytes")
    if sum(len(a.encode()) + 1 for a in argv) > MAX_ARGV_BYTES:
        raise EngineError("payload_too_large", f"argv is over {MAX_ARGV_BYTES} bytes")
    return argv


def _check_cwd(cwd) -> str:
    if cwd is None:
        return ""
    if not isinstance(cwd, str) or "\x00" in cwd or len(cwd.encode()) > MAX_CWD_BYTES:
        raise EngineError("invalid_request", "cwd must be a path")
    return cwd


def _check_env(env) -> dict:
    env = env or {}
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise EngineError("invalid_request", "env must map strings to strings")
    if any("=" in k or "\x00" in k or "\x00" in v or not k for k, v in env.items()):
        raise EngineError("invalid_request", "invalid environment variable")
    if sum(len(k) + len(v) for k, v in env.items()) > MAX_ENV_BYTES:
        raise EngineError("payload_too_large", "environment too large")
    return env


def _pipe(size: int = 0) -> tuple[int, int]:
    r, w = os.pipe2(os.O_CLOEXEC)
    if size:
        try:
            fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, size)
        except OSError:
            pass
    return r, w


class CommandOps:
    """The agent's command ops: ``command_start``, ``command_stdin``, ``command_signal``,
    ``command_list``. Needs ``self.supervisor`` (with a ``commands`` table), ``self.bus`` and
    ``self._get`` of the Agent."""

    def op_command_start(
        self,
        *,
        sandbox_id: str,
        execution_id: str,
        argv: list,
        cwd: str | None = None,
        env: dict | None = None,
        stdin: str | None = None,
        stdin_open: bool = False,
        background: bool = False,
        timeout_s: float | None = None,
        owner: str | None = None,
    ) -> dict:
        argv = _check_argv(argv)
        cwd = _check_cwd(cwd)
        env = _check_env(env)
        if not isinstance(execution_id, str) or not execution_id:
            raise EngineError("invalid_request", "execution_id must be a non-empty string")
        if owner is not None and (not isinstance(owner, str) or not 0 < len(owner) <= 128):
            raise EngineError("invalid_request", "owner must be a non-empty string")
        data = b""
        if stdin is not None:
            if not isinstance(stdin, str):
                raise EngineError("invalid_request", "stdin must be a string")
            data = stdin.encode()
            if len(data) > MAX_STDIN_BYTES:
                raise EngineError("payload_too_large", f"stdin is over {MAX_STDIN_BYTES} bytes")
        table: CommandTable = self.supervisor.commands
        sb = self._get(sandbox_id)
        with sb.lock:
            if sb.run is not None:
                raise EngineError(
                    "sandbox_busy", "a run is active in this sandbox; start commands between runs",
                    {"execution_id": sb.run.execution_id},
                )
            live = table.of_sandbox(sb)
            if len(live) >= MAX_COMMANDS:
                raise EngineError(
                    "sandbox_busy", f"this sandbox already runs {MAX_COMMANDS} commands", {"limit": MAX_COMMANDS}
                )
            limit_s = sb.limits.run_timeout_s
            timeout = min(float(timeout_s), limit_s) if timeout_s else limit_s
            in_r, in_w = _pipe(MAX_STDIN_BYTES if len(data) > (64 << 10) else 0)
            out_r, out_w = _pipe()
            err_r, err_w = _pipe()
            for fd in (out_r, err_r, in_w):
                os.set_blocking(fd, False)
            if data:
                os.write(in_w, data)  # fits: the pipe was sized for it
            if not (stdin_open or background):
                os.close(in_w)
                in_w = -1
            cg = sb.cgroup
            now = time.monotonic()
            cmd = Command(
                execution_id=execution_id,
                sandbox=sb,
                argv=argv,
                cwd=cwd,
                background=bool(background),
                started=now,
                deadline=now + timeout,
                counters={"cpu_ns": cg.cpu_ns(), "oom": cg.oom_kills(), "pids": cg.pids_max_hits()},
                output_cap=sb.limits.output_bytes,
                stdin_fd=in_w,
            )
            self.bus.output_open(execution_id, owner or f"sandbox:{sandbox_id}")
            table.add(cmd, out_r, err_r)
            try:
                seq = sb.send({"op": "command", "argv": argv, "env": env, "cwd": cwd}, [in_r, out_w, err_w])
                sb.wait_done(seq, START_WAIT_S)
            except BaseException:
                self.supervisor.hub.call(lambda: table._finish(cmd, lost=True))
                raise
            finally:
                for fd in (in_r, out_w, err_w):
                    os.close(fd)
            page_seq, pid, _ = status.read(sb.page)
        if page_seq != seq or pid <= 0:
            reason = os.strerror(-pid) if page_seq == seq and pid < 0 else "the interpreter did not start it"
            if page_seq == seq and pid == -errno.EAGAIN:
                cmd.limit = "pids"
            # As a shell says it: 127 not found, 126 found but not runnable (a label: nothing ran).
            cmd.not_started_code = {-errno.ENOENT: 127, -errno.EACCES: 126, -errno.ENOEXEC: 126}.get(pid)
            message = f"mem0: cannot start {argv[0][:200]}: {reason}\n"

            def not_started() -> None:
                table.sup._emit(cmd, OutputEvent(cmd.next_seq(), "stderr", message))
                table._finish(cmd, not_started=True)

            self.supervisor.hub.call(not_started)
            return {"execution_id": execution_id, "pid": None}
        cmd.inside_pid = pid  # what list shows at once; ``attach`` decides whether the agent believes it
        self.supervisor.hub.call(lambda: table.attach(cmd, pid))
        return {"execution_id": execution_id, "pid": pid}

    def op_command_stdin(self, *, sandbox_id: str, execution_id: str, data: str = "", close: bool = False) -> dict:
        """Write ``data`` to the command's stdin (at once or not at all), then close it if asked."""
        if not isinstance(data, str):
            raise EngineError("invalid_request", "data must be a string")
        raw = data.encode()
        if len(raw) > MAX_STDIN_BYTES:
            raise EngineError("payload_too_large", f"stdin is over {MAX_STDIN_BYTES} bytes")
        cmd = self.supervisor.commands.get(self._get(sandbox_id), execution_id)
        with cmd.lock:
            if cmd.stdin_fd < 0:
                raise EngineError("conflict", "the command's stdin is closed")
            if raw:
                try:
                    written = os.write(cmd.stdin_fd, raw)
                except BlockingIOError:
                    written = 0
                except BrokenPipeError:
                    raise EngineError("conflict", "the command no longer reads its stdin") from None
                if written < len(raw):
                    raise EngineError(
                        "conflict", "the command's stdin is full; retry the rest later", {"written": written}
                    )
            if close:
                os.close(cmd.stdin_fd)
                cmd.stdin_fd = -1
        return {"written": len(raw), "closed": bool(close)}

    def op_command_signal(self, *, sandbox_id: str, execution_id: str, signal: str = "SIGTERM") -> dict:
        if signal not in SIGNALS:
            raise EngineError("invalid_request", f"signal must be one of {sorted(SIGNALS)}")
        table: CommandTable = self.supervisor.commands
        cmd = table.get(self._get(sandbox_id), execution_id)
        sig = SIGNALS[signal]

        def send() -> None:
            if not cmd.done:
                cmd.signalled = True
                table.kill(cmd, sig)

        self.supervisor.hub.call(send)
        return {"signal": signal}

    def op_command_list(self, *, sandbox_id: str) -> list[dict]:
        return [c.describe() for c in self.supervisor.commands.of_sandbox(self._get(sandbox_id))]
