from accounts.models import AuditEvent
from billing.models import UsagePeriod
from sandboxes.models import Execution, Sandbox
from tests.sandboxes.conftest import run


def test_full_lifecycle_over_http(api_pa, engine, pro_a):
    r = api_pa.post("/api/v1/sandboxes", {"runtime": "python", "env": {"GREETING": "hi"},
                                          "metadata": {"team": "ml"}}, format="json")
    assert r.status_code == 201
    sb = r.json()
    assert sb["state"] == "running" and sb["agent"] in ("a0", "a1") and sb["parent_id"] is None
    first = run(api_pa, sb["id"], "import os\nx = 41\nprint(os.environ['GREETING'])")
    assert first["status"] == "succeeded" and first["stdout"] == "hi\n" and first["exit_code"] == 0
    assert first["wall_ms"] is not None and first["cpu_ms"] is not None and first["peak_memory_bytes"]
    second = run(api_pa, sb["id"], "print(x + 1)")
    assert second["stdout"].strip() == "42"
    assert api_pa.get(f"/api/v1/executions/{second['id']}").json()["stdout"].strip() == "42"

    listed = api_pa.get("/api/v1/sandboxes?metadata.team=ml&state=running").json()["results"]
    assert [s["id"] for s in listed] == [sb["id"]]
    assert api_pa.get("/api/v1/sandboxes?metadata.team=other").json()["results"] == []

    r = api_pa.delete(f"/api/v1/sandboxes/{sb['id']}")
    assert r.status_code == 200 and r.json()["state"] == "stopped"
    runs_before = Execution.objects.filter(sandbox_id=sb["id"]).count()
    admitted_before = UsagePeriod.objects.get(organization=pro_a[0], kind="day").executions_admitted
    r = api_pa.post(f"/api/v1/sandboxes/{sb['id']}/executions", {"code": "print(1)"}, format="json")
    assert r.status_code == 409 and r.json()["error"]["code"] == "sandbox_not_running"
    # refused by the admission statement's sandbox check: no run row, nothing taken from the quota
    assert Execution.objects.filter(sandbox_id=sb["id"]).count() == runs_before
    assert UsagePeriod.objects.get(organization=pro_a[0], kind="day").executions_admitted == admitted_before
    actions = set(AuditEvent.objects.filter(organization=pro_a[0]).values_list("action", flat=True))
    assert {"sandbox.create", "sandbox.kill"} <= actions


def test_failed_code_reports_failure_and_keeps_sandbox(api_pa, sandbox):
    r = run(api_pa, sandbox["id"], "y = 5\nraise ValueError('nope')")
    assert r["status"] == "failed" and "ValueError" in r["stderr"]
    assert run(api_pa, sandbox["id"], "print(y)")["stdout"].strip() == "5"


def test_timeout_is_reported_with_limit(api_pa, sandbox):
    r = run(api_pa, sandbox["id"], "import time\ntime.sleep(30)", timeout_s=1)
    assert r["status"] == "timeout" and r["limit"] == "timeout"
    assert r["wall_ms"] < 10_000


def test_fork_copies_memory_and_is_independent(api_pa, sandbox, pro_a):
    run(api_pa, sandbox["id"], "x = 41\nopen('/workspace/f.txt', 'w').write('parent')")
    r = api_pa.post(f"/api/v1/sandboxes/{sandbox['id']}/fork")
    assert r.status_code == 201
    fork = r.json()
    assert fork["parent_id"] == sandbox["id"] and fork["memory"] == "copied"
    assert fork["agent"] == sandbox["agent"]
    run(api_pa, sandbox["id"], "x = 0\nopen('/workspace/f.txt', 'w').write('changed')")
    out = run(api_pa, fork["id"], "print(x, open('/workspace/f.txt').read())")
    assert out["stdout"].split() == ["41", "parent"]
    api_pa.delete(f"/api/v1/sandboxes/{sandbox['id']}")
    assert run(api_pa, fork["id"], "print(x + 1)")["stdout"].strip() == "42"
    assert AuditEvent.objects.filter(organization=pro_a[0], action="sandbox.fork", target_id=fork["id"]).exists()
    api_pa.delete(f"/api/v1/sandboxes/{fork['id']}")


