"""Operators' admin: plan changes, suspension, overrides beside effective limits, usage columns, CSV, audit."""

import csv
import io

import pytest
from django.contrib import admin
from django.test import RequestFactory

from accounts.admin import OrganizationAdmin
from accounts.models import AuditEvent, Organization
from billing import quotas
from billing.models import Plan, SandboxSlots
from mem0web.errors import Mem0Error
from sandboxes import dispatch
from sandboxes.models import Sandbox

CHANGELIST = "/admin/accounts/organization/"


@pytest.fixture
def agents_gone(monkeypatch):
    """The agents do not answer: kills are still recorded here (sandbox_kill tolerates that)."""

    def unreachable(*args, **kwargs):
        raise Mem0Error("agent gone", code="agents_unavailable", status=503)

    monkeypatch.setattr(dispatch, "call", unreachable)


def act(admin_client, action: str, orgs, **extra):
    return admin_client.post(
        CHANGELIST, {"action": action, "_selected_action": [o.pk for o in orgs], "index": 0, **extra}
    )


def last_audit(org, action: str) -> AuditEvent:
    return AuditEvent.objects.for_org(org).filter(action=action).latest("id")


def test_change_plan_action_moves_the_org_audits_it_and_applies_on_the_next_request(
    admin_client, org_a, api_a
):
    org = org_a[0]
    assert api_a.get("/api/v1/me").json()["limits"]["concurrent_sandboxes"] == 3
    pro = Plan.objects.get(slug="pro")
    resp = act(admin_client, "change_plan", [org], plan=pro.pk)
    assert resp.status_code == 302
    org.refresh_from_db()
    assert org.plan == pro
    event = last_audit(org, "organization.plan_change")
    assert event.actor_label == "operator:admin" and event.metadata == {"from": "free", "to": "pro"}
    assert event.actor_user.username == "admin"
    assert api_a.get("/api/v1/me").json()["limits"]["concurrent_sandboxes"] == 50


def test_change_plan_without_a_plan_changes_nothing(admin_client, org_a):
    act(admin_client, "change_plan", [org_a[0]])
    org_a[0].refresh_from_db()
    assert org_a[0].plan.slug == "free"
    assert not AuditEvent.objects.filter(action="organization.plan_change").exists()


def test_suspend_stops_running_sandboxes_and_the_keys_get_403_at_once(
    admin_client, org_a, org_b, api_a, agents_gone
):
    org = org_a[0]
    assert api_a.get("/api/v1/me").status_code == 200
    live = []
    for _ in range(2):
        quotas.sandbox_slot_reserve(org=org)
        live.append(
            Sandbox.objects.create(
                organization=org, runtime="python", agent_id="a0", state=Sandbox.State.RUNNING
            )
        )
    other = Sandbox.objects.create(
        organization=org_b[0], runtime="python", agent_id="a0", state=Sandbox.State.RUNNING
    )
    act(admin_client, "suspend", [org], reason="abuse report 42")
    org.refresh_from_db()
    assert org.suspended
    assert {s.state for s in Sandbox.objects.filter(pk__in=[s.pk for s in live])} == {"stopped"}
    assert set(Sandbox.objects.filter(pk__in=[s.pk for s in live]).values_list("stop_reason", flat=True)) == {
        "organization_suspended"
    }
    assert Sandbox.objects.get(pk=other.pk).state == "running"
    assert SandboxSlots.objects.get(organization=org).in_use == 0
    event = last_audit(org, "organization.suspend")
    assert event.actor_label == "operator:admin"
    assert event.metadata["reason"] == "abuse report 42"
    assert sorted(event.metadata["stopped_sandboxes"]) == sorted(s.pk for s in live)
    resp = api_a.get("/api/v1/me")
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "organization_suspended"


def test_unsuspend_lets_the_keys_back_in(admin_client, org_a, api_a):
    org = org_a[0]
    act(admin_client, "suspend", [org])
    assert api_a.get("/api/v1/me").status_code == 403
    act(admin_client, "unsuspend", [org])
    assert api_a.get("/api/v1/me").status_code == 200
    assert last_audit(org, "organization.unsuspend").actor_label == "operator:admin"


def test_plan_and_suspension_edited_in_the_change_form_go_through_the_services(org_a, admin_user, api_a):
    org = org_a[0]
    api_a.get("/api/v1/me")
    request = RequestFactory().post("/admin/")
    request.user = admin_user
    edited = Organization.objects.get(pk=org.pk)
    edited.plan, edited.suspended = Plan.objects.get(slug="enterprise"), True
    OrganizationAdmin(Organization, admin.site).save_model(request, edited, form=None, change=True)
    assert last_audit(org, "organization.plan_change").metadata == {"from": "free", "to": "enterprise"}
    assert last_audit(org, "organization.suspend").actor_label == "operator:admin"
    assert api_a.get("/api/v1/me").json()["error"]["code"] == "organization_suspended"


