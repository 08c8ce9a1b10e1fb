"""Every plan limit is enforced before work is dispatched, with `quota_exceeded` and its details."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction

from billing import quotas
from billing.models import SandboxSlots, UsagePeriod
from billing.quotas import QuotaExceeded
from billing.selectors import storage_bytes_used
from sandboxes.models import Sandbox
from sandboxes.services import sandbox_limits
from tests.billing.conftest import requires_postgres

NOW = datetime(2026, 3, 31, 23, 59, 30, tzinfo=UTC)
MiB = 1024 * 1024


def refused(call, **kwargs) -> dict:
    with pytest.raises(QuotaExceeded) as info:
        call(**kwargs)
    assert info.value.code == "quota_exceeded" and info.value.status == 429
    assert set(info.value.details) == {"limit_name", "used", "limit", "resets_at"}
    return info.value.details


def running_sandbox(org) -> Sandbox:
    return Sandbox.objects.create(
        organization=org, runtime="python", agent_id="nowhere", state=Sandbox.State.RUNNING
    )


# concurrent sandboxes


def test_free_plan_allows_three_sandboxes_and_refuses_the_fourth(org_a):
    org = org_a[0]
    for _ in range(3):
        quotas.sandbox_slot_reserve(org=org)
    details = refused(quotas.sandbox_slot_reserve, org=org)
    assert details == {"limit_name": "concurrent_sandboxes", "used": 3, "limit": 3, "resets_at": None}


def test_released_slot_can_be_taken_again_and_release_never_goes_negative(org_a):
    org = org_a[0]
    for _ in range(3):
        quotas.sandbox_slot_reserve(org=org)
    quotas.sandbox_slot_release(org=org)
    quotas.sandbox_slot_reserve(org=org)
    for _ in range(5):
        quotas.sandbox_slot_release(org=org)
    assert SandboxSlots.objects.get(organization=org).in_use == 0


def test_operator_override_raises_the_concurrency_limit(org_a, override):
    org = org_a[0]
    override(org, concurrent_sandboxes=5)
    for _ in range(5):
        quotas.sandbox_slot_reserve(org=org)
    assert refused(quotas.sandbox_slot_reserve, org=org)["limit"] == 5


def _race(n: int, fn) -> list:
    """Run fn in n threads released together; each thread uses (and closes) its own connection."""
    barrier, results, lock = threading.Barrier(n), [], threading.Lock()

    def worker():
        try:
            barrier.wait()
            try:
                fn()
                outcome = "ok"
            except QuotaExceeded as exc:
                outcome = exc.details["limit_name"]
            with lock:
                results.append(outcome)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


@requires_postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_forty_concurrent_reserves_at_the_limit_never_overshoot(tenant, override):
    org = tenant("race")[0]
    override(org, concurrent_sandboxes=5)
    results = _race(40, lambda: quotas.sandbox_slot_reserve(org=org))
    assert len(results) == 40
    assert results.count("ok") == 5
    assert set(results) == {"ok", "concurrent_sandboxes"}
    assert SandboxSlots.objects.get(organization=org).in_use == 5


@requires_postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_organisations_concurrent_first_sandboxes_all_get_a_slot(tenant, override):
    """The slot row is made by the first sandbox; those racing it must retry, not be refused."""
    org = tenant("race0")[0]
    override(org, concurrent_sandboxes=50)
    SandboxSlots.objects.filter(organization=org).delete()
    results = _race(20, lambda: quotas.sandbox_slot_reserve(org=org))
    assert results == ["ok"] * 20
    assert SandboxSlots.objects.get(organization=org).in_use == 20


@requires_postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_reserves_one_below_the_limit_admit_exactly_one(tenant):
    org = tenant("race1")[0]
    quotas.sandbox_slot_reserve(org=org)
    quotas.sandbox_slot_reserve(org=org)
    results = _race(30, lambda: quotas.sandbox_slot_reserve(org=org))
    assert results.count("ok") == 1
    assert SandboxSlots.objects.get(organization=org).in_use == 3


@requires_postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_runs_at_the_daily_limit_never_overshoot(tenant, override):
    org = tenant("race2")[0]
    override(org, executions_per_day=7)
    results = _race(40, lambda: quotas.execution_admit(org=org, timeout_s=None, now=NOW))
    assert results.count("ok") == 7
    assert UsagePeriod.objects.get(organization=org, kind="day", start=NOW.date()).executions_admitted == 7


# executions per day, max run time, CPU per month


def test_run_timeout_over_max_run_seconds_is_refused_without_counting(org_a):
    org = org_a[0]
    details = refused(quotas.execution_admit, org=org, timeout_s=31, now=NOW)
    assert details == {"limit_name": "max_run_seconds", "used": 31, "limit": 30, "resets_at": None}
    assert not UsagePeriod.objects.filter(organization=org).exists()


def test_admitted_run_gets_its_timeout_or_the_default_capped_by_the_plan(org_a, override):
    org = org_a[0]
    assert quotas.execution_admit(org=org, timeout_s=12.5, now=NOW) == 12.5
    assert quotas.execution_admit(org=org, timeout_s=None, now=NOW) == 30.0
    override(org, max_run_seconds=10)
    assert quotas.execution_admit(org=org, timeout_s=None, now=NOW) == 10.0


def test_daily_executions_limit_resets_at_the_next_utc_midnight(org_a, override):
    org = org_a[0]
    override(org, executions_per_day=2)
    quotas.execution_admit(org=org, timeout_s=None, now=NOW)
    quotas.execution_admit(org=org, timeout_s=None, now=NOW)
    details = refused(quotas.execution_admit, org=org, timeout_s=None, now=NOW)
    assert details == {
        "limit_name": "executions_per_day",
        "used": 2,
        "limit": 2,
        "resets_at": "2026-04-01T00:00:00+00:00",
    }
    quotas.execution_admit(org=org, timeout_s=None, now=NOW + timedelta(seconds=31))


def test_lowering_the_daily_limit_below_todays_runs_reports_the_runs_taken(org_a, override):
    org = org_a[0]
    for _ in range(3):
        quotas.execution_admit(org=org, timeout_s=None, now=NOW)
    override(org, executions_per_day=1)
    details = refused(quotas.execution_admit, org=org, timeout_s=None, now=NOW)
    assert (details["used"], details["limit"]) == (3, 1)


def test_monthly_cpu_limit_counts_pending_and_rolled_usage_and_resets_next_month(org_a, override):
    from billing.services import usage_roll_up

    org = org_a[0]
    override(org, cpu_seconds_per_month=10)
    quotas.usage_record(org=org, source="exec:a", executions=1, cpu_ms=6000, now=NOW)
    quotas.execution_admit(org=org, timeout_s=None, now=NOW)
    quotas.usage_record(org=org, source="exec:b", executions=1, cpu_ms=4000, now=NOW)
    details = refused(quotas.execution_admit, org=org, timeout_s=None, now=NOW)
    assert details == {
        "limit_name": "cpu_seconds_per_month",
        "used": 10,
        "limit": 10,
        "resets_at": "2026-04-01T00:00:00+00:00",
    }
    usage_roll_up(now=NOW)
    assert refused(quotas.execution_admit, org=org, timeout_s=None, now=NOW)["used"] == 10
    quotas.execution_admit(org=org, timeout_s=None, now=datetime(2026, 4, 1, tzinfo=UTC))


def test_cpu_used_last_month_does_not_count_this_month(org_a, override):
    org = org_a[0]
    override(org, cpu_seconds_per_month=1)
    quotas.usage_record(org=org, source="exec:old", cpu_ms=5000, now=datetime(2026, 2, 28, 12, tzinfo=UTC))
    assert quotas.cpu_ms_used(org, NOW) == 0
    quotas.execution_admit(org=org, timeout_s=None, now=NOW)


def test_one_tenant_at_its_limit_does_not_limit_another(org_a, org_b, override):
    override(org_a[0], executions_per_day=0)
    refused(quotas.execution_admit, org=org_a[0], timeout_s=None, now=NOW)
    quotas.execution_admit(org=org_b[0], timeout_s=None, now=NOW)


# memory per sandbox (engine limits come from the plan)


def test_sandbox_memory_and_run_time_come_from_the_effective_plan(org_a, tenant, override):
    free, pro = org_a[0], tenant("pro-co", plan="pro")[0]
    assert sandbox_limits(free)["memory_bytes"] == 256 * MiB
    assert sandbox_limits(free)["run_timeout_s"] == 30.0
    assert sandbox_limits(pro)["memory_bytes"] == 2048 * MiB
    override(free, memory_per_sandbox_mb=512, max_run_seconds=90)
    assert sandbox_limits(free)["memory_bytes"] == 512 * MiB
    assert sandbox_limits(free)["run_timeout_s"] == 90.0


# snapshot storage


def hold(org, held_bytes: int) -> None:
    with transaction.atomic():
        quotas.storage_lock(org=org)
        quotas.storage_hold(org=org, held_bytes=held_bytes)


def test_storage_admit_checks_what_the_organisation_holds(org_a, override):
    org = org_a[0]
    override(org, snapshot_storage_bytes=1000)
    hold(org, 600)
    quotas.storage_admit(org=org, additional_bytes=300)
    quotas.storage_admit(org=org)
    details = refused(quotas.storage_admit, org=org, additional_bytes=500)
    assert details == {"limit_name": "snapshot_storage_bytes", "used": 600, "limit": 1000, "resets_at": None}


def test_storage_admit_refuses_a_tenant_already_at_its_limit(org_a, org_b, override):
    override(org_a[0], snapshot_storage_bytes=1000)
    hold(org_a[0], 1000)
    assert refused(quotas.storage_admit, org=org_a[0])["used"] == 1000
    quotas.storage_admit(org=org_b[0])


def test_storage_hold_refuses_a_total_over_the_plan_and_records_nothing(org_a, override):
    org = org_a[0]
    override(org, snapshot_storage_bytes=1000)
    hold(org, 600)
    with transaction.atomic():
        quotas.storage_lock(org=org)
        assert refused(quotas.storage_hold, org=org, held_bytes=1001, admit=True)["used"] == 1001
        quotas.storage_hold(org=org, held_bytes=1000, admit=True)
    assert storage_bytes_used(org) == 1000
    hold(org, 5000)  # a recount after a delete (no admission) records whatever is held, even over the limit
    assert storage_bytes_used(org) == 5000


# through the API (refused before anything is dispatched to an agent)


def test_run_over_the_daily_limit_answers_429_quota_exceeded(org_a, api_a, override):
    org = org_a[0]
    override(org, executions_per_day=0)
    sandbox = running_sandbox(org)
    resp = api_a.post(f"/api/v1/sandboxes/{sandbox.pk}/executions", {"code": "print(1)"}, format="json")
    assert resp.status_code == 429
    error = resp.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert error["details"]["limit_name"] == "executions_per_day"
    assert error["details"]["limit"] == 0
    assert error["details"]["resets_at"].endswith("T00:00:00+00:00")
    assert "Retry-After" not in resp


def test_run_timeout_over_the_plan_answers_429_with_max_run_seconds(org_a, api_a):
    sandbox = running_sandbox(org_a[0])
    resp = api_a.post(
        f"/api/v1/sandboxes/{sandbox.pk}/executions", {"code": "1", "timeout_s": 600}, format="json"
    )
    assert resp.status_code == 429
    assert resp.json()["error"]["details"] == {
        "limit_name": "max_run_seconds",
        "used": 600.0,
        "limit": 30,
        "resets_at": None,
    }


def test_snapshot_with_full_storage_answers_429_quota_exceeded(org_a, api_a, override):
    org = org_a[0]
    override(org, snapshot_storage_bytes=10)
    hold(org, 10)
    sandbox = running_sandbox(org)
    resp = api_a.post(f"/api/v1/sandboxes/{sandbox.pk}/snapshots", {}, format="json")
    assert resp.status_code == 429
    assert resp.json()["error"]["details"]["limit_name"] == "snapshot_storage_bytes"
