"""Quota checks made before work is dispatched, and the usage recorded after it.

Every refusal is `quota_exceeded` (HTTP 429) with details `limit_name`, `used`, `limit` and `resets_at`
(ISO-8601, or null for limits that free up rather than reset: concurrent sandboxes, storage, max run time).
429 rather than 403 because the request is valid and the caller is allowed to make it; it is refused
for now, the same family as `rate_limited`, and DESIGN §6 lists 429 for both. Unlike `rate_limited` there
is no Retry-After header: retrying in a loop will not help, `resets_at` says when it would.

Counted limits are taken with a conditional UPDATE (`counter < limit`), atomic on PostgreSQL and SQLite,
so N concurrent requests at the limit cannot overshoot: concurrent sandboxes on `SandboxSlots.in_use`,
executions per day on `UsagePeriod.executions_admitted`. CPU per month is checked at admission against the
metered figure: a run already admitted may finish past the limit, by at most one run's CPU.
"""

from datetime import date, datetime

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from billing.models import SandboxSlots, UsageEvent, UsagePeriod
from billing.periods import DAY, MONTH, period_of
from billing.selectors import (
    effective_limits,
    executions_admitted,
    sandboxes_in_use,
    storage_bytes_used,
    usage_totals,
)
from mem0web.errors import Mem0Error

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


def sandbox_slot_reserve(*, org) -> None:
    """Take one concurrent-sandbox slot or raise quota_exceeded."""
    limit = effective_limits(org)["concurrent_sandboxes"]
    SandboxSlots.objects.get_or_create(organization=org)
    taken = SandboxSlots.objects.filter(organization=org, in_use__lt=limit).update(in_use=F("in_use") + 1)
    if not taken:
        raise _exceeded(
            f"At most {limit} sandboxes may run at once on this plan.",
            limit_name="concurrent_sandboxes",
            used=sandboxes_in_use(org),
            limit=limit,
        )


def sandbox_slot_release(*, org) -> None:
    """Give a slot back (once per sandbox; the caller's state UPDATE guarantees that)."""
    SandboxSlots.objects.filter(organization=org, in_use__gt=0).update(in_use=F("in_use") - 1)


def execution_admit(*, org, timeout_s: float | None, now: datetime | None = None) -> float:
    """Admit one run or raise quota_exceeded; returns the run timeout to use (seconds).

    Checks, cheapest first: the requested timeout against max_run_seconds, this month's CPU, then takes
    one of today's executions (the only check that writes)."""
    limits = effective_limits(org)
    now = now or timezone.now()
    max_run = float(limits["max_run_seconds"])
    if timeout_s is not None and timeout_s > max_run:
        raise _exceeded(
            f"timeout_s may be at most {max_run:g} s on this plan.",
            limit_name="max_run_seconds",
            used=timeout_s,
            limit=limits["max_run_seconds"],
        )
    month = period_of(MONTH, now)
    cpu_ms = usage_totals(org, month)["cpu_ms"]
    if cpu_ms >= limits["cpu_seconds_per_month"] * 1000:
        raise _exceeded(
            "This month's CPU time is used up.",
            limit_name="cpu_seconds_per_month",
            used=int(cpu_ms // 1000),
            limit=limits["cpu_seconds_per_month"],
            resets_at=month.ends_at,
        )
    day = period_of(DAY, now)
    today = UsagePeriod.objects.filter(
        organization=org, kind=DAY, start=day.start, executions_admitted__lt=limits["executions_per_day"]
    )
    admitted = today.update(executions_admitted=F("executions_admitted") + 1)
    if not admitted:  # the day's first run makes the row (one query saved on every other run)
        period_row_ensure(org.pk, DAY, day.start)
        admitted = today.update(executions_admitted=F("executions_admitted") + 1)
    if not admitted:
        raise _exceeded(
            "Today's executions are used up.",
            limit_name="executions_per_day",
            used=executions_admitted(org, now),
            limit=limits["executions_per_day"],
            resets_at=day.ends_at,
        )
    return float(timeout_s) if timeout_s is not None else min(DEFAULT_RUN_SECONDS, max_run)


def storage_admit(*, org, additional_bytes: int = 0) -> None:
    """Raise quota_exceeded unless the organisation's snapshot storage plus `additional_bytes` fits its plan.

    Call before snapshotting with the best estimate of the bytes the snapshot adds (0 if unknown: then a
    tenant already at or over the limit is refused, and one under it may finish one snapshot past it)."""
    limit = effective_limits(org)["snapshot_storage_bytes"]
    used = storage_bytes_used(org)
    if used >= limit or used + max(0, int(additional_bytes)) > limit:
        raise _exceeded(
            "Snapshot storage is full on this plan; delete snapshots to free space.",
            limit_name="snapshot_storage_bytes",
            used=used,
            limit=limit,
        )


def period_row_ensure(organization_id: int, kind: str, start: date) -> None:
    """Create the organisation's UsagePeriod row for `start` unless it exists (safe under races)."""
    if not UsagePeriod.objects.filter(organization_id=organization_id, kind=kind, start=start).exists():
        try:
            with transaction.atomic():
                UsagePeriod.objects.create(organization_id=organization_id, kind=kind, start=start)
        except IntegrityError:
            pass


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
