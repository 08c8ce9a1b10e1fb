"""Reads for plans, limits and usage.

Metered figures (executions, cpu_ms, sandbox_seconds) are always the rolled-up UsagePeriod row plus the
UsageEvents not rolled up yet, read in one consistent snapshot (`consistent_reads()`), so what the API
reports equals the sum of agent-reported figures whether or not the roll-up has run. They are stored in
finer units (cpu_us, sandbox_ms) and shown in the API's (cpu_ms, sandbox_seconds, 3 decimals).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce, TruncDay, TruncMonth
from django.utils import timezone

from accounts.models import Organization
from billing.models import (
    LIMIT_FIELDS,
    Plan,
    PlanOverride,
    SandboxSlots,
    StorageHeld,
    UsageEvent,
    UsagePeriod,
)
from billing.periods import DAY, MONTH, Period, period_of
from mem0web.localcache import LocalCache

METERED = ("executions", "cpu_us", "sandbox_ms")


def _public(stored: dict) -> dict:
    """Stored units → the API's: executions, cpu_ms (µs precision), sandbox_seconds (ms precision)."""
    return {
        "executions": int(stored["executions"] or 0),
        "cpu_ms": round((stored["cpu_us"] or 0) / 1000, 3),
        "sandbox_seconds": round((stored["sandbox_ms"] or 0) / 1000, 3),
    }


LIMITS_CACHE_SECONDS = 30
_local = LocalCache()


def _limits_key(org_id: int) -> str:
    return f"mem0:limits:{org_id}"


def forget_limits(org_ids) -> None:
    """Drop cached effective limits (billing/signals.py calls this when a plan, override or organisation changes)."""
    org_ids = list(org_ids)
    _local.forget(org_ids)
    cache.delete_many([_limits_key(pk) for pk in org_ids])


def effective_limits(org: Organization) -> dict[str, int]:
    """The organisation's limits: its plan's values, with any operator override on top.

    Every request checks several limits, so the result is cached per organisation (keyed by its plan)
    for LIMITS_CACHE_SECONDS (and LOCAL_TTL_S in each process) and dropped on any change to the plan, the
    override or the organisation: at once in the process making the change, within a second elsewhere.
    The plan is read fresh on a miss: `org` may be a cached copy from the API-key cache."""
    local = _local.get(org.pk)
    if local is not None and local[0] == org.plan_id:
        return dict(local[1])
    generation = _local.generation
    cached = cache.get(_limits_key(org.pk))
    if cached is not None and cached[0] == org.plan_id:
        _local.put(org.pk, cached, generation)
        return dict(cached[1])
    plan: Plan = Plan.objects.get(pk=org.plan_id)
    limits = {name: getattr(plan, name) for name in LIMIT_FIELDS}
    override = PlanOverride.objects.filter(organization_id=org.pk).first()
    if override is not None:
        for name in LIMIT_FIELDS:
            value = getattr(override, name)
            if value is not None:
                limits[name] = value
    cache.set(_limits_key(org.pk), (org.plan_id, limits), LIMITS_CACHE_SECONDS)
    _local.put(org.pk, (org.plan_id, limits), generation)
    return dict(limits)


def limits_table(org: Organization) -> list[dict]:
    """For operators: each limit's plan value, override (or None) and effective value, side by side."""
    override = PlanOverride.objects.filter(organization_id=org.pk).first()
    rows = []
    for name in LIMIT_FIELDS:
        plan_value = getattr(org.plan, name)
        override_value = getattr(override, name) if override is not None else None
        rows.append(
            {
                "name": name,
                "plan": plan_value,
                "override": override_value,
                "effective": plan_value if override_value is None else override_value,
            }
        )
    return rows


def plan_by_slug(slug: str) -> Plan:
    return Plan.objects.get(slug=slug)


