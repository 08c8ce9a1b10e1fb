"""Usage metering: idempotent events, the roll-up into days and months, and GET /api/v1/usage."""

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection, transaction

from accounts import services as account_services
from billing import quotas
from billing.models import UsageEvent, UsagePeriod
from billing.selectors import usage_report
from billing.services import _roll_up_batch, usage_roll_up
from billing.tasks import roll_up_usage
from tests.billing.conftest import requires_postgres
from tests.conftest import client_for

MARCH_31 = datetime(2026, 3, 31, 12, tzinfo=UTC)
METRICS = ("executions", "cpu_ms", "sandbox_seconds", "storage_bytes", "concurrent_sandboxes")


def record(org, source: str, when: datetime, *, cpu_ms: int = 0, seconds: int = 0, runs: int = 0) -> bool:
    return quotas.usage_record(
        org=org, source=source, executions=runs, cpu_ms=cpu_ms, sandbox_seconds=seconds, now=when
    )


def period_row(org, kind: str, start: date) -> dict:
    """A rolled-up row in the API's units."""
    row = UsagePeriod.objects.get(organization=org, kind=kind, start=start)
    return {
        "executions": row.executions,
        "cpu_ms": row.cpu_us / 1000,
        "sandbox_seconds": row.sandbox_ms / 1000,
    }


def test_a_second_report_from_the_same_source_is_ignored(org_a):
    org = org_a[0]
    assert record(org, "exec:1", MARCH_31, cpu_ms=100, runs=1)
    assert not record(org, "exec:1", MARCH_31, cpu_ms=100, runs=1)
    assert UsageEvent.objects.filter(organization=org).count() == 1


def test_fractional_figures_add_up_exactly_not_as_a_sum_of_roundings(org_a):
    org = org_a[0]
    for i in range(200):
        record(org, f"exec:{i}", MARCH_31, cpu_ms=0.4, runs=1)
        record(org, f"lifetime:{i}", MARCH_31, seconds=1.4)
    report = usage_report(org, now=MARCH_31)
    assert report["cpu_ms"]["used"] == 80.0 and report["sandbox_seconds"]["used"] == 280.0
    usage_roll_up(now=MARCH_31)
    assert usage_report(org, now=MARCH_31)["cpu_ms"]["used"] == 80.0


def test_roll_up_folds_each_event_into_its_utc_day_and_month_once(org_a):
    org = org_a[0]
    record(org, "exec:1", datetime(2026, 3, 30, 23, 59, 59, tzinfo=UTC), cpu_ms=100, runs=1)
    record(org, "exec:2", MARCH_31, cpu_ms=250, runs=1)
    record(org, "lifetime:s1", MARCH_31, seconds=40)
    record(org, "exec:3", datetime(2026, 4, 1, tzinfo=UTC), cpu_ms=7, runs=1)
    assert usage_roll_up(now=MARCH_31) == 4
    assert period_row(org, "day", date(2026, 3, 30)) == {"executions": 1, "cpu_ms": 100, "sandbox_seconds": 0}
    assert period_row(org, "day", date(2026, 3, 31)) == {
        "executions": 1,
        "cpu_ms": 250,
        "sandbox_seconds": 40,
    }
    assert period_row(org, "month", date(2026, 3, 1)) == {
        "executions": 2,
        "cpu_ms": 350,
        "sandbox_seconds": 40,
    }
    assert period_row(org, "month", date(2026, 4, 1)) == {"executions": 1, "cpu_ms": 7, "sandbox_seconds": 0}
    assert usage_roll_up(now=MARCH_31) == 0
    assert period_row(org, "month", date(2026, 3, 1))["cpu_ms"] == 350


