"""Runs: admit against quotas, dispatch to the sandbox's agent, collect the stream, finalise once.

The agent's output stream (`exec:{id}`) is the source of truth while a run is open; the Execution row
keeps a capped copy (settings.MEM0_CAPTURE_BYTES per stream, and as much again for the rich results;
`truncated` says so) once it ends, with the run's structured `error`, and the
bus is then told to drop the stream (readers that come later replay the row: streaming.py). Output the
bus dropped to stay within its byte budgets shows as a gap in sequence numbers: `truncated` too.
Finalising is a conditional UPDATE on an open status, so a result (and its usage) is recorded once even
when a waiting request, a stream reader and the sweeper all see the exit.
"""

import time
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.audit import audit_record
from billing import quotas
from mem0web.errors import Conflict, Mem0Error
from mem0web.sql import orm_update, update_where
from sandboxes import dispatch, selectors
from sandboxes.engine.protocol import ExitEvent, ResultEvent
from sandboxes.models import Execution, Sandbox
from sandboxes.services import require_running, sandbox_ended_by_itself, sandbox_mark_ended
from sandboxes.validation import clean_code, clean_error, clean_result

WAIT_GRACE_S = 5.0
HOLD_CONNECTION_MS = 50
ACTIVITY_GRANULARITY = timedelta(seconds=10)


class AgentTimeout(Mem0Error):
    code, status, message = "agent_timeout", 504, "The agent did not answer in time."


def execution_start(*, principal, sandbox_id: str, code: str, timeout_s: float | None = None,
                    wait: bool = False, stdin: str | None = None) -> Execution:
    """Admit, record and dispatch a run in sandbox `sandbox_id` (of the principal's organisation; 404 if it
    is not, 409 if it is not running); returns with the execution `running`: at once, or (`wait`) with the
    first output read in the same exchange as the agent's accept (kept for `execution_wait`).

    On PostgreSQL one statement checks the sandbox, admits the run against the quotas and inserts its row
    (`quotas.execution_admit_guarded`); only when that takes nothing do we look closer to say why."""
    org = principal.org
    try:
        code = clean_code(code)
    except Mem0Error:
        selectors.sandbox_by_id(org, sandbox_id)  # an unknown sandbox is a 404 whatever the body
        raise
    rows = []

    def record(timeout: float) -> Execution:
        rows.append(Execution(organization=org, sandbox_id=sandbox_id, code=code, timeout_s=timeout,
                              status=Execution.Status.RUNNING))
        return rows[-1]

    admitted = quotas.execution_admit_guarded(org=org, timeout_s=timeout_s, record=record,
                                              guard=_running_sandbox(org, sandbox_id))
    if admitted is not None:
        timeout_s, (agent_id, last_active_at) = admitted
        sandbox = Sandbox.from_db(connection.alias, RUNNING_SANDBOX_FIELDS,
                                  [sandbox_id, org.pk, Sandbox.State.RUNNING, agent_id, last_active_at])
    else:  # the guard or a limit did not hold (or not PostgreSQL): which one, in the order the API answers
        sandbox = selectors.sandbox_by_id(org, sandbox_id)
        require_running(sandbox)
        # The admission takes a hot row (shared by the organisation's runs) and holds it only inside one
        # statement, which on PostgreSQL also inserts the execution; elsewhere the insert follows in
        # autocommit (a crash in between leaves one admitted run with no row: counted, never run).
        timeout_s = quotas.execution_admit(org=org, timeout_s=timeout_s, record=record)
    execution = rows[-1]
    execution.sandbox = sandbox
    sandbox_touch(sandbox, execution.created_at)
    try:
        execution.first_events = dispatch.call(sandbox.agent_id, "run", sandbox_id=sandbox.pk,
                                               execution_id=execution.pk, code=code, timeout_s=timeout_s,
                                               read_ms=HOLD_CONNECTION_MS if wait else 0, owner=str(org.pk),
                                               **({"stdin": stdin} if stdin else {}))
    except Mem0Error as exc:
        if exc.code == "sandbox_busy":  # nothing ran: no row, and the admission is given back
            Execution.objects.filter(pk=execution.pk).delete()
            quotas.execution_admission_return(org_id=org.pk, now=execution.created_at)
            raise
        Execution.objects.filter(pk=execution.pk).update(status=Execution.Status.FAILED, finished_at=timezone.now(),
                                                         stderr=exc.message)
        if exc.code in ("sandbox_not_running", "not_found"):
            sandbox_ended_by_itself(sandbox, reason="interpreter_gone")
        raise
    return execution


# What a run needs of its sandbox (the rest loads on access: failure paths only).
RUNNING_SANDBOX_FIELDS = ["id", "organization_id", "state", "agent_id", "last_active_at"]


