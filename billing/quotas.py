"""Quota checks made before work is dispatched, and the usage recorded after it.

Every refusal is `quota_exceeded` (HTTP 429) with details `limit_name`, `used`, `limit` and `resets_at`
(ISO-8601, or null for limits that free up rather than reset: concurrent sandboxes, storage, max run time).
429 rather than 403 because the request is valid and the caller is allowed to make it; it is refused
for now, the same family as `rate_limited`, and DESIGN §6 lists 429 for both. Unlike `rate_limited` there
is no Retry-After header: retrying in a loop will not help, `resets_at` says when it would.

Counted limits are taken with a conditional UPDATE (`counter < limit`), atomic on PostgreSQL and SQLite,
so N concurrent requests at the limit cannot overshoot: concurrent sandboxes on `SandboxSlots.in_use`,
executions per day on `UsagePeriod.executions_admitted`. CPU per month is checked at admission against the
metered figure: a run already admitted may finish past the limit, by at most one run's CPU. Runs and sandbox
lifetimes are metered straight into their period rows when they end (`usage_add`, or `metering_upsert_sql`
inside the statement that records a run on PostgreSQL); figures reported as UsageEvents go through the
roll-up and count at admission while still pending.
"""

from datetime import date, datetime

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from billing.models import SandboxSlots, StorageHeld, UsageEvent, UsagePeriod
from billing.periods import DAY, MONTH, Period, period_of
from billing.selectors import (
    effective_limits,
    executions_admitted,
    sandboxes_in_use,
    storage_bytes_used,
    usage_totals,
)
from mem0web.errors import Mem0Error
from mem0web.sql import Increment, conditional_insert, insert_from, mark_saved

DEFAULT_RUN_SECONDS = 30.0


class QuotaExceeded(Mem0Error):
    code, status, message = "quota_exceeded", 429, "A plan limit was reached."


def _exceeded(
    message: str, *, limit_name: str, used, limit, resets_at: datetime | None = None
) -> QuotaExceeded:
    return QuotaExceeded(
        message,
        details={
            "limit_name": limit_name,
            "used": used,
            "limit": limit,
            "resets_at": resets_at.isoformat() if resets_at else None,
        },
    )


def sandbox_slot_reserve(*, org, record=None) -> None:
    """Take one concurrent-sandbox slot or raise quota_exceeded.

    `record` (optional): the unsaved row the new sandbox writes; on PostgreSQL the same statement inserts
    it, only if a slot was taken (one round trip); elsewhere it is saved right after."""
    limit = effective_limits(org)["concurrent_sandboxes"]
    slots = SandboxSlots.objects.filter(organization=org, in_use__lt=limit)
    if record is not None and connection.vendor == "postgresql" and conditional_insert(
            SandboxSlots, {"in_use": Increment(1)}, record, organization_id=org.pk, in_use__lt=limit):
        return
    taken = slots.update(in_use=F("in_use") + 1)
    if not taken:  # at the limit, or the organisation's first sandbox: make the row, then try once more
        # (retried whoever made it: concurrent first sandboxes all find it only after their first try)
        SandboxSlots.objects.get_or_create(organization=org)
        taken = slots.update(in_use=F("in_use") + 1)
    if not taken:
        raise _exceeded(
            f"At most {limit} sandboxes may run at once on this plan.",
            limit_name="concurrent_sandboxes",
            used=sandboxes_in_use(org),
            limit=limit,
        )
    if record is not None:
        record.save(force_insert=True)


def sandbox_slot_release(*, org) -> None:
    """Give a slot back (once per sandbox; the caller's state UPDATE guarantees that)."""
    SandboxSlots.objects.filter(organization=org, in_use__gt=0).update(in_use=F("in_use") - 1)


