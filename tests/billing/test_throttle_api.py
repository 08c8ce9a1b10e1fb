"""The request-rate limit as clients meet it: 429 rate_limited with Retry-After, per key and organisation."""

import threading

import pytest
from django.db import connection
from django.test import override_settings

from accounts import services
from tests.billing.conftest import requires_postgres
from tests.billing.test_ratelimit import CLOSED_PORT_URL, metric
from tests.conftest import client_for

pytestmark = pytest.mark.usefixtures("fresh_limiter")


def statuses(client, n: int, path: str = "/api/v1/me") -> list[int]:
    return [client.get(path).status_code for _ in range(n)]


def test_burst_is_admitted_then_429_rate_limited_with_retry_after(org_a, api_a, override):
    override(org_a[0], request_burst=5, requests_per_minute=60)
    assert statuses(api_a, 5) == [200] * 5
    resp = api_a.get("/api/v1/me")
    assert resp.status_code == 429
    assert resp["Retry-After"] == "1"
    error = resp.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["details"]["limit_name"] == "requests_per_minute"
    assert error["details"]["limit"] == 60 and error["details"]["burst"] == 5
    assert 0 < error["details"]["retry_after_s"] <= 1


def test_free_plan_meets_429_just_after_its_burst_of_sixty(api_a):
    codes = statuses(api_a, 100)
    assert 60 <= codes.index(429) <= 75, "burst 60, plus 5 tokens a second refilled while the loop ran"


def test_every_key_of_an_organisation_draws_on_one_organisation_bucket(org_a, api_a, override):
    org, owner, _ = org_a
    override(org, request_burst=4, requests_per_minute=1)
    _, second = services.apikey_create(org=org, name="second", created_by=owner)
    api_2 = client_for(second)
    assert statuses(api_a, 2) + statuses(api_2, 2) == [200] * 4
    resp = api_2.get("/api/v1/me")
    assert resp.status_code == 429 and resp.json()["error"]["details"]["scope"] == "organization"
    assert api_a.get("/api/v1/me").status_code == 429


def test_one_tenant_at_its_rate_limit_does_not_slow_another(org_a, api_a, api_b, override):
    override(org_a[0], request_burst=2, requests_per_minute=1)
    assert statuses(api_a, 3) == [200, 200, 429]
    assert statuses(api_b, 3) == [200, 200, 200]


def test_failed_authentication_is_401_and_costs_no_token(org_a, api_a, override):
    override(org_a[0], request_burst=2, requests_per_minute=1)
    stranger = client_for("mem0_aaaaaaaaaaaa_" + "b" * 40)
    assert statuses(stranger, 5) == [401] * 5
    assert statuses(api_a, 2) == [200, 200]


def test_an_override_of_the_rate_applies_to_the_next_request(org_a, api_a, override):
    override(org_a[0], request_burst=1, requests_per_minute=1)
    assert statuses(api_a, 2) == [200, 429]
    override(org_a[0], request_burst=1, requests_per_minute=60_000)
    assert api_a.get("/api/v1/me").status_code == 200


@requires_postgres  # SQLite's shared in-memory test database locks whole tables under concurrent writers
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_sixteen_concurrent_clients_get_exactly_the_burst(tenant, override):
    org, _, key = tenant("crowd")
    override(org, request_burst=20, requests_per_minute=1)
    barrier, codes, lock = threading.Barrier(16), [], threading.Lock()

    def client():
        api = client_for(key)
        try:
            barrier.wait()
            mine = [(r.status_code, r.get("Retry-After")) for r in (api.get("/api/v1/me") for _ in range(5))]
            with lock:
                codes.extend(mine)
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(codes) == 80
    assert sum(1 for status, _ in codes if status == 200) == 20
    assert all(status == 429 and int(retry) >= 1 for status, retry in codes if status != 200)


def test_with_redis_unreachable_the_api_still_limits_per_process_and_says_so(
    org_a, api_a, override, client, settings
):
    override(org_a[0], request_burst=3, requests_per_minute=1)
    settings.MEM0_METRICS_TOKEN = "operator-token"  # /metrics is for operators
    with override_settings(REDIS_URL=CLOSED_PORT_URL):
        assert statuses(api_a, 4) == [200, 200, 200, 429]
        assert metric("mem0_ratelimit_degraded") == 1
        body = client.get("/metrics", HTTP_AUTHORIZATION="Bearer operator-token").content.decode()
    assert "mem0_ratelimit_degraded 1.0" in body
    assert "mem0_ratelimit_redis_errors_total" in body
