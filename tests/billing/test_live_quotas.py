"""Plan limits against a real fork-agent: concurrency, memory, run time, metering of what the agent reports."""

import time

import pytest

from billing.selectors import sandboxes_in_use
from billing.services import organization_suspend, usage_roll_up
from sandboxes.models import Execution, Sandbox
from sandboxes.reaping import sandboxes_meter_cpu

pytestmark = pytest.mark.usefixtures("live_engine")


def create(api):
    return api.post("/api/v1/sandboxes", {"runtime": "python"}, format="json")


def run(api, sandbox_id: str, code: str, **extra) -> dict:
    resp = api.post(f"/api/v1/sandboxes/{sandbox_id}/executions", {"code": code, **extra}, format="json")
    assert resp.status_code == 200, resp.content
    return resp.json()


@pytest.fixture
def cleanup(api_a):
    made: list[str] = []
    yield made
    for sandbox_id in made:
        api_a.delete(f"/api/v1/sandboxes/{sandbox_id}")


def test_fourth_sandbox_on_free_is_refused_until_one_is_killed(api_a, cleanup):
    for _ in range(3):
        resp = create(api_a)
        assert resp.status_code == 201, resp.content
        cleanup.append(resp.json()["id"])
    refused = create(api_a)
    assert refused.status_code == 429
    assert refused.json()["error"]["details"] == {
        "limit_name": "concurrent_sandboxes",
        "used": 3,
        "limit": 3,
        "resets_at": None,
    }
    assert api_a.delete(f"/api/v1/sandboxes/{cleanup[0]}").status_code in (200, 204)
    again = create(api_a)
    assert again.status_code == 201, again.content
    cleanup.append(again.json()["id"])
    assert api_a.get("/api/v1/usage").json()["concurrent_sandboxes"]["used"] == 3


def test_usage_equals_what_the_agent_reported(org_a, api_a, cleanup):
    sandbox_id = create(api_a).json()["id"]
    cleanup.append(sandbox_id)
    for n in (10_000, 200_000, 1_000_000):
        assert run(api_a, sandbox_id, f"print(sum(range({n})))")["status"] == "succeeded"
    reported = sum(Execution.objects.filter(sandbox_id=sandbox_id).values_list("cpu_ms", flat=True))
    usage = api_a.get("/api/v1/usage").json()
    assert usage["executions"]["used"] == 3 and usage["executions"]["admitted"] == 3
    assert usage["cpu_ms"]["used"] == pytest.approx(reported, abs=0.002)
    api_a.delete(f"/api/v1/sandboxes/{sandbox_id}")
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    lifetime = (sandbox.stopped_at - sandbox.created_at).total_seconds()
    usage_roll_up()
    usage = api_a.get("/api/v1/usage").json()
    # at the end, the CPU the interpreter used between the runs (a few ms of bookkeeping) is metered too
    assert reported <= usage["cpu_ms"]["used"] <= reported + 200
    assert usage["sandbox_seconds"]["used"] == pytest.approx(lifetime, abs=0.002)


BURN_AFTER_THE_RUN = (
    "import threading, time\n"
    "def burn():\n"
    "    while time.thread_time() < 2.0:\n"
    "        pass\n"
    "    open('/workspace/done', 'w').close()\n"
    "threading.Thread(target=burn, daemon=True).start()\n"
)


def burn_two_seconds_after_the_run(api, sandbox_id: str) -> dict:
    """Run a snippet whose thread burns 2 s of CPU after the run returned; wait until it has (no run
    meanwhile: it would meter it). Returns the run."""
    first = run(api, sandbox_id, BURN_AFTER_THE_RUN)
    for _ in range(1200):
        if api.get(f"/api/v1/sandboxes/{sandbox_id}/files/done").status_code == 200:
            return first
        time.sleep(0.1)
    pytest.fail("the background thread did not finish")


def test_cpu_used_between_runs_is_metered_when_the_sandbox_ends(org_a, api_a, override, cleanup):
    """Finding 11: a background thread burning CPU after its run returned was billed to nobody."""
    override(org_a[0], requests_per_minute=100_000, request_burst=100_000)  # the test polls a file
    sandbox_id = create(api_a).json()["id"]
    cleanup.append(sandbox_id)
    before = api_a.get("/api/v1/usage").json()["cpu_ms"]["used"]
    first = burn_two_seconds_after_the_run(api_a, sandbox_id)
    assert first["status"] == "succeeded" and first["cpu_ms"] < 1000, first
    assert api_a.delete(f"/api/v1/sandboxes/{sandbox_id}").status_code == 200
    after = api_a.get("/api/v1/usage").json()["cpu_ms"]["used"]
    assert after - before >= first["cpu_ms"] + 1500, (before, after, first["cpu_ms"])
    assert after - before < first["cpu_ms"] + 4000  # counted once


def test_a_long_lived_sandboxs_cpu_between_runs_is_metered_periodically_and_once(org_a, api_a, override, cleanup):
    override(org_a[0], requests_per_minute=100_000, request_burst=100_000)  # the test polls a file
    sandbox_id = create(api_a).json()["id"]
    cleanup.append(sandbox_id)
    before = api_a.get("/api/v1/usage").json()["cpu_ms"]["used"]
    first = burn_two_seconds_after_the_run(api_a, sandbox_id)
    assert sandboxes_meter_cpu() >= 1_500_000  # µs, while the sandbox lives on
    during = api_a.get("/api/v1/usage").json()["cpu_ms"]["used"]
    assert during - before >= first["cpu_ms"] + 1500
    assert sandboxes_meter_cpu() < 100_000  # nothing new
    second = run(api_a, sandbox_id, "print(sum(range(100000)))")
    assert api_a.delete(f"/api/v1/sandboxes/{sandbox_id}").status_code == 200
    after = api_a.get("/api/v1/usage").json()["cpu_ms"]["used"]
    assert after - during < second["cpu_ms"] + 200  # the burn was not counted again at the end


def test_memory_per_sandbox_from_the_plan_is_enforced_by_the_engine(org_a, api_a, override, cleanup):
    override(org_a[0], memory_per_sandbox_mb=64)
    sandbox = create(api_a).json()
    cleanup.append(sandbox["id"])
    assert sandbox["limits"]["memory_bytes"] == 64 * 1024 * 1024
    result = run(api_a, sandbox["id"], "b = bytearray(200 * 1024 * 1024)\nprint(len(b))")
    assert result["status"] == "failed" and "MemoryError" in result["stderr"], result


def test_max_run_seconds_from_the_plan_bounds_a_run_without_a_timeout(org_a, api_a, override, cleanup):
    override(org_a[0], max_run_seconds=1)
    sandbox_id = create(api_a).json()["id"]
    cleanup.append(sandbox_id)
    result = run(api_a, sandbox_id, "while True:\n    pass")
    assert result["status"] == "timeout" and result["limit"] == "timeout"
    assert result["wall_ms"] < 5000


def test_suspension_stops_the_organisations_live_sandboxes(org_a, api_a, admin_user):
    org = org_a[0]
    ids = [create(api_a).json()["id"] for _ in range(2)]
    stopped = organization_suspend(org=org, operator=admin_user, reason="test")
    assert sorted(stopped) == sorted(ids)
    assert set(Sandbox.objects.filter(pk__in=ids).values_list("state", flat=True)) == {"stopped"}
    assert sandboxes_in_use(org) == 0
    assert api_a.get(f"/api/v1/sandboxes/{ids[0]}").status_code == 403