def execution_admit(*, org, timeout_s: float | None, now: datetime | None = None, record=None) -> float:
    """Admit one run or raise quota_exceeded; returns the run timeout to use (seconds).

    One statement on the hot path: a conditional UPDATE takes one of today's executions only while the
    day's count is under its limit and this month's CPU (metered into the month row, plus any events not
    rolled up yet) is under its limit. Zero rows means a limit was hit or the rows do not exist yet (the
    day's first run): only then do we look closer. `record(timeout_s) -> unsaved model instance` (optional)
    is the row the run writes: on PostgreSQL it is inserted by the same statement (one round trip, and
    only if admitted); elsewhere it is saved right after."""
    limits = effective_limits(org)
    now = now or timezone.now()
    timeout = _run_timeout(limits, timeout_s)
    row = record(timeout) if record is not None else None
    day, month = period_of(DAY, now), period_of(MONTH, now)
    together = row is not None and connection.vendor == "postgresql"
    if together and _take_execution(org.pk, day, month, limits, insert=row):
        return timeout
    if not _take_execution(org.pk, day, month, limits):
        usage_add(org.pk, now)  # the day's first run: make the rows, then try once more
        if not _take_execution(org.pk, day, month, limits):
            raise _admission_refusal(org, now, limits)
    if row is not None:
        row.save(force_insert=True)
    return timeout


def execution_admit_guarded(*, org, timeout_s: float | None, record, guard: tuple[str, list, list[str]]):
    """`execution_admit`'s hot path on PostgreSQL, conditional on `guard` as well, in one statement.

    `guard` is (a SELECT of at most one row, its params, its column names): for a run, "the sandbox exists,
    is this organisation's and is running", which then needs no statement of its own. Admits, inserts
    `record(timeout)` and returns (timeout, the guard row's values); None when anything did not hold (the
    guard, a limit, the day's rows not made yet, a timeout over the plan's, not PostgreSQL): the caller then
    checks the guard itself and takes `execution_admit`, which says which limit refused."""
    if connection.vendor != "postgresql":
        return None
    limits = effective_limits(org)
    try:
        timeout = _run_timeout(limits, timeout_s)
    except QuotaExceeded:
        return None
    now = timezone.now()
    returned = _take_execution(org.pk, period_of(DAY, now), period_of(MONTH, now), limits, insert=record(timeout),
                               guard=guard)
    return None if returned is None else (timeout, returned)


def _run_timeout(limits: dict, timeout_s: float | None) -> float:
    """The run's timeout: the one asked for (quota_exceeded over the plan's maximum), or the default."""
    max_run = float(limits["max_run_seconds"])
    if timeout_s is not None and timeout_s > max_run:
        raise _exceeded(
            f"timeout_s may be at most {max_run:g} s on this plan.",
            limit_name="max_run_seconds",
            used=timeout_s,
            limit=limits["max_run_seconds"],
        )
    return float(timeout_s) if timeout_s is not None else min(DEFAULT_RUN_SECONDS, max_run)


