"""Agent death and silence: sandboxes become `lost`, runs end `agent_lost`, new work goes elsewhere, nothing hangs."""

import os
import signal
import time

from sandboxes import reaping
from tests.sandboxes.conftest import forget_agent, start_agent, stop_agent, wait_alive


def _create_on(api, agent_id: str, tries: int = 12) -> dict:
    made = []
    try:
        for _ in range(tries):
            sb = api.post("/api/v1/sandboxes", {"runtime": "python"}, format="json").json()
            if sb.get("agent") == agent_id:
                return sb
            made.append(sb["id"])
        raise AssertionError(f"no sandbox landed on {agent_id}")
    finally:
        for sid in made:
            api.delete(f"/api/v1/sandboxes/{sid}")


def test_killed_agent_mid_run_ends_lost_and_work_moves(api_pa, engine, tmp_path):
    doomed = start_agent("a-doomed", tmp_path / "doomed")
    try:
        wait_alive({"a-doomed"})
        sb = _create_on(api_pa, "a-doomed")
        ex = api_pa.post(f"/api/v1/sandboxes/{sb['id']}/executions",
                         {"code": "import time\nprint('start', flush=True)\ntime.sleep(60)", "wait": False},
                         format="json").json()
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            reaping.agents_sweep()
            if api_pa.get(f"/api/v1/sandboxes/{sb['id']}").json()["state"] == "lost":
                break
            time.sleep(0.5)
        assert api_pa.get(f"/api/v1/sandboxes/{sb['id']}").json()["state"] == "lost"
        assert api_pa.get(f"/api/v1/executions/{ex['id']}").json()["status"] == "agent_lost"
        r = api_pa.post(f"/api/v1/sandboxes/{sb['id']}/executions", {"code": "print(1)"}, format="json")
        assert r.status_code == 409 and r.json()["error"]["code"] == "sandbox_not_running"
        for _ in range(4):
            new = api_pa.post("/api/v1/sandboxes", {"runtime": "python"}, format="json").json()
            assert new["agent"] in ("a0", "a1")
            api_pa.delete(f"/api/v1/sandboxes/{new['id']}")
    finally:
        stop_agent(doomed)
        forget_agent("a-doomed")


def test_silent_agent_gets_504_agent_timeout_not_a_hang(api_pa, engine, tmp_path):
    mute = start_agent("a-mute", tmp_path / "mute")
    try:
        wait_alive({"a-mute"})
        sb = _create_on(api_pa, "a-mute")
        os.killpg(mute.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        r = api_pa.post(f"/api/v1/sandboxes/{sb['id']}/executions", {"code": "print(1)"}, format="json")
        assert r.status_code == 504 and r.json()["error"]["code"] == "agent_timeout", r.content
        assert time.monotonic() - t0 < 9
        r = api_pa.post(f"/api/v1/sandboxes/{sb['id']}/executions", {"code": "print(1)"}, format="json")
        assert r.status_code == 503 and r.json()["error"]["code"] == "agents_unavailable"  # breaker open: at once
    finally:
        os.killpg(mute.pid, signal.SIGCONT)
        stop_agent(mute)
        forget_agent("a-mute")


def test_create_moves_to_a_healthy_agent_when_the_chosen_one_is_silent(api_pa, engine, tmp_path):
    mute = start_agent("a--mute", tmp_path / "mute2")  # sorts first: placement picks it on a tie
    try:
        wait_alive({"a--mute"})
        os.killpg(mute.pid, signal.SIGSTOP)
        made = [api_pa.post("/api/v1/sandboxes", {"runtime": "python"}, format="json") for _ in range(2)]
        assert all(r.status_code == 201 for r in made), [r.content for r in made]
        assert {r.json()["agent"] for r in made} <= {"a0", "a1"}
        for r in made:
            assert api_pa.post(f"/api/v1/sandboxes/{r.json()['id']}/executions", {"code": "print(7)"},
                               format="json").json()["stdout"] == "7\n"
            api_pa.delete(f"/api/v1/sandboxes/{r.json()['id']}")
    finally:
        os.killpg(mute.pid, signal.SIGCONT)
        stop_agent(mute)
        forget_agent("a--mute")


def test_one_unrecordable_result_does_not_stall_the_sweep(api_pa, engine):
    """Finding 6: one execution whose result could not be recorded made every sweep raise, so
    later executions (other tenants' included) stayed `running` and unmetered."""
    from datetime import timedelta

    from django.utils import timezone

    from sandboxes import dispatch
    from sandboxes.engine.protocol import ExitEvent, OutputEvent
    from sandboxes.models import Execution, Sandbox

    sb = api_pa.post("/api/v1/sandboxes", {"runtime": "python"}, format="json").json()
    try:
        sandbox = Sandbox.objects.get(pk=sb["id"])
        old = timezone.now() - timedelta(seconds=30)
        rows = [Execution.objects.create(organization=sandbox.organization, sandbox=sandbox, code="x",
                                         status=Execution.Status.RUNNING, created_at=old) for _ in range(2)]
        bad, good = rows
        exit_fields = dict(status="succeeded", exit_code=0, limit=None, wall_ms=1.0, cpu_ms=1.0,
                           sandbox_alive=True)
        bus = dispatch.engine().bus
        bus.publish(bad.pk, [OutputEvent(1, "stdout", "x"), ExitEvent(seq=2, peak_memory_bytes=2**70, **exit_fields)])
        bus.publish(good.pk, [OutputEvent(1, "stdout", "ok\n"), ExitEvent(seq=2, peak_memory_bytes=1, **exit_fields)])
        reaping.agents_sweep()
        good.refresh_from_db()
        assert (good.status, good.stdout) == ("succeeded", "ok\n")
        bad.refresh_from_db()
        assert bad.status == Execution.Status.RUNNING  # left for an operator, logged, not fatal
    finally:
        api_pa.delete(f"/api/v1/sandboxes/{sb['id']}")


def test_a_paused_sandbox_whose_agent_dies_comes_back_from_its_pause_snapshot(api_pa, engine, tmp_path):
    doomed = start_agent("a-doomed-p", tmp_path / "doomed-p")
    try:
        wait_alive({"a-doomed-p"})
        sb = _create_on(api_pa, "a-doomed-p")
        sid = sb["id"]
        api_pa.post(f"/api/v1/sandboxes/{sid}/executions",
                    {"code": "in_memory = 1\nopen('/workspace/kept.txt', 'w').write('saved at pause')"}, format="json")
        assert api_pa.post(f"/api/v1/sandboxes/{sid}/pause").json()["state"] == "paused"
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            reaping.agents_sweep()
            if api_pa.get(f"/api/v1/sandboxes/{sid}").json()["agent"] != "a-doomed-p":
                break
            time.sleep(0.5)
        back = api_pa.get(f"/api/v1/sandboxes/{sid}").json()
        assert back["state"] == "paused" and back["agent"] in ("a0", "a1") and back["memory"] == "lost"
        assert api_pa.post(f"/api/v1/sandboxes/{sid}/resume").json()["state"] == "running"
        out = api_pa.post(f"/api/v1/sandboxes/{sid}/executions",
                          {"code": "print(open('/workspace/kept.txt').read())\nprint('in_memory' in globals())"},
                          format="json").json()
        assert out["stdout"] == "saved at pause\nFalse\n"  # the workspace came back, the memory did not
    finally:
        stop_agent(doomed)
        forget_agent("a-doomed-p")
        api_pa.delete(f"/api/v1/sandboxes/{sb['id']}")
