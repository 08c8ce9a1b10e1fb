"""Per-sandbox limits asked for on create (issue 12 item 10), and a run on a busy sandbox."""

import pytest

from billing.models import UsagePeriod
from sandboxes.models import Execution, Sandbox
from tests.sandboxes.conftest import run

MiB = 1 << 20
PRO = {"memory_bytes": 2048 * MiB, "cpu_cores": 1.0, "workspace_bytes": 2048 * MiB, "pids": 64,
       "run_timeout_s": 600.0, "output_bytes": 4 * MiB}


def _create(api, **limits):
    return api.post("/api/v1/sandboxes", {"runtime": "python", "limits": limits}, format="json")


def test_limits_asked_on_create_are_shown_and_enforced_by_the_kernel(api_pa, engine):
    asked = {"memory_bytes": 128 * MiB, "workspace_bytes": 8 * MiB, "pids": 32, "cpu_cores": 0.5,
             "run_timeout_s": 2.0, "output_bytes": 10_000}
    r = _create(api_pa, **asked)
    assert r.status_code == 201, r.content
    sb = r.json()
    assert sb["limits"] == {**asked, "network": False}
    sid = sb["id"]
    try:
        disk = run(api_pa, sid, "open('/workspace/f', 'wb').write(b'x' * (16 << 20))")
        assert (disk["status"], disk["limit"]) == ("failed", "disk")
        out = run(api_pa, sid, "print('x' * 20000)")
        assert (out["limit"], len(out["stdout"])) == ("output", 10_000)
        slow = run(api_pa, sid, "import time; time.sleep(30)")
        assert (slow["status"], slow["limit"]) == ("timeout", "timeout")
        assert slow["wall_ms"] < 10_000
        assert run(api_pa, sid, "print(1)")["stdout"] == "1\n"
        child = api_pa.post(f"/api/v1/sandboxes/{sid}/fork").json()
        assert child["limits"] == sb["limits"]  # a fork keeps its parent's limits
        api_pa.delete(f"/api/v1/sandboxes/{child['id']}")
        mem = run(api_pa, sid, "x = bytearray(300 << 20)")  # RLIMIT_DATA: MemoryError, the sandbox lives on
        assert mem["status"] == "failed" and "MemoryError" in mem["stderr"], mem
        assert run(api_pa, sid, "print(2)")["stdout"] == "2\n"
    finally:
        api_pa.delete(f"/api/v1/sandboxes/{sid}")


def test_limits_left_out_are_the_plans(api_pa, engine):
    r = _create(api_pa, memory_bytes=256 * MiB)
    assert r.status_code == 201, r.content
    assert r.json()["limits"] == {**PRO, "memory_bytes": 256 * MiB, "network": False}
    api_pa.delete(f"/api/v1/sandboxes/{r.json()['id']}")


@pytest.mark.parametrize("name", sorted(PRO))
def test_a_limit_above_the_plan_is_quota_exceeded_naming_it(api_pa, engine, name):
    before = Sandbox.objects.count()
    asked = PRO[name] + (1 if isinstance(PRO[name], int) else 0.5)
    r = _create(api_pa, **{name: asked})
    assert r.status_code == 429, r.content
    error = r.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert error["details"] == {"limit_name": name, "used": asked, "limit": PRO[name], "resets_at": None}
    assert Sandbox.objects.count() == before


@pytest.mark.parametrize("limits", [{"memory_bytes": -1}, {"pids": 1}, {"cpu_cores": "NaN"},
                                    {"run_timeout_s": "Infinity"}, {"disk": 5}, {"memory_bytes": "lots"}, []])
def test_bad_limits_are_invalid_request(api_pa, engine, limits):
    before = Sandbox.objects.count()
    r = api_pa.post("/api/v1/sandboxes", {"runtime": "python", "limits": limits}, format="json")
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] == "invalid_request"
    assert Sandbox.objects.count() == before


def test_a_run_on_a_busy_sandbox_is_409_sandbox_busy_with_the_running_execution(api_pa, sandbox, pro_a):
    sid = sandbox["id"]
    first = run(api_pa, sid, "import time; time.sleep(3)", wait=False)
    rows = Execution.objects.filter(sandbox_id=sid).count()
    admitted = UsagePeriod.objects.get(organization=pro_a[0], kind="day").executions_admitted
    r = api_pa.post(f"/api/v1/sandboxes/{sid}/executions", {"code": "print(1)"}, format="json")
    assert r.status_code == 409, r.content
    assert r.json()["error"]["code"] == "sandbox_busy"
    assert r.json()["error"]["details"] == {"execution_id": first["id"]}
    # nothing ran: no row, and the admission was given back
    assert Execution.objects.filter(sandbox_id=sid).count() == rows
    assert UsagePeriod.objects.get(organization=pro_a[0], kind="day").executions_admitted == admitted