def test_rolled_up_events_are_deleted_after_ninety_days_pending_ones_never(org_a):
    org = org_a[0]
    record(org, "exec:old", MARCH_31 - timedelta(days=91), cpu_ms=1, runs=1)
    record(org, "exec:recent", MARCH_31 - timedelta(days=89), cpu_ms=1, runs=1)
    usage_roll_up(now=MARCH_31 - timedelta(days=200))
    assert UsageEvent.objects.filter(organization=org).count() == 2
    usage_roll_up(now=MARCH_31)
    assert list(UsageEvent.objects.filter(organization=org).values_list("source", flat=True)) == [
        "exec:recent"
    ]
    assert period_row(org, "month", date(2025, 12, 1))["executions"] == 1


def test_roll_up_task_runs_the_service(org_a):
    record(org_a[0], "exec:t", MARCH_31, cpu_ms=5, runs=1)
    assert roll_up_usage.apply().get() == 1


def test_report_equals_the_reported_figures_before_during_and_after_roll_up(org_a):
    org = org_a[0]
    for i in range(7):
        record(org, f"exec:{i}", MARCH_31, cpu_ms=100 + i, runs=1)
    record(org, "lifetime:a", MARCH_31, seconds=90)
    expected = {"executions": 7, "cpu_ms": 721, "sandbox_seconds": 90}

    def figures():
        report = usage_report(org, now=MARCH_31)
        return {
            "executions": report["executions"]["used"],
            "cpu_ms": report["cpu_ms"]["used"],
            "sandbox_seconds": report["sandbox_seconds"]["used"],
        }

    assert figures() == expected
    _roll_up_batch(3)
    assert UsageEvent.objects.filter(rolled_up=False).count() == 5
    assert figures() == expected
    usage_roll_up(now=MARCH_31)
    assert figures() == expected


def test_report_limits_windows_and_resets(org_a):
    org = org_a[0]
    quotas.sandbox_slot_reserve(org=org)
    quotas.execution_admit(org=org, timeout_s=None, now=MARCH_31)
    report = usage_report(org, now=MARCH_31)
    assert report["period"] == {
        "kind": "month",
        "start": "2026-03-01T00:00:00+00:00",
        "end": "2026-04-01T00:00:00+00:00",
    }
    assert report["executions"] == {
        "used": 0,
        "admitted": 1,
        "limit": 1000,
        "window": "day",
        "resets_at": "2026-04-01T00:00:00+00:00",
    }
    assert report["cpu_ms"]["limit"] == 3600 * 1000 and report["cpu_ms"]["window"] == "month"
    assert report["concurrent_sandboxes"] == {"used": 1, "limit": 3, "window": "now", "resets_at": None}
    assert report["storage_bytes"]["limit"] == 1024**3


def test_history_lists_previous_months_with_events_not_yet_rolled_up(org_a):
    org = org_a[0]
    record(org, "exec:jan", datetime(2026, 1, 15, tzinfo=UTC), cpu_ms=10, runs=1)
    record(org, "exec:feb1", datetime(2026, 2, 1, tzinfo=UTC), cpu_ms=20, runs=1)
    usage_roll_up(now=MARCH_31)
    record(org, "exec:feb2", datetime(2026, 2, 28, 23, 59, tzinfo=UTC), cpu_ms=5, runs=1)
    history = usage_report(org, now=MARCH_31)["history"]
    assert [(h["period"]["start"][:10], h["executions"], h["cpu_ms"]) for h in history] == [
        ("2026-02-01", 2, 25),
        ("2026-01-01", 1, 10),
    ]
    usage_roll_up(now=MARCH_31)
    assert usage_report(org, now=MARCH_31)["history"] == history


def test_daily_history_lists_previous_days(org_a):
    org = org_a[0]
    record(org, "exec:a", MARCH_31 - timedelta(days=1), cpu_ms=3, runs=1)
    record(org, "exec:b", MARCH_31, cpu_ms=4, runs=1)
    history = usage_report(org, now=MARCH_31, history="day", history_count=31)["history"]
    assert [(h["period"]["start"][:10], h["cpu_ms"]) for h in history] == [("2026-03-30", 3)]


