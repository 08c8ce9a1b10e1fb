"""Cached keys never outlive a change: revocation, plan change and suspension apply on the next request.
Roles × scopes decide each action. The console dashboard shows usage against the limits."""

from accounts import services as account_services
from accounts.models import APIKey
from billing import quotas
from billing.models import Plan
from billing.services import organization_plan_change, organization_suspend
from tests.conftest import client_for


def test_revoked_key_gets_401_key_revoked_on_the_very_next_request(org_a, api_a):
    org, owner, raw = org_a
    assert api_a.get("/api/v1/me").status_code == 200
    key = APIKey.objects.get(prefix=raw.split("_")[1])
    _, other = account_services.apikey_create(org=org, name="ops", created_by=owner)
    assert client_for(other).delete(f"/api/v1/keys/{key.pk}").status_code == 200
    resp = api_a.get("/api/v1/me")
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "key_revoked"


def test_plan_change_applies_to_limits_and_quotas_on_the_next_request(org_a, api_a, admin_user):
    org = org_a[0]
    assert api_a.get("/api/v1/usage").json()["concurrent_sandboxes"]["limit"] == 3
    organization_plan_change(org=org, plan=Plan.objects.get(slug="pro"), operator=admin_user)
    body = api_a.get("/api/v1/usage").json()
    assert body["concurrent_sandboxes"]["limit"] == 50
    assert api_a.get("/api/v1/me").json()["plan"]["slug"] == "pro"


def test_plan_change_applies_to_the_rate_limit_on_the_next_request(org_a, api_a, admin_user, fresh_limiter):
    org = org_a[0]
    codes = [api_a.get("/api/v1/me").status_code for _ in range(100)]
    assert 429 in codes
    organization_plan_change(org=org, plan=Plan.objects.get(slug="enterprise"), operator=admin_user)
    # the bucket keeps the level the old plan left and refills at the new plan's 1000 tokens a second
    assert {api_a.get("/api/v1/me").status_code for _ in range(20)} == {200}


def test_suspension_applies_to_a_cached_key_on_the_next_request(org_a, api_a, admin_user):
    assert api_a.get("/api/v1/me").status_code == 200
    organization_suspend(org=org_a[0], operator=admin_user)
    resp = api_a.get("/api/v1/usage")
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "organization_suspended"


def test_a_member_key_reads_usage_but_not_the_audit_log(member_key):
    member = client_for(member_key)
    assert member.get("/api/v1/usage").status_code == 200
    resp = member.get("/api/v1/audit")
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "permission_denied"


def test_a_key_without_usage_scope_can_still_do_what_its_scopes_allow(org_a):
    org, owner, _ = org_a
    _, raw = account_services.apikey_create(org=org, name="ro", created_by=owner, scopes=["sandboxes:read"])
    narrow = client_for(raw)
    assert narrow.get("/api/v1/sandboxes").status_code == 200
    assert narrow.get("/api/v1/usage").status_code == 403


def test_dashboard_shows_usage_against_limits(client, org_a):
    org, owner, _ = org_a
    quotas.sandbox_slot_reserve(org=org)
    quotas.usage_record(org=org, source="exec:1", executions=1, cpu_ms=4200.25)
    client.force_login(owner)
    page = client.get("/").content.decode()
    assert 'id="usage"' in page
    assert '<tr data-metric="cpu_ms" data-used="4200.25" data-limit="3600000">' in page
    assert "<td>CPU this month</td><td>4.2 CPU-seconds</td><td>1.00 CPU-hours</td>" in page  # human units
    assert '<meter min="0" max="3" high="3" value="1"' in page and "33%" in page
    assert '<figure class="card chart" data-chart="cpu_ms">' in page
