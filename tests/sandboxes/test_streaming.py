"""Live output through the real ASGI app: SSE over HTTP and both websocket routes, incremental and replayable."""

import json
import time

import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from channels.testing import WebsocketCommunicator

from mem0web.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

LOOP = "import time\nfor i in range(3):\n    print('tick', i, flush=True)\n    time.sleep(0.7)"


def _scope(path: str, key: str, query: bytes = b"", accept: bytes = b"text/event-stream") -> dict:
    return {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": query,
            "root_path": "", "scheme": "http", "http_version": "1.1", "server": ("testserver", 80),
            "client": ("127.0.0.1", 5000),
            "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {key}".encode()), (b"accept", accept)]}


async def _start(api, sandbox_id: str, code: str) -> str:
    r = await sync_to_async(api.post)(f"/api/v1/sandboxes/{sandbox_id}/executions", {"code": code, "wait": False},
                                      format="json")
    assert r.status_code == 202, r.content
    return r.json()["id"]


async def _sse(key: str, execution_id: str, after: int = 0) -> list[tuple[float, dict]]:
    comm = ApplicationCommunicator(application, _scope(f"/api/v1/executions/{execution_id}/events", key,
                                                       f"after={after}".encode()))
    await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await comm.receive_output(10)
    assert start["status"] == 200
    events = []
    while True:
        msg = await comm.receive_output(15)
        for line in msg.get("body", b"").decode().splitlines():
            if line.startswith("data: "):
                events.append((time.monotonic(), json.loads(line[6:])))
        if not msg.get("more_body"):
            return events


async def test_sse_streams_incrementally_and_replays(api_pa, pro_a, sandbox):
    key = pro_a[2]
    execution_id = await _start(api_pa, sandbox["id"], LOOP)
    events = await _sse(key, execution_id)
    ticks = [(t, e) for t, e in events if e.get("stream") == "stdout"]
    assert "".join(e["data"] for _, e in ticks) == "tick 0\ntick 1\ntick 2\n"
    exit_t, exit_event = events[-1]
    assert exit_event["type"] == "exit" and exit_event["status"] == "succeeded"
    assert exit_t - ticks[0][0] > 1.0, "first line arrived only at the end"
    replay = await _sse(key, execution_id, after=ticks[0][1]["seq"])
    assert [e["seq"] for _, e in replay] == [e["seq"] for _, e in events if e["seq"] > ticks[0][1]["seq"]]


async def test_websocket_streams_and_late_subscriber_gets_everything(api_pa, pro_a, sandbox):
    key = pro_a[2]
    execution_id = await _start(api_pa, sandbox["id"], LOOP)
    ws = WebsocketCommunicator(application, f"/ws/executions/{execution_id}/",
                               headers=[(b"authorization", f"Bearer {key}".encode())])
    connected, _ = await ws.connect()
    assert connected
    live = []
    while True:
        msg = await ws.receive_json_from(15)
        live.append((time.monotonic(), msg))
        if msg.get("type") == "exit":
            break
    await ws.disconnect()
    assert live[-1][0] - live[0][0] > 1.0
    late = WebsocketCommunicator(application, f"/ws/executions/{execution_id}/?key={key}")
    assert (await late.connect())[0]
    replayed = []
    while True:
        msg = await late.receive_json_from(10)
        replayed.append(msg)
        if msg.get("type") == "exit":
            break
    await late.disconnect()
    assert [m["seq"] for m in replayed] == [m["seq"] for _, m in live]
    assert "".join(m.get("data", "") for m in replayed) == "tick 0\ntick 1\ntick 2\n"


async def test_sandbox_websocket_runs_code_with_subprotocol_key(pro_a, sandbox):
    ws = WebsocketCommunicator(application, f"/ws/sandboxes/{sandbox['id']}/",
                               subprotocols=[f"mem0.key.{pro_a[2]}"])
    connected, subprotocol = await ws.connect()
    assert connected and subprotocol == f"mem0.key.{pro_a[2]}"
    await ws.send_json_to({"code": "v = 6 * 7\nprint(v)"})
    started = await ws.receive_json_from(10)
    assert started["type"] == "started"
    out = await ws.receive_json_from(10)
    assert out["stream"] == "stdout" and out["data"] == "42\n"
    assert (await ws.receive_json_from(10))["type"] == "exit"
    await ws.send_json_to({"nope": 1})
    assert (await ws.receive_json_from(10))["error"]["code"] == "invalid_request"
    await ws.disconnect()


async def test_websocket_refuses_other_tenant_and_bad_keys(pro_b, sandbox):
    for path, headers in ((f"/ws/sandboxes/{sandbox['id']}/", [(b"authorization", f"Bearer {pro_b[2]}".encode())]),
                          (f"/ws/sandboxes/{sandbox['id']}/", [(b"authorization", b"Bearer mem0_bad_key")]),
                          (f"/ws/sandboxes/{sandbox['id']}/", [])):
        ws = WebsocketCommunicator(application, path, headers=headers)
        connected, code = await ws.connect()
        assert not connected and code in (4401, 4404)
