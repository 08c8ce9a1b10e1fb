"""/metrics is for operators: the metrics token or a staff session; tenants and the public get 401 (finding 18)."""

import pytest


@pytest.fixture
def token(settings):
    settings.MEM0_METRICS_TOKEN = "scrape-token-0123456789"
    return settings.MEM0_METRICS_TOKEN


def test_the_public_and_tenants_get_401(client, api_a, token):
    for r in (
        client.get("/metrics"),
        api_a.get("/metrics"),
        client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope"),
        client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {token}"),
    ):
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "authentication_failed"
        assert b"django_http" not in r.content


def test_the_metrics_token_gets_the_metrics(client, token):
    r = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert r.status_code == 200 and b"django_http" in r.content


def test_without_a_token_configured_no_bearer_value_opens_it(client, settings):
    settings.MEM0_METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer").status_code == 401


def test_staff_sessions_get_the_metrics_and_other_users_do_not(client, django_user_model, org_a):
    client.force_login(org_a[1])  # an organisation owner is not an operator
    assert client.get("/metrics").status_code == 401
    client.force_login(django_user_model.objects.create_user("operator", password="x" * 12, is_staff=True))
    r = client.get("/metrics")
    assert r.status_code == 200 and b"django_http" in r.content
