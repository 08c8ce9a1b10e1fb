"""Pause, resume and lifetime changes through the REST API, with a real agent fleet."""

from datetime import timedelta

from django.utils import timezone

from accounts.models import AuditEvent
from billing.models import PlanOverride
from sandboxes import reaping
from sandboxes.models import Execution, Sandbox
from tests.sandboxes.conftest import run


def test_pause_keeps_memory_refuses_runs_and_resume_continues(api_pa, sandbox, pro_a):
    sid = sandbox["id"]
    assert run(api_pa, sid, "big = bytearray(32 << 20); marker = 'kept'")["status"] == "succeeded"
    r = api_pa.post(f"/api/v1/sandboxes/{sid}/pause")
    assert r.status_code == 200 and r.json()["state"] == "paused" and r.json()["paused_at"]
    assert api_pa.post(f"/api/v1/sandboxes/{sid}/pause").json()["state"] == "paused"  # idempotent
    assert api_pa.get("/api/v1/sandboxes?state=paused").json()["results"][0]["id"] == sid

    runs_before = Execution.objects.filter(sandbox_id=sid).count()
    r = api_pa.post(f"/api/v1/sandboxes/{sid}/executions", {"code": "print(marker)"}, format="json")
    assert r.status_code == 409 and r.json()["error"]["code"] == "sandbox_paused"
    assert Execution.objects.filter(sandbox_id=sid).count() == runs_before  # refused before admission

    # files and snapshots work while paused
    assert api_pa.put(f"/api/v1/sandboxes/{sid}/files/note.txt", b"written while paused",
                      content_type="application/octet-stream").status_code in (200, 201, 204)
    r = api_pa.post(f"/api/v1/sandboxes/{sid}/snapshots", {}, format="json")
    assert r.status_code == 201, r.content

    r = api_pa.post(f"/api/v1/sandboxes/{sid}/resume")
    assert r.status_code == 200 and r.json()["state"] == "running" and r.json()["paused_at"] is None
    out = run(api_pa, sid, "print(marker, len(big), open('/workspace/note.txt').read())")
    assert out["stdout"] == "kept 33554432 written while paused\n"
    actions = list(AuditEvent.objects.filter(organization=pro_a[0], target_id=sid).values_list("action", flat=True))
    assert actions.count("sandbox.pause") == 1 and actions.count("sandbox.resume") == 1


def test_fork_of_a_paused_sandbox_runs_and_the_parent_stays_paused(api_pa, sandbox):
    sid = sandbox["id"]
    run(api_pa, sid, "origin = 'parent state'")
    api_pa.post(f"/api/v1/sandboxes/{sid}/pause")
    r = api_pa.post(f"/api/v1/sandboxes/{sid}/fork")
    assert r.status_code == 201, r.content
    child = r.json()
    assert child["state"] == "running" and child["memory"] == "copied"
    assert run(api_pa, child["id"], "print(origin)")["stdout"] == "parent state\n"
    assert api_pa.get(f"/api/v1/sandboxes/{sid}").json()["state"] == "paused"
    api_pa.delete(f"/api/v1/sandboxes/{child['id']}")


def test_a_paused_sandbox_can_be_killed_and_frees_its_slot(api_pa, sandbox):
    sid = sandbox["id"]
    api_pa.post(f"/api/v1/sandboxes/{sid}/pause")
    r = api_pa.delete(f"/api/v1/sandboxes/{sid}")
    assert r.status_code == 200 and r.json()["state"] == "stopped"
    assert api_pa.post(f"/api/v1/sandboxes/{sid}/resume").json()["error"]["code"] == "sandbox_not_running"


def test_pause_is_refused_during_a_run(api_pa, sandbox):
    sid = sandbox["id"]
    ex = run(api_pa, sid, "import time; time.sleep(1.5)", wait=False)
    r = api_pa.post(f"/api/v1/sandboxes/{sid}/pause")
    assert r.status_code == 409 and r.json()["error"]["code"] == "sandbox_busy"
    assert r.json()["error"]["details"]["execution_id"] == ex["id"]