def test_async_run_returns_202_and_finishes(api_pa, sandbox):
    r = api_pa.post(f"/api/v1/sandboxes/{sandbox['id']}/executions", {"code": "print('later')", "wait": False},
                    format="json")
    assert r.status_code == 202
    ex = r.json()
    assert ex["stream_url"] == f"/api/v1/executions/{ex['id']}/events"
    events = api_pa.get(f"/api/v1/executions/{ex['id']}/events?after=0")
    for _ in range(100):
        body = api_pa.get(f"/api/v1/executions/{ex['id']}/events?after=0").json()
        if body["done"]:
            events = body["events"]
            break
    assert events[-1]["type"] == "exit" and any(e.get("data") == "later\n" for e in events)
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert api_pa.get(f"/api/v1/executions/{ex['id']}").json()["status"] == "succeeded"
    tail = api_pa.get(f"/api/v1/executions/{ex['id']}/events?after={events[-2]['seq']}").json()["events"]
    assert [e["seq"] for e in tail] == [events[-1]["seq"]]


def test_idempotency_key_returns_the_first_sandbox(api_pa, engine):
    headers = {"HTTP_IDEMPOTENCY_KEY": "create-once-1"}
    a = api_pa.post("/api/v1/sandboxes", {"runtime": "python"}, format="json", **headers)
    b = api_pa.post("/api/v1/sandboxes", {"runtime": "python"}, format="json", **headers)
    assert a.status_code == b.status_code == 201 and a.json()["id"] == b.json()["id"]
    assert b.headers["Idempotent-Replayed"] == "true"
    c = api_pa.post("/api/v1/sandboxes", {"runtime": "python-ml"}, format="json", **headers)
    assert c.status_code == 409 and c.json()["error"]["code"] == "conflict"
    assert Sandbox.objects.filter(pk=a.json()["id"]).count() == 1
    api_pa.delete(f"/api/v1/sandboxes/{a.json()['id']}")


def test_files_roundtrip_and_traversal_refused(api_pa, sandbox):
    sid = sandbox["id"]
    r = api_pa.put(f"/api/v1/sandboxes/{sid}/files/data/a.txt", b"abc\x00\xff", content_type="application/octet-stream")
    assert r.status_code == 201
    assert run(api_pa, sid, "print(open('/workspace/data/a.txt','rb').read())")["stdout"].strip() == "b'abc\\x00\\xff'"
    assert api_pa.get(f"/api/v1/sandboxes/{sid}/files/data/a.txt").content == b"abc\x00\xff"
    names = [e["name"] for e in api_pa.get(f"/api/v1/sandboxes/{sid}/files?path=data").json()["entries"]]
    assert names == ["a.txt"]
    for bad in ("../../etc/passwd", "data/../../x", "%2Fetc%2Fpasswd"):
        r = api_pa.get(f"/api/v1/sandboxes/{sid}/files/{bad}")
        assert r.status_code in (400, 404) and r.json()["error"]["code"] in ("invalid_request", "not_found"), bad
    run(api_pa, sid, "import os\nos.symlink('/etc', '/workspace/etc')")
    r = api_pa.get(f"/api/v1/sandboxes/{sid}/files/etc/passwd")
    assert r.status_code in (400, 404), r.content
    assert api_pa.delete(f"/api/v1/sandboxes/{sid}/files/data/a.txt").status_code == 204
    assert api_pa.get(f"/api/v1/sandboxes/{sid}/files/data/a.txt").status_code == 404


def test_runtimes_lists_what_agents_offer(api_pa, engine):
    names = {r["name"]: r["available"] for r in api_pa.get("/api/v1/runtimes").json()["runtimes"]}
    assert names == {"python": True, "python-ml": True, "go": True, "node": True}


def test_python_ml_has_numpy_ready(api_pa, engine):
    sb = api_pa.post("/api/v1/sandboxes", {"runtime": "python-ml"}, format="json").json()
    out = run(api_pa, sb["id"], "import numpy, sys\nprint(numpy.arange(4).sum(), 'pandas' in sys.modules)")
    assert out["stdout"].split() == ["6", "True"]
    api_pa.delete(f"/api/v1/sandboxes/{sb['id']}")


def test_execution_rows_match_agent_results(api_pa, sandbox):
    out = run(api_pa, sandbox["id"], "sum(range(10**6))")
    row = Execution.objects.get(pk=out["id"])
    assert row.status == "succeeded" and row.cpu_ms == out["cpu_ms"] and row.finished_at is not None
