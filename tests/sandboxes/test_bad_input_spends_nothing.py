"""Bad input is a clear 400 that spends nothing (finding 16): timeouts that are not finite numbers, non-integer
Last-Event-ID, non-string code. The websocket side of the same validation: test_websocket_principal.py."""

import json

import pytest

from billing.selectors import executions_admitted
from sandboxes.models import Execution, Sandbox


@pytest.mark.parametrize(
    "timeout_s", ["NaN", "nan", "inf", "-inf", "1e999", True, [1], {"a": 1}, "abc", -1, 0]
)
def test_a_timeout_that_is_not_a_positive_finite_number_is_400_and_spends_nothing(
    api_pa, pro_a, sandbox, timeout_s
):
    org = pro_a[0]
    spent, rows = executions_admitted(org), Execution.objects.filter(organization=org).count()
    r = api_pa.post(
        f"/api/v1/sandboxes/{sandbox['id']}/executions",
        {"code": "print(1)", "timeout_s": timeout_s},
        format="json",
    )
    assert r.status_code == 400, (timeout_s, r.status_code, r.content[:300])
    assert r.json()["error"]["code"] == "invalid_request"
    assert "timeout_s" in r.json()["error"]["details"]["fields"]
    assert executions_admitted(org) == spent
    assert Execution.objects.filter(organization=org).count() == rows


@pytest.mark.parametrize("code", [5, True, ["print(1)"], None])
def test_code_must_be_a_string(api_pa, pro_a, sandbox, code):
    spent = executions_admitted(pro_a[0])
    r = api_pa.post(f"/api/v1/sandboxes/{sandbox['id']}/executions", {"code": code}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    assert executions_admitted(pro_a[0]) == spent


@pytest.mark.parametrize("timeout_s", ["NaN", "inf", True])
def test_a_sandbox_lifetime_that_is_not_finite_is_400(api_pa, engine, timeout_s):
    before = Sandbox.objects.count()
    r = api_pa.post("/api/v1/sandboxes", {"runtime": "python", "timeout_s": timeout_s}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", r.content[:300]
    assert Sandbox.objects.count() == before


@pytest.mark.parametrize("header", ["abc", "1e3", "-1", "1.5", "²"])
@pytest.mark.parametrize("accept", ["application/json", "text/event-stream"])
def test_a_last_event_id_that_is_not_a_count_is_400(api_pa, sandbox, header, accept):
    ex = api_pa.post(
        f"/api/v1/sandboxes/{sandbox['id']}/executions", {"code": "print(1)"}, format="json"
    ).json()
    r = api_pa.get(f"/api/v1/executions/{ex['id']}/events", HTTP_LAST_EVENT_ID=header, HTTP_ACCEPT=accept)
    assert r.status_code == 400, (header, r.status_code)
    assert json.loads(r.content)["error"]["code"] == "invalid_request"  # JSON whatever the Accept
    ok = api_pa.get(f"/api/v1/executions/{ex['id']}/events", HTTP_LAST_EVENT_ID="1")
    assert ok.status_code == 200 and all(e["seq"] > 1 for e in ok.json()["events"])
