"""Quota checks made before work is dispatched, and the usage recorded after it.

Concurrent sandboxes are counted with a conditional UPDATE on `SandboxSlots` (`in_use < limit`), atomic on
PostgreSQL and SQLite alike, so N concurrent creates at the limit cannot overshoot.
"""

from datetime import date, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone

from billing.models import SandboxSlots, UsageEvent, UsagePeriod
from billing.selectors import effective_limits
from mem0web.errors import Mem0Error


class QuotaExceeded(Mem0Error):
    code, status, message = "quota_exceeded", 429, "A plan limit was reached."


def _next_day(now: datetime) -> datetime:
    return (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


def _next_month(now: datetime) -> datetime:
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first + timedelta(days=32)).replace(day=1)


def period_start(kind: str, now: datetime | None = None) -> date:
    now = now or timezone.now()
    return now.date() if kind == UsagePeriod.Kind.DAY else now.date().replace(day=1)


def sandbox_slot_reserve(*, org) -> None:
    """Take one concurrent-sandbox slot or raise quota_exceeded."""
    limit = effective_limits(org)["concurrent_sandboxes"]
    SandboxSlots.objects.get_or_create(organization=org)
    taken = SandboxSlots.objects.filter(organization=org, in_use__lt=limit).update(in_use=F("in_use") + 1)
    if not taken:
        in_use = SandboxSlots.objects.get(organization=org).in_use
        raise QuotaExceeded(f"At most {limit} sandboxes may run at once on this plan.",
                            details={"limit_name": "concurrent_sandboxes", "used": in_use, "limit": limit,
                                     "resets_at": None})


def sandbox_slot_release(*, org) -> None:
    SandboxSlots.objects.filter(organization=org, in_use__gt=0).update(in_use=F("in_use") - 1)


def execution_admit(*, org, timeout_s: float | None) -> float:
    """Count one execution against today's limit, check the month's CPU; return the run timeout to use."""
    limits = effective_limits(org)
    now = timezone.now()
    max_run = float(limits["max_run_seconds"])
    if timeout_s is not None and timeout_s > max_run:
        raise QuotaExceeded(f"timeout_s may be at most {max_run:g} s on this plan.",
                            details={"limit_name": "max_run_seconds", "used": timeout_s, "limit": max_run,
                                     "resets_at": None})
    month_cpu_ms = cpu_ms_used(org, now)
    if month_cpu_ms >= limits["cpu_seconds_per_month"] * 1000:
        raise QuotaExceeded("This month's CPU time is used up.",
                            details={"limit_name": "cpu_seconds_per_month", "used": month_cpu_ms // 1000,
                                     "limit": limits["cpu_seconds_per_month"],
                                     "resets_at": _next_month(now).isoformat()})
    day = period_start(UsagePeriod.Kind.DAY, now)
    _period_row(org, UsagePeriod.Kind.DAY, day)
    admitted = UsagePeriod.objects.filter(organization=org, kind=UsagePeriod.Kind.DAY, start=day,
                                          executions__lt=limits["executions_per_day"]
                                          ).update(executions=F("executions") + 1)
    if not admitted:
        raise QuotaExceeded("Today's executions are used up.",
                            details={"limit_name": "executions_per_day", "used": limits["executions_per_day"],
                                     "limit": limits["executions_per_day"], "resets_at": _next_day(now).isoformat()})
    return float(timeout_s) if timeout_s is not None else min(30.0, max_run)


def _period_row(org, kind: str, start: date) -> None:
    if not UsagePeriod.objects.filter(organization=org, kind=kind, start=start).exists():
        try:
            with transaction.atomic():
                UsagePeriod.objects.create(organization=org, kind=kind, start=start)
        except IntegrityError:
            pass


def cpu_ms_used(org, now: datetime | None = None) -> int:
    """CPU ms this month: rolled-up figures plus events not rolled up yet."""
    now = now or timezone.now()
    month = period_start(UsagePeriod.Kind.MONTH, now)
    rolled = UsagePeriod.objects.filter(organization=org, kind=UsagePeriod.Kind.MONTH, start=month).first()
    pending = UsageEvent.objects.filter(organization=org, rolled_up=False,
                                        created_at__date__gte=month).aggregate(s=Sum("cpu_ms"))["s"] or 0
    return (rolled.cpu_ms if rolled else 0) + pending


def usage_record(*, org, source: str, executions: int = 0, cpu_ms: float = 0, sandbox_seconds: float = 0) -> bool:
    """Record an agent-reported figure once; a second report with the same source is ignored."""
    try:
        with transaction.atomic():
            UsageEvent.objects.create(organization=org, source=source, executions=executions,
                                      cpu_ms=int(round(cpu_ms)), sandbox_seconds=int(round(sandbox_seconds)))
    except IntegrityError:
        return False
    return True
