"""Commands and processes in a sandbox (DESIGN §3): admit, record, dispatch, and act on live ones.

A command is an Execution row with `kind="command"` and its argv in `cmd`: it is admitted against the
same quotas as a run (executions per day, the plan's maximum run time), its output streams on the same
bus stream (`/api/v1/executions/{id}/events`, SSE and the websocket alike), and its result is recorded
and its CPU metered once by `executions.execution_finalize`. The engine side (isolation, exit status,
limits) is `sandboxes/engine/commands.py`.

`cmd` is an argv list or a shell string (run as `sh -c STRING`). A background command keeps its stdin
open for `command_send_stdin` until closed; a foreground one gets `stdin` and then end-of-file.
"""

import shlex

from django.utils import timezone

from billing import quotas
from mem0web.errors import InvalidRequest, Mem0Error, NotFound
from sandboxes import dispatch, executions, selectors
from sandboxes.models import Execution, Sandbox
from sandboxes.services import require_running, sandbox_ended_by_itself

MAX_ARGV_ITEMS = 4096
MAX_CMD_BYTES = 128 * 1024
MAX_STDIN_BYTES = 1 << 20
MAX_CWD_BYTES = 1024
SIGNALS = ("SIGTERM", "SIGKILL", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGSTOP", "SIGCONT")


def clean_cmd(cmd) -> list[str]:
    """An argv list, or a shell string as `["sh", "-c", cmd]`; 400 for anything else, 413 past the cap."""
    if isinstance(cmd, str):
        argv = ["sh", "-c", cmd]
    elif isinstance(cmd, list) and all(isinstance(a, str) for a in cmd):
        argv = list(cmd)
    else:
        raise InvalidRequest("cmd must be a string (run by sh -c) or a list of strings (argv).")
    if not argv or len(argv) > MAX_ARGV_ITEMS or any("\x00" in a for a in argv):
        raise InvalidRequest(f"cmd must name a program (at most {MAX_ARGV_ITEMS} items, no NUL bytes).")
    if sum(len(a.encode()) + 1 for a in argv) > MAX_CMD_BYTES:
        raise Mem0Error(f"cmd may hold at most {MAX_CMD_BYTES} bytes.", code="payload_too_large", status=413)
    return argv


def command_start(*, principal, sandbox_id: str, cmd, cwd: str = "", env: dict | None = None,
                  stdin: str | None = None, timeout_s: float | None = None, background: bool = False,
                  wait: bool = False) -> Execution:
    """Admit, record and start a command in sandbox `sandbox_id` (404 if not the principal's, 409 if not
    running or busy); returns the row `running`, with `first_events` read within the accept when `wait`."""
    org = principal.org
    argv = clean_cmd(cmd)
    sandbox = selectors.sandbox_by_id(org, sandbox_id)
    require_running(sandbox)
    rows = []

    def record(timeout: float) -> Execution:
        rows.append(Execution(organization=org, sandbox_id=sandbox_id, code=shlex.join(argv), timeout_s=timeout,
                              status=Execution.Status.RUNNING, kind="command", cmd=argv, cwd=cwd or "",
                              background=background))
        return rows[-1]

    quotas.execution_admit(org=org, timeout_s=timeout_s, record=record)
    execution = rows[-1]
    execution.sandbox = sandbox
    executions.sandbox_touch(sandbox, execution.created_at)
    try:
        accepted, execution.first_events = dispatch.call(
            sandbox.agent_id, "command_start", sandbox_id=sandbox.pk, execution_id=execution.pk, argv=argv,
            cwd=cwd or None, env=env or {}, stdin=stdin, stdin_open=background, background=background,
            timeout_s=execution.timeout_s, read_ms=executions.HOLD_CONNECTION_MS if wait else 0, owner=str(org.pk))
    except Mem0Error as exc:
        if exc.code in ("sandbox_busy", "invalid_request", "payload_too_large", "rate_limited"):
            Execution.objects.filter(pk=execution.pk).delete()  # nothing ran: no row, the admission back
            quotas.execution_admission_return(org_id=org.pk, now=execution.created_at)
            raise
        Execution.objects.filter(pk=execution.pk).update(status=Execution.Status.FAILED, stderr=exc.message,
                                                         finished_at=timezone.now())
        if exc.code in ("sandbox_not_running", "not_found"):
            sandbox_ended_by_itself(sandbox, reason="interpreter_gone")
        raise
    pid = accepted.get("pid") if isinstance(accepted, dict) else None
    if isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid < (1 << 31):
        execution.pid = pid
        Execution.objects.filter(pk=execution.pk).update(pid=pid)
    return execution


def command_by_id(org, sandbox_id: str, command_id: str) -> Execution:
    """The organisation's command `command_id` of sandbox `sandbox_id` (404 otherwise, tenant or not)."""
    execution = selectors.execution_by_id(org, command_id)
    if execution.sandbox_id != sandbox_id or execution.kind != "command":
        raise NotFound("No such command.")
    return execution


def commands_of_sandbox(sandbox: Sandbox, *, running_only: bool = True, limit: int = 100) -> list[Execution]:
    """The sandbox's commands, newest first; running ones are refreshed (an ended one is recorded)."""
    qs = Execution.objects.filter(sandbox=sandbox, organization_id=sandbox.organization_id, kind="command")
    if running_only:
        qs = qs.filter(status__in=Execution.OPEN_STATUSES)
    found = list(qs.select_related("sandbox").order_by("-created_at")[:limit])
    for execution in found:
        executions.execution_refresh(execution)
    return [e for e in found if not running_only or e.status in Execution.OPEN_STATUSES]


def _live(execution: Execution) -> None:
    require_running(execution.sandbox)
    if execution.status not in Execution.OPEN_STATUSES:
        executions.execution_refresh(execution)
    if execution.status not in Execution.OPEN_STATUSES:
        raise Mem0Error(f"Command {execution.pk} has ended ({execution.status}).", code="conflict", status=409,
                        details={"status": execution.status})


def command_send_stdin(*, execution: Execution, data: str = "", close: bool = False) -> dict:
    """Write `data` to the live command's stdin (all or nothing: 409 when its pipe is full), then close it."""
    if len(data.encode()) > MAX_STDIN_BYTES:
        raise Mem0Error(f"stdin may hold at most {MAX_STDIN_BYTES} bytes per request.", code="payload_too_large",
                        status=413)
    _live(execution)
    try:
        return dispatch.call(execution.sandbox.agent_id, "command_stdin", sandbox_id=execution.sandbox_id,
                             execution_id=execution.pk, data=data, close=close)
    except Mem0Error as exc:
        if exc.code == "not_found":
            raise Mem0Error("The command has ended.", code="conflict", status=409) from exc
        raise


def command_signal(*, execution: Execution, signal: str) -> dict:
    if signal not in SIGNALS:
        raise InvalidRequest(f"signal must be one of {', '.join(SIGNALS)}.")
    _live(execution)
    try:
        return dispatch.call(execution.sandbox.agent_id, "command_signal", sandbox_id=execution.sandbox_id,
                             execution_id=execution.pk, signal=signal)
    except Mem0Error as exc:
        if exc.code == "not_found":
            raise Mem0Error("The command has ended.", code="conflict", status=409) from exc
        raise
