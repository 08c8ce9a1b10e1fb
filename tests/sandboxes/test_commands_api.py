"""Commands over HTTP: real agents on the Redis bus, real isolation (sandboxes/commands.py, commands_api.py)."""

import time

from billing.models import UsagePeriod
from sandboxes.models import Execution
from tests.sandboxes.conftest import run


def command(api, sandbox_id: str, body: dict, status=(200,)):
    r = api.post(f"/api/v1/sandboxes/{sandbox_id}/commands", body, format="json")
    assert r.status_code in status, r.content
    return r.json()


def wait_ended(api, sandbox_id: str, command_id: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c = api.get(f"/api/v1/sandboxes/{sandbox_id}/commands/{command_id}").json()
        if c["status"] not in ("queued", "running"):
            return c
        time.sleep(0.05)
    raise AssertionError(f"command {command_id} did not end")


def test_shell_string_with_stdin_and_argv_exit_code(api_pa, sandbox, pro_a):
    sid = sandbox["id"]
    c = command(api_pa, sid, {"cmd": "read x; echo got-$x; ls / | wc -l", "stdin": "hello\n", "wait": True})
    assert c["status"] == "succeeded" and c["stdout"].startswith("got-hello\n") and c["exit_code"] == 0
    assert c["cmd"] == ["sh", "-c", "read x; echo got-$x; ls / | wc -l"] and c["pid"] > 1
    assert c["background"] is False and c["stream_url"] == f"/api/v1/executions/{c['id']}/events"
    c = command(api_pa, sid, {"cmd": ["sh", "-c", "exit 3"], "wait": True})
    assert (c["status"], c["exit_code"]) == ("failed", 3)
    # an execution like a run: counted and metered, and readable as one
    row = Execution.objects.get(pk=c["id"])
    assert row.kind == "command" and row.cmd == ["sh", "-c", "exit 3"] and row.exit_code == 3
    assert api_pa.get(f"/api/v1/executions/{c['id']}").json()["exit_code"] == 3
    assert UsagePeriod.objects.get(organization=pro_a[0], kind="day").executions_admitted >= 2


def test_cwd_env_and_the_interpreters_workspace(api_pa, sandbox):
    sid = sandbox["id"]
    run(api_pa, sid, "import os; os.makedirs('/workspace/d', exist_ok=True)")
    c = command(api_pa, sid, {"cmd": "pwd; echo $V > made.txt", "cwd": "d", "env": {"V": "value"}})
    assert c["stdout"] == "/home/sandbox/d\n" and c["cwd"] == "d"
    assert run(api_pa, sid, "print(open('/workspace/d/made.txt').read())")["stdout"] == "value\n\n"


def test_background_stdin_signal_list_and_reattach(api_pa, sandbox):
    sid = sandbox["id"]
    c = command(api_pa, sid, {"cmd": "while read l; do echo got-$l; done; echo eof", "background": True},
                status=(202,))
    assert c["status"] == "running" and c["background"] is True
    listed = api_pa.get(f"/api/v1/sandboxes/{sid}/commands").json()["commands"]
    assert [x["id"] for x in listed] == [c["id"]]
    base = f"/api/v1/sandboxes/{sid}/commands/{c['id']}"
    r = api_pa.post(f"{base}/stdin", {"data": "a\n"}, format="json")
    assert r.status_code == 200 and r.json()["written"] == 2
    assert api_pa.post(f"{base}/stdin", {"data": "b\n", "close": True}, format="json").status_code == 200
    done = wait_ended(api_pa, sid, c["id"])
    assert done["stdout"] == "got-a\ngot-b\neof\n" and done["exit_code"] == 0
    events = api_pa.get(f"{base}/events?after=1").json()
    assert events["done"] and [e["seq"] for e in events["events"]][0] == 2
    assert "".join(e.get("data", "") for e in events["events"]) == "got-b\neof\n"
    r = api_pa.post(f"{base}/stdin", {"data": "late\n"}, format="json")
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    assert api_pa.get(f"/api/v1/sandboxes/{sid}/commands").json()["commands"] == []

    c = command(api_pa, sid, {"cmd": ["sleep", "60"], "background": True}, status=(202,))
    base = f"/api/v1/sandboxes/{sid}/commands/{c['id']}"
    r = api_pa.post(f"{base}/signal", {"signal": "SIGKILL"}, format="json")
    assert r.status_code == 200
    done = wait_ended(api_pa, sid, c["id"])
    assert (done["status"], done["exit_code"]) == ("killed", -9)
    r = api_pa.post(f"{base}/signal", {"signal": "SIGSEGV"}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"


def test_timeout_is_reported_and_bounded_by_the_plan(api_pa, sandbox):
    sid = sandbox["id"]
    c = command(api_pa, sid, {"cmd": "sleep 30", "timeout_s": 0.5})
    assert (c["status"], c["limit"]) == ("timeout", "timeout")
    r = api_pa.post(f"/api/v1/sandboxes/{sid}/commands", {"cmd": "true", "timeout_s": 10 ** 7}, format="json")
    assert r.status_code == 429 and r.json()["error"]["code"] == "quota_exceeded"


def test_bad_input_is_400_and_costs_nothing(api_pa, sandbox, pro_a):
    sid = sandbox["id"]
    before = Execution.objects.filter(sandbox_id=sid).count()
    for body in ({"cmd": 5}, {"cmd": []}, {"cmd": ["a", 1]}, {"cmd": "x\x00y"}, {}, {"cmd": "true", "env": {"1x": "y"}},
                 {"cmd": "true", "cwd": 7}):
        r = api_pa.post(f"/api/v1/sandboxes/{sid}/commands", body, format="json")
        assert r.status_code == 400, (body, r.content)
        assert r.json()["error"]["code"] == "invalid_request"
    assert Execution.objects.filter(sandbox_id=sid).count() == before


def test_a_command_during_a_run_is_409_busy(api_pa, sandbox):
    sid = sandbox["id"]
    ex = run(api_pa, sid, "import time; time.sleep(3)", wait=False)
    r = api_pa.post(f"/api/v1/sandboxes/{sid}/commands", {"cmd": "true"}, format="json")
    assert r.status_code == 409 and r.json()["error"]["code"] == "sandbox_busy"
    assert not Execution.objects.filter(sandbox_id=sid, kind="command").exists()
    api_pa.get(f"/api/v1/executions/{ex['id']}")


def test_another_tenant_gets_404_everywhere(api_pa, api_pb, sandbox):
    sid = sandbox["id"]
    c = command(api_pa, sid, {"cmd": ["sleep", "30"], "background": True}, status=(202,))
    base = f"/api/v1/sandboxes/{sid}/commands"
    for method, path, body in (("post", base, {"cmd": "true"}), ("get", base, None),
                               ("get", f"{base}/{c['id']}", None), ("get", f"{base}/{c['id']}/events", None),
                               ("post", f"{base}/{c['id']}/stdin", {"data": "x"}),
                               ("post", f"{base}/{c['id']}/signal", {"signal": "SIGKILL"})):
        r = getattr(api_pb, method)(path, body, format="json") if body else getattr(api_pb, method)(path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (method, path)
    # a run's id is not a command
    ex = run(api_pa, sid, "print(1)")
    assert api_pa.get(f"{base}/{ex['id']}").status_code == 404
    api_pa.post(f"{base}/{c['id']}/signal", {"signal": "SIGKILL"}, format="json")
    assert wait_ended(api_pa, sid, c["id"])["status"] == "killed"