def _take_execution(org_id: int, day: Period, month: Period, limits: dict, insert=None, guard=None):
    """Take one of today's executions: True (or, with `insert`, the row RETURNING gave) if taken, else None.
    `guard` (see execution_admit_guarded) goes with an `insert`, whose RETURNING carries its values."""
    ops, period, event = connection.ops, UsagePeriod._meta.db_table, UsageEvent._meta.db_table
    sql = (
        f"UPDATE {period} SET executions_admitted = executions_admitted + 1"
        f" WHERE organization_id = %s AND kind = %s AND start = %s AND executions_admitted < %s"
        f" AND COALESCE((SELECT m.cpu_us FROM {period} m"
        f"   WHERE m.organization_id = %s AND m.kind = %s AND m.start = %s), 0)"
        f" + COALESCE((SELECT SUM(e.cpu_us) FROM {event} e WHERE e.organization_id = %s AND e.rolled_up = %s"
        f"   AND e.created_at >= %s AND e.created_at < %s), 0) < %s"
    )
    params = [
        org_id, DAY, ops.adapt_datefield_value(day.start), limits["executions_per_day"],
        org_id, MONTH, ops.adapt_datefield_value(month.start),
        org_id, False, ops.adapt_datetimefield_value(month.starts_at), ops.adapt_datetimefield_value(month.ends_at),
        limits["cpu_seconds_per_month"] * 1_000_000,
    ]
    guard_with, guard_returning = "", ""
    if guard is not None:
        assert insert is not None, "a guard's values come back through the insert's RETURNING"
        guard_sql, guard_params, guard_columns = guard
        sql, params = sql + " AND EXISTS (SELECT 1 FROM guard)", [*guard_params, *params]
        guard_with = f"guard AS ({guard_sql}), "
        guard_returning = "".join(f", (SELECT {column} FROM guard)" for column in guard_columns)
    if insert is not None:
        insert_sql, insert_params = insert_from(insert, "admitted")
        sql = f"WITH {guard_with}admitted AS ({sql} RETURNING organization_id) {insert_sql}{guard_returning}"
        params = [*params, *insert_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount != 1:
            return None
        if insert is None:
            return True
        returned = cursor.fetchone()
    mark_saved(insert, returned[0])
    return returned[1:] if guard is not None else returned


def _admission_refusal(org, now: datetime, limits: dict) -> QuotaExceeded:
    """Which limit refused the run (the slow path: only after the conditional UPDATE took nothing)."""
    month, day = period_of(MONTH, now), period_of(DAY, now)
    cpu_ms = usage_totals(org, month)["cpu_ms"]
    if cpu_ms >= limits["cpu_seconds_per_month"] * 1000:
        return _exceeded(
            "This month's CPU time is used up.",
            limit_name="cpu_seconds_per_month",
            used=int(cpu_ms // 1000),
            limit=limits["cpu_seconds_per_month"],
            resets_at=month.ends_at,
        )
    return _exceeded(
        "Today's executions are used up.",
        limit_name="executions_per_day",
        used=executions_admitted(org, now),
        limit=limits["executions_per_day"],
        resets_at=day.ends_at,
    )


def execution_admission_return(*, org_id: int, now: datetime) -> None:
    """Give back one execution admitted on `now`'s day whose run never started (the sandbox was busy)."""
    UsagePeriod.objects.filter(organization_id=org_id, kind=DAY, start=period_of(DAY, now).start,
                               executions_admitted__gt=0).update(executions_admitted=F("executions_admitted") - 1)


def usage_add(org_id: int, now: datetime, *, executions: int = 0, cpu_us: int = 0, sandbox_ms: int = 0) -> None:
    """Add figures to the organisation's day and month rows of `now`, making the rows if needed.

    One INSERT .. ON CONFLICT DO UPDATE (PostgreSQL and SQLite): atomic, no read-modify-write."""
    periods_add([(org_id, kind, period_of(kind, now).start, executions, cpu_us, sandbox_ms) for kind in (DAY, MONTH)])


def periods_add(rows: list[tuple[int, str, date, int, int, int]]) -> None:
    """Upsert (organization_id, kind, start, executions, cpu_us, sandbox_ms) increments into UsagePeriods."""
    if not rows:
        return
    ops = connection.ops
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, 0, 0)"] * len(rows))
    params = [v for org_id, kind, start, ex, cpu, sb in sorted(rows)  # one lock order for every writer
              for v in (org_id, kind, ops.adapt_datefield_value(start), ex, cpu, sb)]
    with connection.cursor() as cursor:
        cursor.execute(_periods_upsert(f"VALUES {values}"), params)


def _periods_upsert(rows_sql: str) -> str:
    """INSERT `rows_sql` (organization_id, kind, start, executions, cpu_us, sandbox_ms, storage_bytes,
    executions_admitted) into UsagePeriods, adding the metered figures to rows that exist."""
    table = UsagePeriod._meta.db_table
    return (
        f"INSERT INTO {table} (organization_id, kind, start, executions, cpu_us, sandbox_ms, storage_bytes,"
        f" executions_admitted) {rows_sql} ON CONFLICT (organization_id, kind, start) DO UPDATE SET"
        f" executions = {table}.executions + excluded.executions, cpu_us = {table}.cpu_us + excluded.cpu_us,"
        f" sandbox_ms = {table}.sandbox_ms + excluded.sandbox_ms"
    )


def metering_upsert_sql(source: str, now: datetime, *, executions: int = 0, cpu_us: int = 0,
                        sandbox_ms: int = 0) -> tuple[str, list]:
    """The upsert of `usage_add` as SQL that takes its organisation ids from `source` (a CTE or table with an
    `organization_id` column), to run in the same statement as the write being metered (PostgreSQL).
    Returns one row per period row touched."""
    ops = connection.ops
    sql = _periods_upsert(
        f"SELECT s.organization_id, p.kind, CAST(p.start AS date), %s, %s, %s, 0, 0"
        f" FROM {source} s CROSS JOIN (VALUES (%s, %s), (%s, %s)) AS p(kind, start)"
    ) + " RETURNING 1"
    params = [executions, cpu_us, sandbox_ms,
              DAY, str(ops.adapt_datefield_value(period_of(DAY, now).start)),
              MONTH, str(ops.adapt_datefield_value(period_of(MONTH, now).start))]
    return sql, params


def execution_metered(*, org_id: int, cpu_ms: float, now: datetime | None = None) -> None:
    """Meter one finished run straight into its day and month rows (call once per run, in the transaction
    that records its result: the result's conditional UPDATE is what makes it once)."""
    usage_add(org_id, now or timezone.now(), executions=1, cpu_us=max(0, round(cpu_ms * 1000)))


def _storage_full(used: int, limit: int) -> QuotaExceeded:
    return _exceeded(
        "Snapshot storage is full on this plan; delete snapshots to free space.",
        limit_name="snapshot_storage_bytes",
        used=used,
        limit=limit,
    )


def storage_admit(*, org, additional_bytes: int = 0) -> None:
    """Raise quota_exceeded unless the organisation's snapshot storage plus `additional_bytes` fits its plan.

    The cheap check before a snapshot is taken (a tenant at or over its limit is refused without work);
    `storage_hold(admit=True)` then checks the total the new snapshot really leaves referenced."""
    limit = effective_limits(org)["snapshot_storage_bytes"]
    used = storage_bytes_used(org)
    if used >= limit or used + max(0, int(additional_bytes)) > limit:
        raise _storage_full(used, limit)


def storage_lock(*, org) -> int:
    """Lock the organisation's held-storage row until the end of the transaction; returns its bytes.

    Snapshot create and delete recount under it, so two of them cannot write a stale total."""
    StorageHeld.objects.get_or_create(organization=org)
    return StorageHeld.objects.select_for_update().get(organization=org).bytes


def storage_hold(*, org, held_bytes: int, admit: bool = False) -> None:
    """Record the bytes the organisation's live snapshots keep referenced (call under `storage_lock`).

    `admit`: the new total includes a snapshot not yet recorded; refuse it (quota_exceeded) when the total
    would pass the plan's limit, and record nothing."""
    held_bytes = max(0, int(held_bytes))
    if admit:
        limit = effective_limits(org)["snapshot_storage_bytes"]
        if held_bytes > limit:
            raise _storage_full(held_bytes, limit)
    StorageHeld.objects.filter(organization=org).update(bytes=held_bytes)


def period_row_ensure(organization_id: int, kind: str, start: date) -> None:
    """Create the organisation's UsagePeriod row for `start` unless it exists (safe under races)."""
    periods_add([(organization_id, kind, start, 0, 0, 0)])


def cpu_ms_used(org, now: datetime | None = None) -> float:
    """CPU ms this month: rolled-up figures plus events not rolled up yet."""
    return usage_totals(org, period_of(MONTH, now))["cpu_ms"]


def usage_record(
    *,
    org,
    source: str,
    executions: int = 0,
    cpu_ms: float = 0,
    sandbox_seconds: float = 0,
    now: datetime | None = None,
) -> bool:
    """Record a reported figure once; a second report with the same source is ignored (returns False).

    CPU is kept to the microsecond and sandbox time to the millisecond (what the agent and the clock give),
    so the reported sums are exact rather than a sum of per-run roundings."""
    try:
        with transaction.atomic():
            UsageEvent.objects.create(
                organization=org,
                source=source,
                executions=executions,
                cpu_us=max(0, round(cpu_ms * 1000)),
                sandbox_ms=max(0, round(sandbox_seconds * 1000)),
                created_at=now or timezone.now(),
            )
    except IntegrityError:
        return False
    return True