@contextmanager
def consistent_reads() -> Iterator[None]:
    """A read-only snapshot for several queries: a roll-up committing in between cannot be half-seen.

    PostgreSQL needs REPEATABLE READ for that (READ COMMITTED snapshots per statement); SQLite in WAL mode
    gives a snapshot from a transaction's first read. Inside an outer transaction the outer one's
    isolation applies (the level can only be set at a transaction's start).
    """
    outer = connection.in_atomic_block
    with transaction.atomic(savepoint=False):  # inside a transaction already: no savepoint round trips
        if not outer and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


def _pending(org: Organization, starts_at: datetime, ends_at: datetime):
    return UsageEvent.objects.filter(
        organization=org, rolled_up=False, created_at__gte=starts_at, created_at__lt=ends_at
    )


def usage_totals(org: Organization, period: Period) -> dict[str, float]:
    """Metered executions, cpu_ms and sandbox_seconds of one period: rolled-up plus pending events."""
    with consistent_reads():
        row = (
            UsagePeriod.objects.filter(organization=org, kind=period.kind, start=period.start)
            .values(*METERED)
            .first()
            or {}
        )
        pending = _pending(org, period.starts_at, period.ends_at).aggregate(**{m: Sum(m) for m in METERED})
    return _public({m: int(row.get(m) or 0) + int(pending[m] or 0) for m in METERED})


def executions_admitted(org: Organization, now: datetime | None = None) -> int:
    """Runs admitted today (the figure the daily limit is enforced on)."""
    day = period_of(DAY, now)
    row = (
        UsagePeriod.objects.filter(organization=org, kind=DAY, start=day.start)
        .values("executions_admitted")
        .first()
    )
    return row["executions_admitted"] if row else 0


def storage_bytes_used(org: Organization) -> int:
    """Snapshot storage the organisation holds now: what its live snapshots keep referenced, shared chunks
    counted once (billing.models.StorageHeld)."""
    row = StorageHeld.objects.filter(organization=org).values("bytes").first()
    return int(row["bytes"]) if row else 0


def sandboxes_in_use(org: Organization) -> int:
    row = SandboxSlots.objects.filter(organization=org).values("in_use").first()
    return row["in_use"] if row else 0


def usage_history(org: Organization, kind: str, *, before: Period, count: int) -> list[dict]:
    """The `count` periods of `kind` before `before` that have any usage, newest first."""
    with consistent_reads():
        rows = {
            r["start"]: r
            for r in UsagePeriod.objects.filter(organization=org, kind=kind, start__lt=before.start)
            .order_by("-start")
            .values("start", "storage_bytes", *METERED)[:count]
        }
        trunc = TruncDay if kind == DAY else TruncMonth
        pending = (
            _pending(org, datetime(1970, 1, 1, tzinfo=UTC), before.starts_at)
            .annotate(p=trunc("created_at", tzinfo=UTC))
            .values("p")
            .annotate(**{m: Sum(m) for m in METERED})
        )
        for agg in pending:
            start = agg["p"].date()
            row = rows.setdefault(start, {"start": start, "storage_bytes": 0, **{m: 0 for m in METERED}})
            for m in METERED:
                row[m] = int(row[m] or 0) + int(agg[m] or 0)
    history = []
    for start in sorted(rows, reverse=True)[:count]:
        row = rows[start]
        history.append(
            {
                "period": Period(kind, start).as_dict(),
                **_public(row),
                "storage_bytes": int(row["storage_bytes"]),
            }
        )
    return history


