"""Notebook-like runs over the API: rich results, structured errors, stdin, cancel, interpreter restart."""

import base64
import time

import pytest

from accounts import services as accounts
from accounts.models import AuditEvent
from sandboxes.models import Execution, Sandbox
from sandboxes.streaming import stored_events
from tests.conftest import client_for
from tests.sandboxes.conftest import run

PNG = b"\x89PNG\r\n\x1a\n"


def start(api, sandbox_id: str, code: str, **extra) -> dict:
    r = api.post(
        f"/api/v1/sandboxes/{sandbox_id}/executions", {"code": code, "wait": False, **extra}, format="json"
    )
    assert r.status_code == 202, r.content
    return r.json()


def wait_open(execution_id: str) -> None:
    """Until the run has been dispatched and is under way (it is `running` from admission on)."""
    time.sleep(0.5)
    assert Execution.objects.get(pk=execution_id).status == "running"


def test_last_expression_display_and_error_are_in_the_execution(api_pa, sandbox):
    ex = run(api_pa, sandbox["id"], "1 + 41")
    assert ex["results"] == [{"text/plain": "42"}] and ex["error"] is None
    ex = run(api_pa, sandbox["id"], "display({'a': 1})\nprint('out')\n1/0")
    assert ex["status"] == "failed" and ex["stdout"] == "out\n"
    assert ex["results"] == [{"text/plain": "{'a': 1}"}]
    assert ex["error"]["name"] == "ZeroDivisionError" and ex["error"]["value"] == "division by zero"
    assert ex["error"]["traceback"][-1] == "ZeroDivisionError: division by zero\n"
    stored = api_pa.get(f"/api/v1/executions/{ex['id']}").json()
    assert stored["results"] == ex["results"] and stored["error"] == ex["error"]