def _running_sandbox(org, sandbox_id: str) -> tuple[str, list, list[str]]:
    """The admission guard: the sandbox is this organisation's and running; yields its agent and activity."""
    quote, table = connection.ops.quote_name, Sandbox._meta.db_table
    sql = (f"SELECT {quote('agent_id')}, {quote('last_active_at')} FROM {quote(table)}"
           f" WHERE {quote('id')} = %s AND {quote('organization_id')} = %s AND {quote('state')} = %s")
    return sql, [sandbox_id, org.pk, Sandbox.State.RUNNING.value], [quote("agent_id"), quote("last_active_at")]


def sandbox_touch(sandbox: Sandbox, now) -> None:
    """Move `last_active_at` forward, at most once per ACTIVITY_GRANULARITY (it drives idle reaping, whose
    timeouts are minutes): a write per run on the sandbox row would cost every run a statement."""
    if now - sandbox.last_active_at >= ACTIVITY_GRANULARITY:
        Sandbox.objects.filter(pk=sandbox.pk, last_active_at__lt=now).update(last_active_at=now)
        sandbox.last_active_at = now


def _release_db_connection() -> None:
    """Hand a pooled PostgreSQL connection back while the request waits on a run (re-taken on next use)."""
    if connection.vendor == "postgresql" and connection.settings_dict.get("OPTIONS", {}).get("pool") \
            and not connection.in_atomic_block:
        connection.close()


def collect(execution_id: str, *, deadline: float, after_seq: int = 0, block: bool = True, first_events=()):
    """Read the stream until the exit record, the deadline, or (block=False) its current end.

    `first_events`: events already read from seq `after_seq` on. A run still going after
    HOLD_CONNECTION_MS gives its database connection back to the pool, so runs awaited for minutes do not
    starve other requests. Returns (exit event or None, stdout, stderr, truncated, last seq, results)."""
    cap = settings.MEM0_CAPTURE_BYTES
    out, err, sizes, truncated, seq, exit_event = [], [], {"stdout": 0, "stderr": 0}, False, after_seq, None
    results, results_bytes = [], 0
    client = dispatch.engine()
    started, holding = time.monotonic(), block
    pending = list(first_events)
    while exit_event is None:
        now = time.monotonic()
        remaining_ms = int((deadline - now) * 1000)
        if remaining_ms <= 0:
            break
        wait_ms = min(remaining_ms, 5000) if block else 0
        if holding:
            wait_ms = min(wait_ms, max(1, HOLD_CONNECTION_MS - int((now - started) * 1000)))
        events, pending = pending or client.output(execution_id, after_seq=seq, block_ms=wait_ms), []
        if not events and not block:
            break
        for event in events:
            truncated = truncated or event.seq != seq + 1  # the bus dropped output over its budget
            seq = event.seq
            if isinstance(event, ResultEvent):
                results_bytes += event.nbytes
                if results_bytes > cap:
                    truncated = True
                else:
                    results.append(clean_result(event.data))
            elif not isinstance(event, ExitEvent):
                room = cap - sizes[event.stream]
                if room <= 0:
                    truncated = True
                    continue
                piece = event.data if len(event.data) <= room else event.data[:room]
                truncated = truncated or piece is not event.data
                sizes[event.stream] += len(piece)
                (out if event.stream == "stdout" else err).append(piece)
            else:
                exit_event = event
        if holding and exit_event is None and (time.monotonic() - started) * 1000 >= HOLD_CONNECTION_MS:
            _release_db_connection()
            holding = False
    return exit_event, "".join(out), "".join(err), truncated, seq, results


def execution_finalize(execution: Execution, exit_event, stdout: str, stderr: str, truncated: bool,
                       results=()) -> bool:
    """Record the agent's result once and meter its CPU; later calls change nothing. An interpreter that died
    and was restarted by the agent (`memory_lost`) leaves the sandbox running with `memory: "lost"`."""
    now = timezone.now()
    done = _record_result(execution, exit_event, stdout, stderr, truncated, now, results)
    if not done:  # someone else recorded it first: show theirs
        execution.refresh_from_db()
        return False
    dispatch.output_recorded([execution.pk])  # the stored copy serves replays from now on
    if not getattr(exit_event, "sandbox_alive", True):
        sandbox_ended_by_itself(execution.sandbox, reason="interpreter_exited")
    elif getattr(exit_event, "memory_lost", False):
        Sandbox.objects.filter(pk=execution.sandbox_id).update(memory="lost")
    return bool(done)


def _bounded_exit_code(code) -> int | None:
    """An int32, whatever the event says: the column must always take it (finding 6)."""
    if not isinstance(code, int) or isinstance(code, bool):
        return None
    return max(-(1 << 31), min((1 << 31) - 1, code))


def _result(exit_event, stdout: str, stderr: str, truncated: bool, now, results=()) -> dict:
    return {"status": exit_event.status, "exit_code": _bounded_exit_code(exit_event.exit_code),
            "limit": exit_event.limit, "results": list(results), "error": clean_error(getattr(exit_event, "error", None)),
            "wall_ms": exit_event.wall_ms, "cpu_ms": exit_event.cpu_ms,
            "peak_memory_bytes": exit_event.peak_memory_bytes, "stdout": stdout, "stderr": stderr,
            "truncated": truncated or exit_event.limit == "output", "finished_at": now}


