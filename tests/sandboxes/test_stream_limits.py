"""One tenant at its limit of live streams cannot take more, while another tenant streams normally."""

import json

import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from channels.testing import WebsocketCommunicator

from mem0web.asgi import application
from sandboxes.stream_slots import streams_open
from tests.sandboxes.test_streaming import _scope, _start

pytestmark = pytest.mark.django_db(transaction=True)

# Runs until the test writes /workspace/stop: no timing assumption about how long A's streams stay open.
WAIT_FOR_STOP = "import os, time\nprint('holding', flush=True)\nwhile not os.path.exists('/workspace/stop'):\n    time.sleep(0.05)"


async def _sse(key: str, execution_id: str) -> list[dict]:
    """An SSE stream read to its end, and the response closed (its slot given back) before returning."""
    comm = ApplicationCommunicator(application, _scope(f"/api/v1/executions/{execution_id}/events", key))
    await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
    assert (await comm.receive_output(10))["status"] == 200
    events, more = [], True
    while more:
        msg = await comm.receive_output(15)
        more = msg.get("more_body", False)
        events += [
            json.loads(line[6:])
            for line in msg.get("body", b"").decode().splitlines()
            if line.startswith("data: ")
        ]
    await comm.wait(10)
    return events


async def _sse_status(key: str, execution_id: str) -> tuple[int, bytes]:
    comm = ApplicationCommunicator(application, _scope(f"/api/v1/executions/{execution_id}/events", key))
    await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await comm.receive_output(10)
    body = await comm.receive_output(10)
    return start["status"], body.get("body", b"")


async def test_a_tenant_at_its_stream_limit_gets_429_while_another_streams(
    settings, api_pa, api_pb, pro_a, pro_b, sandbox
):
    settings.MEM0_STREAMS_PER_ORG = 2
    org_a, key_a, key_b = pro_a[0], pro_a[2], pro_b[2]
    held = await _start(api_pa, sandbox["id"], WAIT_FOR_STOP)
    sockets = []
    for _ in range(2):
        ws = WebsocketCommunicator(application, f"/ws/executions/{held}/?key={key_a}")
        assert (await ws.connect())[0]
        assert (await ws.receive_json_from(15))["data"] == "holding\n"
        sockets.append(ws)
    assert streams_open(org_a.pk) == 2

    third = WebsocketCommunicator(application, f"/ws/executions/{held}/?key={key_a}")
    assert (await third.connect())[0]
    refusal = await third.receive_json_from(10)
    assert refusal["error"]["code"] == "rate_limited"
    assert refusal["error"]["details"] == {"limit_name": "streams_per_organization", "limit": 2}
    assert (await third.receive_output(10)) == {"type": "websocket.close", "code": 4429}
    status, body = await _sse_status(key_a, held)
    assert status == 429 and json.loads(body)["error"]["code"] == "rate_limited"
    assert streams_open(org_a.pk) == 2

    other = (
        await sync_to_async(api_pb.post)("/api/v1/sandboxes", {"runtime": "python"}, format="json")
    ).json()
    try:
        events = await _sse(key_b, await _start(api_pb, other["id"], "print('b streams')"))
        assert [e["data"] for e in events if "data" in e] == ["b streams\n"]
        assert events[-1]["status"] == "succeeded"
        assert streams_open(pro_b[0].pk) == 0  # the finished SSE response gave its slot back
    finally:
        await sync_to_async(api_pb.delete)(f"/api/v1/sandboxes/{other['id']}")

    await sockets.pop().disconnect()
    assert streams_open(org_a.pk) == 1
    r = await sync_to_async(api_pa.put)(
        f"/api/v1/sandboxes/{sandbox['id']}/files/stop", b"", content_type="application/octet-stream"
    )
    assert r.status_code == 201
    events = await _sse(key_a, held)  # A has room again
    assert events[-1]["type"] == "exit"
    while (await sockets[0].receive_json_from(15)).get("type") != "exit":
        pass
    await sockets[0].disconnect()
    assert streams_open(org_a.pk) == 0
