import pytest

from accounts.models import APIKey


def test_other_tenants_key_is_404_not_403(api_a, api_b, org_a):
    key = APIKey.objects.get(organization=org_a[0])
    for method in ("get", "delete"):
        r = getattr(api_b, method)(f"/api/v1/keys/{key.pk}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    key.refresh_from_db()
    assert key.revoked_at is None
    assert api_a.get("/api/v1/me").status_code == 200


def test_lists_show_only_own_tenant(api_a, api_b, org_b):
    ids_a = {k["id"] for k in api_a.get("/api/v1/keys").json()["results"]}
    ids_b = {k["id"] for k in api_b.get("/api/v1/keys").json()["results"]}
    assert ids_a and ids_b and ids_a.isdisjoint(ids_b)
    audit_a = api_a.get("/api/v1/audit").json()["results"]
    assert all(e["target_id"] != str(org_b[0].pk) or e["target_type"] != "organization" for e in audit_a)


@pytest.mark.parametrize("method,path,body,status,code", [
    ("get", "/api/v1/no-such-endpoint", None, 404, "not_found"),
    ("get", "/api/v1/keys/not-a-number", None, 404, "not_found"),
    ("put", "/api/v1/me", None, 405, "method_not_allowed"),
    ("post", "/api/v1/keys", "{not json", 400, "invalid_request"),
    ("post", "/api/v1/keys", {"scopes": ["nope"]}, 400, "invalid_request"),
])
def test_error_envelope_on_every_path(api_a, method, path, body, status, code):
    kwargs = {}
    if isinstance(body, str):
        kwargs = {"data": body, "content_type": "application/json"}
    elif body is not None:
        kwargs = {"data": body, "format": "json"}
    r = getattr(api_a, method)(path, **kwargs)
    assert r.status_code == status
    err = r.json()["error"]
    assert err["code"] == code and err["message"]


def test_500_is_an_envelope_too(api_a, monkeypatch):
    from accounts import api

    def boom(self, request):
        raise RuntimeError("boom")

    monkeypatch.setattr(api.MeView, "get", boom)
    r = api_a.get("/api/v1/me")
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    assert "boom" not in r.content.decode()


def test_schema_docs_health_and_metrics(client, db):
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["checks"]["database"] == "ok"
    assert client.get("/metrics").status_code == 401  # operators only: tests/accounts/test_metrics_access.py


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_unsafe_methods_on_unknown_api_paths_are_a_json_404_not_a_csrf_page(db, method):
    from django.test import Client

    response = Client(enforce_csrf_checks=True).generic(method, "/api/v1/no-such-thing", "{}",
                                                         content_type="application/json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