def usage_report(
    org: Organization, *, now: datetime | None = None, history: str = MONTH, history_count: int = 12
) -> dict:
    """The usage document of GET /api/v1/usage and the console panel.

    Each metric has `used` and `limit` over its own `window`: executions per UTC day (the limit's window),
    cpu_ms and sandbox_seconds per UTC month, storage_bytes and concurrent_sandboxes as of now.
    `period` is the current month; `month` holds its metered totals; `history` the previous periods.
    """
    now = now or timezone.now()
    month, day = period_of(MONTH, now), period_of(DAY, now)
    limits = effective_limits(org)
    with consistent_reads():
        month_totals = usage_totals(org, month)
        day_totals = usage_totals(org, day)
        admitted = executions_admitted(org, now)
        storage = storage_bytes_used(org)
        in_use = sandboxes_in_use(org)
        past = usage_history(org, history, before=period_of(history, now), count=history_count)
    return {
        "period": month.as_dict(),
        "executions": {
            "used": day_totals["executions"],
            "admitted": admitted,
            "limit": limits["executions_per_day"],
            "window": DAY,
            "resets_at": day.ends_at.isoformat(),
        },
        "cpu_ms": {
            "used": month_totals["cpu_ms"],
            "limit": limits["cpu_seconds_per_month"] * 1000,
            "window": MONTH,
            "resets_at": month.ends_at.isoformat(),
        },
        "sandbox_seconds": {
            "used": month_totals["sandbox_seconds"],
            "limit": None,
            "window": MONTH,
            "resets_at": month.ends_at.isoformat(),
        },
        "storage_bytes": {
            "used": storage,
            "limit": limits["snapshot_storage_bytes"],
            "window": "now",
            "resets_at": None,
        },
        "concurrent_sandboxes": {
            "used": in_use,
            "limit": limits["concurrent_sandboxes"],
            "window": "now",
            "resets_at": None,
        },
        "month": {**month_totals, "storage_bytes": storage},
        "history": past,
    }


def organizations_with_usage(qs, *, now: datetime | None = None):
    """Annotate organisations with their current usage for operators' lists, in one query:
    `sandboxes_in_use`, `executions_today`, `cpu_us_month`, `storage_bytes_now` (rolled plus pending)."""
    now = now or timezone.now()
    day, month = period_of(DAY, now), period_of(MONTH, now)

    def rolled(kind: str, start, field: str):
        return Subquery(
            UsagePeriod.objects.filter(organization=OuterRef("pk"), kind=kind, start=start).values(field)[:1]
        )

    def pending(period: Period, field: str):
        return Subquery(
            UsageEvent.objects.filter(
                organization=OuterRef("pk"),
                rolled_up=False,
                created_at__gte=period.starts_at,
                created_at__lt=period.ends_at,
            )
            .values("organization")
            .annotate(s=Sum(field))
            .values("s")
        )

    zero = Value(0)
    storage = Subquery(StorageHeld.objects.filter(organization=OuterRef("pk")).values("bytes")[:1])
    return qs.annotate(
        sandboxes_in_use=Coalesce(
            Subquery(SandboxSlots.objects.filter(organization=OuterRef("pk")).values("in_use")[:1]), zero
        ),
        executions_today=Coalesce(rolled(DAY, day.start, "executions"), zero)
        + Coalesce(pending(day, "executions"), zero),
        cpu_us_month=Coalesce(rolled(MONTH, month.start, "cpu_us"), zero)
        + Coalesce(pending(month, "cpu_us"), zero),
        storage_bytes_now=Coalesce(storage, zero),
    )


def usage_csv_rows(orgs, *, now: datetime | None = None) -> Iterator[list]:
    """Rows for the operators' CSV export: each organisation's current and previous months."""
    yield [
        "organization",
        "plan",
        "period_start",
        "period_end",
        "executions",
        "cpu_ms",
        "sandbox_seconds",
        "storage_bytes",
        "executions_per_day_limit",
        "cpu_seconds_per_month_limit",
        "snapshot_storage_bytes_limit",
        "concurrent_sandboxes_limit",
    ]
    for org in orgs:
        report = usage_report(org, now=now)
        limits = effective_limits(org)
        tail = [
            limits["executions_per_day"],
            limits["cpu_seconds_per_month"],
            limits["snapshot_storage_bytes"],
            limits["concurrent_sandboxes"],
        ]
        periods = [{"period": report["period"], **report["month"]}, *report["history"]]
        for p in periods:
            yield [
                org.slug,
                org.plan.slug,
                p["period"]["start"],
                p["period"]["end"],
                p["executions"],
                p["cpu_ms"],
                p["sandbox_seconds"],
                p["storage_bytes"],
                *tail,
            ]