def test_stdin_for_a_run(api_pa, sandbox):
    ex = run(api_pa, sandbox["id"], "x = input()\nprint(x[::-1])", stdin="olleh\n")
    assert ex["status"] == "succeeded" and ex["stdout"] == "hello\n"
    r = api_pa.post(f"/api/v1/sandboxes/{sandbox['id']}/executions", {"code": "1", "stdin": 5}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    r = api_pa.post(
        f"/api/v1/sandboxes/{sandbox['id']}/executions",
        {"code": "1", "stdin": "x" * ((1 << 20) + 1)},
        format="json",
    )
    assert (r.status_code, r.json()["error"]["code"]) in (
        (400, "invalid_request"),
        (413, "payload_too_large"),
    )


def test_python_ml_figures_and_dataframes(api_pa, engine):
    r = api_pa.post("/api/v1/sandboxes", {"runtime": "python-ml"}, format="json")
    assert r.status_code == 201, r.content
    sid = r.json()["id"]
    try:
        ex = run(api_pa, sid, "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()")
        assert ex["status"] == "succeeded", ex
        assert base64.b64decode(ex["results"][0]["image/png"]).startswith(PNG)
        ex = run(api_pa, sid, "import pandas as pd\npd.DataFrame({'a': [1, 2]})")
        assert "<table" in ex["results"][0]["text/html"]
    finally:
        api_pa.delete(f"/api/v1/sandboxes/{sid}")


def test_results_replay_from_the_row_once_the_stream_is_gone(api_pa, sandbox):
    ex = run(api_pa, sandbox["id"], "print('a')\n'value'")
    events = stored_events(Execution.objects.get(pk=ex["id"]), 0)
    assert [e.get("type") for e in events] == [None, "result", "exit"]
    assert events[1]["data"] == {"text/plain": "'value'"} and [e["seq"] for e in events] == [1, 2, 3]
    live = api_pa.get(f"/api/v1/executions/{ex['id']}/events").json()["events"]
    assert [e["data"] for e in live if e.get("type") == "result"] == [{"text/plain": "'value'"}]


@pytest.mark.django_db(transaction=True)
async def test_result_events_stream_over_sse(api_pa, pro_a, sandbox):
    from tests.sandboxes.test_streaming import _sse, _start

    execution_id = await _start(api_pa, sandbox["id"], "print('a')\ndisplay(1)\n1/0")
    events = [e for _, e in await _sse(pro_a[2], execution_id)]
    kinds = [e.get("type", "output") for e in events]
    assert [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k] == [
        "output",
        "result",
        "output",
        "exit",
    ]
    assert events[1]["data"] == {"text/plain": "1"}
    assert events[-1]["error"]["name"] == "ZeroDivisionError"


@pytest.mark.django_db(transaction=True)
async def test_sandbox_websocket_takes_stdin_and_streams_results(pro_a, sandbox):
    from channels.testing import WebsocketCommunicator

    from mem0web.asgi import application

    ws = WebsocketCommunicator(
        application, f"/ws/sandboxes/{sandbox['id']}/", subprotocols=[f"mem0.key.{pro_a[2]}"]
    )
    assert (await ws.connect())[0]
    await ws.send_json_to({"code": "print(input())\n6 * 7", "stdin": "over ws\n"})
    messages = []
    while not messages or messages[-1].get("type") != "exit":
        messages.append(await ws.receive_json_from(10))
    await ws.disconnect()
    assert messages[0]["type"] == "started"
    assert [m["data"] for m in messages if m.get("stream") == "stdout"] == ["over ws\n"]
    assert [m["data"] for m in messages if m.get("type") == "result"] == [{"text/plain": "42"}]
    assert messages[-1]["status"] == "succeeded" and messages[-1]["error"] is None


def test_cancel_keeps_the_sandbox_and_its_state(api_pa, sandbox, pro_a):
    run(api_pa, sandbox["id"], "kept = 7")
    ex = start(api_pa, sandbox["id"], "import time\ntime.sleep(30)")
    wait_open(ex["id"])
    r = api_pa.post(f"/api/v1/executions/{ex['id']}/cancel")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["status"] == "cancelled" and body["error"]["name"] == "KeyboardInterrupt"
    assert run(api_pa, sandbox["id"], "print(kept)")["stdout"] == "7\n"
    assert AuditEvent.objects.filter(
        organization=pro_a[0], action="execution.cancel", target_id=ex["id"]
    ).exists()
    r = api_pa.post(f"/api/v1/executions/{ex['id']}/cancel")
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"


def test_cancel_is_tenant_scoped_and_needs_write(api_pa, api_pb, sandbox, pro_a):
    ex = start(api_pa, sandbox["id"], "import time\ntime.sleep(5)")
    r = api_pb.post(f"/api/v1/executions/{ex['id']}/cancel")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    org, owner, _ = pro_a
    _, read_only = accounts.apikey_create(org=org, name="ro", created_by=owner, scopes=["sandboxes:read"])
    r = client_for(read_only).post(f"/api/v1/executions/{ex['id']}/cancel")
    assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
    assert api_pa.post("/api/v1/executions/ex_nope/cancel").status_code == 404
    assert api_pa.post(f"/api/v1/executions/{ex['id']}/cancel").status_code == 200


@pytest.mark.parametrize("code", ["import os; os._exit(1)", "import ctypes; ctypes.string_at(0)"])
def test_a_dead_interpreter_leaves_the_sandbox_running_with_memory_lost(api_pa, sandbox, code):
    run(api_pa, sandbox["id"], "x = 1\nopen('/workspace/keep.txt', 'w').write('still here')")
    ex = run(api_pa, sandbox["id"], code)
    assert ex["status"] == "failed" and ex["error"]["name"] == "interpreter_exited", ex
    after = run(api_pa, sandbox["id"], "print(open('/workspace/keep.txt').read(), 'x' in globals())")
    assert after["stdout"] == "still here False\n", after
    sb = api_pa.get(f"/api/v1/sandboxes/{sandbox['id']}").json()
    assert (sb["state"], sb["memory"]) == ("running", "lost")
    assert Sandbox.objects.get(pk=sandbox["id"]).state == "running"