def test_pause_needs_the_write_scope_and_stays_in_its_organisation(api_pa, api_pb, sandbox, pro_a):
    from accounts import services as accounts
    from tests.conftest import client_for

    sid = sandbox["id"]
    assert api_pb.post(f"/api/v1/sandboxes/{sid}/pause").status_code == 404
    assert api_pb.patch(f"/api/v1/sandboxes/{sid}", {"timeout_s": 60}, format="json").status_code == 404
    _, reader = accounts.apikey_create(org=pro_a[0], name="reader", created_by=pro_a[1], scopes=["sandboxes:read"])
    r = client_for(reader).post(f"/api/v1/sandboxes/{sid}/pause")
    assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
    assert Sandbox.objects.get(pk=sid).state == "running"


def test_patch_timeout_moves_the_lifetime_within_the_plan(api_pa, sandbox):
    sid = sandbox["id"]
    before = timezone.now()
    r = api_pa.patch(f"/api/v1/sandboxes/{sid}", {"timeout_s": 120}, format="json")
    assert r.status_code == 200
    expires = Sandbox.objects.get(pk=sid).expires_at
    assert before + timedelta(seconds=119) < expires < timezone.now() + timedelta(seconds=121)
    r = api_pa.patch(f"/api/v1/sandboxes/{sid}", {"timeout_s": 10 * 86_400}, format="json")  # pro: 1 day at most
    assert r.status_code == 429 and r.json()["error"]["code"] == "quota_exceeded"
    assert r.json()["error"]["details"]["limit_name"] == "max_lifetime_seconds"
    assert api_pa.patch(f"/api/v1/sandboxes/{sid}", {}, format="json").status_code == 200  # nothing to change
    for bad in ({"timeout_s": 0}, {"timeout_s": "soon"}, {"timeout_s": None}, {"timeout_s": [5]}):
        r = api_pa.patch(f"/api/v1/sandboxes/{sid}", bad, format="json")
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", bad
    assert Sandbox.objects.get(pk=sid).expires_at == expires  # refused changes changed nothing
    # a shortened lifetime is what the sweep ends it by
    api_pa.patch(f"/api/v1/sandboxes/{sid}", {"timeout_s": 1}, format="json")
    reaping.sandboxes_reap(now=timezone.now() + timedelta(seconds=2))
    sb = Sandbox.objects.get(pk=sid)
    assert sb.state == "stopped" and sb.stop_reason == "max_lifetime"


def test_idle_sweep_pauses_where_the_plan_says_so_and_paused_time_is_not_idle(api_pa, sandbox, pro_a):
    sid = sandbox["id"]
    run(api_pa, sid, "kept = 'through an idle pause'")
    PlanOverride.objects.create(organization=pro_a[0], pause_on_idle=True, idle_timeout_seconds=60)
    later = timezone.now() + timedelta(seconds=120)
    reaping.sandboxes_reap(now=later)
    sb = Sandbox.objects.get(pk=sid)
    assert sb.state == "paused"
    event = AuditEvent.objects.filter(action="sandbox.pause", target_id=sid).get()
    assert event.metadata["reason"] == "idle_timeout" and event.actor_label == "idle sweep"
    reaping.sandboxes_reap(now=later + timedelta(seconds=600))  # paused: the idle sweep leaves it alone
    assert Sandbox.objects.get(pk=sid).state == "paused"
    api_pa.post(f"/api/v1/sandboxes/{sid}/resume")
    assert run(api_pa, sid, "print(kept)")["stdout"] == "through an idle pause\n"


def test_idle_sweep_stops_by_default(api_pa, sandbox):
    sid = sandbox["id"]
    reaping.sandboxes_reap(now=timezone.now() + timedelta(seconds=2 * 3600))
    sb = Sandbox.objects.get(pk=sid)
    assert sb.state == "stopped" and sb.stop_reason == "idle_timeout"