def _change_form(org, **override) -> dict:
    data = {
        "name": org.name,
        "slug": org.slug,
        "plan": org.plan_id,
        "created_at_0": "2026-01-01",
        "created_at_1": "00:00:00",
        "memberships-TOTAL_FORMS": 0,
        "memberships-INITIAL_FORMS": 0,
        "plan_override-TOTAL_FORMS": 1,
        "plan_override-INITIAL_FORMS": 0,
        "plan_override-0-organization": org.pk,
    }
    data.update({f"plan_override-0-{k}": v for k, v in override.items()})
    return data


def test_override_edit_is_audited_and_shown_beside_the_plan_value(admin_client, org_a, api_a):
    org = org_a[0]
    api_a.get("/api/v1/me")
    resp = admin_client.post(f"{CHANGELIST}{org.pk}/change/", _change_form(org, concurrent_sandboxes=7))
    assert resp.status_code == 302, resp.content[:2000]
    event = last_audit(org, "quota.override_change")
    assert event.actor_label == "operator:admin"
    assert event.metadata == {"changes": {"concurrent_sandboxes": [None, 7]}}
    assert api_a.get("/api/v1/me").json()["limits"]["concurrent_sandboxes"] == 7
    page = admin_client.get(f"{CHANGELIST}{org.pk}/change/").content.decode()
    assert "<tr><td>concurrent_sandboxes</td><td>3</td><td>7</td><td><strong>7</strong></td></tr>" in page
    assert "<tr><td>executions_per_day</td><td>1000</td><td>—</td><td><strong>1000</strong></td></tr>" in page


def test_changelist_shows_usage_columns(admin_client, org_a):
    org = org_a[0]
    quotas.sandbox_slot_reserve(org=org)
    quotas.usage_record(org=org, source="exec:1", executions=1, cpu_ms=2500)
    page = admin_client.get(CHANGELIST).content.decode()
    for header in ("Sandboxes", "Runs today", "CPU s this month", "Snapshot bytes"):
        assert header in page
    assert '<td class="field-cpu_seconds_month">2.5</td>' in page
    assert '<td class="field-executions_today">1</td>' in page


def test_usage_csv_export_has_a_row_per_org_and_month(admin_client, org_a, org_b):
    quotas.usage_record(org=org_a[0], source="exec:1", executions=1, cpu_ms=2500)
    resp = act(admin_client, "export_usage_csv", [org_a[0], org_b[0]])
    assert resp["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(resp.content.decode())))
    assert [r["organization"] for r in rows] == ["org-a", "org-b"]
    assert float(rows[0]["cpu_ms"]) == 2500 and rows[0]["executions"] == "1" and rows[0]["plan"] == "free"
    assert float(rows[1]["cpu_ms"]) == 0


def test_plan_edit_is_audited_and_reaches_cached_keys(admin_client, org_a, api_a):
    api_a.get("/api/v1/me")
    free = Plan.objects.get(slug="free")
    data = {
        f: getattr(free, f)
        for f in (
            "slug",
            "name",
            "concurrent_sandboxes",
            "executions_per_day",
            "cpu_seconds_per_month",
            "memory_per_sandbox_mb",
            "max_run_seconds",
            "snapshot_storage_bytes",
            "requests_per_minute",
            "request_burst",
            "idle_timeout_seconds",
            "max_lifetime_seconds",
        )
    }
    data["executions_per_day"] = 1234
    resp = admin_client.post(f"/admin/billing/plan/{free.pk}/change/", data)
    assert resp.status_code == 302
    event = AuditEvent.objects.filter(action="plan.change").latest("id")
    assert event.actor_label == "operator:admin" and event.target_id == "free"
    assert event.metadata == {"changes": {"executions_per_day": [1000, 1234]}}
    assert api_a.get("/api/v1/me").json()["limits"]["executions_per_day"] == 1234


def test_usage_history_is_read_only_in_admin(admin_client):
    assert admin_client.get("/admin/billing/usageperiod/").status_code == 200
    assert admin_client.get("/admin/billing/usageperiod/add/").status_code == 403


def test_organisation_created_in_admin_is_audited(admin_client):
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 200
    free = Plan.objects.get(slug="free")
    data = {
        "name": "Made by ops",
        "slug": "made-by-ops",
        "plan": free.pk,
        "created_at_0": "2026-01-01",
        "created_at_1": "00:00:00",
        "memberships-TOTAL_FORMS": 0,
        "memberships-INITIAL_FORMS": 0,
        "plan_override-TOTAL_FORMS": 0,
        "plan_override-INITIAL_FORMS": 0,
    }
    assert admin_client.post(f"{CHANGELIST}add/", data).status_code == 302
    org = Organization.objects.get(slug="made-by-ops")
    event = last_audit(org, "organization.create")
    assert event.actor_label == "operator:admin" and event.metadata == {"plan": "free", "suspended": False}