def hold(org, held_bytes: int) -> None:
    with transaction.atomic():
        quotas.storage_lock(org=org)
        quotas.storage_hold(org=org, held_bytes=held_bytes)


def test_storage_is_what_is_held_and_roll_up_keeps_the_period_peak(org_a):
    org = org_a[0]
    hold(org, 6000)
    usage_roll_up(now=MARCH_31)
    hold(org, 1000)  # a snapshot was deleted
    usage_roll_up(now=MARCH_31)
    assert usage_report(org, now=MARCH_31)["storage_bytes"]["used"] == 1000
    assert (
        UsagePeriod.objects.get(organization=org, kind="month", start=date(2026, 3, 1)).storage_bytes == 6000
    )


# the endpoint


def test_usage_endpoint_reports_every_metric_with_used_and_limit(org_a, api_a):
    quotas.usage_record(org=org_a[0], source="exec:x", executions=1, cpu_ms=1234)
    resp = api_a.get("/api/v1/usage")
    assert resp.status_code == 200
    body = resp.json()
    assert {"period", "history", *METRICS} <= set(body)
    for name in METRICS:
        assert {"used", "limit"} <= set(body[name])
    assert body["cpu_ms"]["used"] == 1234 and body["executions"]["used"] == 1


def test_usage_endpoint_needs_the_usage_read_scope(org_a):
    org, owner, _ = org_a
    _, narrow = account_services.apikey_create(
        org=org, name="narrow", created_by=owner, scopes=["sandboxes:read"]
    )
    resp = client_for(narrow).get("/api/v1/usage")
    assert resp.status_code == 403
    assert resp.json()["error"]["details"] == {"required_scope": "usage:read"}


def test_usage_endpoint_shows_only_the_callers_organisation(org_a, org_b, api_b):
    quotas.usage_record(org=org_a[0], source="exec:a-only", executions=1, cpu_ms=999)
    body = api_b.get("/api/v1/usage").json()
    assert body["cpu_ms"]["used"] == 0 and body["executions"]["used"] == 0


def test_usage_endpoint_history_granularity(api_a):
    assert api_a.get("/api/v1/usage?history=day").status_code == 200
    resp = api_a.get("/api/v1/usage?history=week")
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_request"


def test_usage_endpoint_without_a_key_is_401(client):
    resp = client.get("/api/v1/usage")
    assert resp.status_code == 401


# concurrency


@requires_postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_roll_ups_and_reports_count_every_event_exactly_once(tenant):
    org = tenant("meter")[0]
    now = datetime.now(UTC)
    barrier = threading.Barrier(6)
    seen_by_roller: list[list[int]] = [[], [], []]

    def reporter(offset: int):
        try:
            barrier.wait()
            for i in range(100):
                quotas.usage_record(org=org, source=f"exec:{offset}:{i}", executions=1, cpu_ms=3)
        finally:
            connection.close()

    def roller(seen: list[int]):
        try:
            barrier.wait()
            for _ in range(20):
                _roll_up_batch(25)
                seen.append(usage_report(org)["cpu_ms"]["used"])
        finally:
            connection.close()

    threads = [threading.Thread(target=reporter, args=(n,)) for n in range(3)]
    threads += [threading.Thread(target=roller, args=(seen,)) for seen in seen_by_roller]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    usage_roll_up(now=now)
    assert UsageEvent.objects.filter(organization=org, rolled_up=False).count() == 0
    month = UsagePeriod.objects.get(organization=org, kind="month", start=now.date().replace(day=1))
    assert (month.executions, month.cpu_us) == (300, 900_000)
    for seen in seen_by_roller:
        assert seen == sorted(seen) and seen[-1] <= 900, "a report mid-roll-up lost or double-counted events"
    assert usage_report(org)["cpu_ms"]["used"] == 900
