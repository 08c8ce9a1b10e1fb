import pytest

from sandboxes.models import Execution, Sandbox, Snapshot


def _counts():
    return Sandbox.objects.count(), Execution.objects.count(), Snapshot.objects.count()


def test_other_tenant_gets_404_on_every_endpoint(api_pa, api_pb, sandbox):
    sid = sandbox["id"]
    ex = api_pa.post(f"/api/v1/sandboxes/{sid}/executions", {"code": "print('secret-a')"}, format="json").json()
    api_pa.put(f"/api/v1/sandboxes/{sid}/files/s.txt", b"secret", content_type="application/octet-stream")
    before = _counts()
    calls = [
        ("get", f"/api/v1/sandboxes/{sid}", None),
        ("delete", f"/api/v1/sandboxes/{sid}", None),
        ("post", f"/api/v1/sandboxes/{sid}/executions", {"code": "print(1)"}),
        ("post", f"/api/v1/sandboxes/{sid}/fork", None),
        ("get", f"/api/v1/sandboxes/{sid}/files?path=", None),
        ("get", f"/api/v1/sandboxes/{sid}/files/s.txt", None),
        ("put", f"/api/v1/sandboxes/{sid}/files/s.txt", None),
        ("delete", f"/api/v1/sandboxes/{sid}/files/s.txt", None),
        ("get", f"/api/v1/executions/{ex['id']}", None),
        ("get", f"/api/v1/executions/{ex['id']}/events", None),
        ("post", f"/api/v1/sandboxes/{sid}/snapshots", {}),
    ]
    for method, path, body in calls:
        r = getattr(api_pb, method)(path, body, format="json") if body is not None else getattr(api_pb, method)(path)
        assert r.status_code == 404, (method, path, r.status_code)
        assert r.json()["error"]["code"] == "not_found"
        assert b"secret" not in r.content
    assert _counts() == before
    assert api_pa.get(f"/api/v1/sandboxes/{sid}").json()["state"] == "running"
    assert api_pa.get(f"/api/v1/sandboxes/{sid}/files/s.txt").content == b"secret"
    assert api_pb.get("/api/v1/sandboxes").json()["results"] == []


@pytest.mark.parametrize("body,status,code", [
    ({"runtime": "cobol"}, 400, "unknown_runtime"),
    ({}, 400, "invalid_request"),
    ({"runtime": "python", "env": {"1BAD": "x"}}, 400, "invalid_request"),
    ({"runtime": "python", "env": "notadict"}, 400, "invalid_request"),
    ({"runtime": "python", "metadata": {"k": 5}}, 400, "invalid_request"),
])
def test_bad_create_input_gets_its_code_and_creates_nothing(api_pa, engine, body, status, code):
    before = _counts()
    r = api_pa.post("/api/v1/sandboxes", body, format="json")
    assert r.status_code == status and r.json()["error"]["code"] == code
    assert _counts() == before


def test_malformed_json_and_oversized_code(api_pa, sandbox, settings):
    before = _counts()
    r = api_pa.post(f"/api/v1/sandboxes/{sandbox['id']}/executions", "{nope", content_type="application/json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    big = "x = 1\n" * (settings.MEM0_MAX_CODE_BYTES // 6 + 10)
    r = api_pa.post(f"/api/v1/sandboxes/{sandbox['id']}/executions", {"code": big}, format="json")
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert _counts() == before


def test_oversized_file_is_refused(api_pa, sandbox, settings):
    settings.MEM0_MAX_FILE_BYTES = 1000
    r = api_pa.put(f"/api/v1/sandboxes/{sandbox['id']}/files/big.bin", b"x" * 1001,
                   content_type="application/octet-stream")
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert api_pa.get(f"/api/v1/sandboxes/{sandbox['id']}/files/big.bin").status_code == 404


def test_reading_a_file_larger_than_the_web_cap_is_413(api_pa, sandbox, settings):
    settings.MEM0_MAX_FILE_BYTES = 1000
    url = f"/api/v1/sandboxes/{sandbox['id']}/executions"
    assert api_pa.post(url, {"code": "open('/workspace/f', 'wb').write(b'x' * 1001)"},
                       format="json").json()["status"] == "succeeded"
    r = api_pa.get(f"/api/v1/sandboxes/{sandbox['id']}/files/f")
    assert r.status_code == 413, r.content
    assert r.json()["error"] == {"code": "payload_too_large", "message": "Files may be at most 1000 bytes.",
                                 "details": {"limit": 1000}}
    api_pa.post(url, {"code": "import os; os.truncate('/workspace/f', 1000)"}, format="json")
    assert api_pa.get(f"/api/v1/sandboxes/{sandbox['id']}/files/f").content == b"x" * 1000


def test_unknown_ids_are_404(api_pa, engine):
    for path in ("/api/v1/sandboxes/sbx_nope", "/api/v1/executions/exe_nope", "/api/v1/snapshots/snp_nope"):
        r = api_pa.get(path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_no_agents_is_503_at_once(api_pa, settings, engine):
    from sandboxes import dispatch

    settings.MEM0_BUS_PREFIX = "mem0test-empty"
    dispatch.reset()
    before = _counts()
    r = api_pa.post("/api/v1/sandboxes", {"runtime": "python"}, format="json")
    assert r.status_code == 503 and r.json()["error"]["code"] == "agents_unavailable"
    assert _counts() == before


def test_concurrent_sandbox_limit_on_free(tenant, engine):
    from tests.conftest import client_for

    _, _, key = tenant("free-limit", plan="free")
    api = client_for(key)
    made = []
    for _ in range(3):
        r = api.post("/api/v1/sandboxes", {"runtime": "python"}, format="json")
        assert r.status_code == 201
        made.append(r.json()["id"])
    r = api.post("/api/v1/sandboxes", {"runtime": "python"}, format="json")
    assert r.status_code == 429 and r.json()["error"]["code"] == "quota_exceeded"
    assert r.json()["error"]["details"]["limit"] == 3
    api.delete(f"/api/v1/sandboxes/{made[0]}")
    r = api.post("/api/v1/sandboxes", {"runtime": "python"}, format="json")
    assert r.status_code == 201
    for sid in made[1:] + [r.json()["id"]]:
        api.delete(f"/api/v1/sandboxes/{sid}")