def _apply_result(execution: Execution, result: dict) -> None:
    for name, value in result.items():
        setattr(execution, name, value)


def _record_result(execution: Execution, exit_event, stdout: str, stderr: str, truncated: bool, now,
                   results=()) -> int:
    result = _result(exit_event, stdout, stderr, truncated, now, results)
    still_open = {"id": execution.pk, "status__in": Execution.OPEN_STATUSES}
    if connection.vendor == "postgresql":
        done = _record_and_meter_pg(still_open, result, cpu_ms=exit_event.cpu_ms or 0, now=now)
    else:
        with transaction.atomic():  # the result and its metering commit together, or not at all
            done = orm_update(Execution, result, **still_open)
            if done:
                quotas.execution_metered(org_id=execution.organization_id, cpu_ms=exit_event.cpu_ms or 0,
                                         now=now)
    if done:
        _apply_result(execution, result)
    return done


def _record_and_meter_pg(still_open: dict, result: dict, *, cpu_ms: float, now) -> bool:
    """The result UPDATE and its metering in one statement (a data-modifying CTE): one round trip, and the
    organisation's period rows (shared by all its runs) are locked only inside PostgreSQL, never across a
    Python step between statements where a busy process would stretch the lock for every other run."""
    done_sql, done_params = update_where(Execution, result, "organization_id", **still_open)
    meter_sql, meter_params = quotas.metering_upsert_sql("done", now, executions=1,
                                                         cpu_us=max(0, round(cpu_ms * 1000)))
    with connection.cursor() as cursor:
        cursor.execute(f"WITH done AS ({done_sql}) {meter_sql}", [*done_params, *meter_params])
        return cursor.rowcount > 0


def execution_wait(execution: Execution, *, record_later=None) -> Execution:
    """Block until the run ends (its timeout plus a grace); a vanished agent ends it `agent_lost`.

    With `record_later` (a function that schedules a callable, e.g. after the response is sent) the result
    is returned at once and recorded through it: the exit record stays on the agent's stream, so a crash
    before recording leaves the run open until the next GET or stream read records it."""
    deadline = time.monotonic() + execution.timeout_s + WAIT_GRACE_S
    exit_event, stdout, stderr, truncated, _, results = collect(
        execution.pk, deadline=deadline, first_events=getattr(execution, "first_events", ()))
    if exit_event is not None and record_later is not None:
        pending = Execution(pk=execution.pk, organization_id=execution.organization_id,
                            sandbox_id=execution.sandbox_id, status=execution.status)
        _apply_result(execution, _result(exit_event, stdout, stderr, truncated, timezone.now(), results))
        record_later(lambda: execution_finalize(pending, exit_event, stdout, stderr, truncated, results))
        return execution
    if exit_event is not None:
        execution_finalize(execution, exit_event, stdout, stderr, truncated, results)
        return execution
    if not agent_alive(execution.sandbox.agent_id):
        sandbox_mark_ended(execution.sandbox, state=Sandbox.State.LOST, reason="agent_lost")
        execution.refresh_from_db()
        return execution
    raise AgentTimeout(f"Execution {execution.pk} has not finished; poll GET /api/v1/executions/{execution.pk}.",
                       details={"execution_id": execution.pk})


def execution_refresh(execution: Execution) -> Execution:
    """Finalise an open execution whose exit record is already on the stream (non-blocking)."""
    if execution.status in Execution.OPEN_STATUSES:
        exit_event, stdout, stderr, truncated, _, results = collect(execution.pk, deadline=time.monotonic() + 5,
                                                                    block=False)
        if exit_event is not None:
            execution_finalize(execution, exit_event, stdout, stderr, truncated, results)
    return execution


def execution_cancel(*, principal, execution: Execution, request=None) -> Execution:
    """Interrupt an open run and keep its sandbox (see the agent's `op_cancel`): the run ends `cancelled`
    (409 conflict if it had already ended). Audit-logged as `execution.cancel`."""
    if execution.status not in Execution.OPEN_STATUSES:
        raise Conflict(f"Execution {execution.pk} has already ended ({execution.status}).",
                       details={"status": execution.status})
    sandbox = execution.sandbox
    dispatch.call(sandbox.agent_id, "cancel", owner=str(execution.organization_id), sandbox_id=sandbox.pk,
                  execution_id=execution.pk)
    audit_record(org=principal.org, action="execution.cancel", principal=principal, request=request,
                 target_type="execution", target_id=execution.pk, metadata={"sandbox": sandbox.pk})
    return execution_refresh(execution)


def agent_alive(agent_id: str) -> bool:
    return any(a.id == agent_id and a.alive for a in dispatch.engine().agents())
