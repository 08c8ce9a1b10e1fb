"""A command's output over the execution routes, unchanged: SSE from any offset and the websocket."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from mem0web.asgi import application
from tests.sandboxes.test_streaming import _sse

pytestmark = pytest.mark.django_db(transaction=True)

TICKS = "for i in 0 1 2; do echo tick $i; sleep 0.3; done; echo bye >&2; exit 2"


async def _start(api, sandbox_id: str) -> str:
    r = await sync_to_async(api.post)(f"/api/v1/sandboxes/{sandbox_id}/commands", {"cmd": TICKS, "wait": False},
                                      format="json")
    assert r.status_code == 202, r.content
    return r.json()["id"]


async def test_sse_streams_a_command_and_replays_from_an_offset(api_pa, pro_a, sandbox):
    command_id = await _start(api_pa, sandbox["id"])
    events = [e for _, e in await _sse(pro_a[2], command_id)]
    assert "".join(e["data"] for e in events if e.get("stream") == "stdout") == "tick 0\ntick 1\ntick 2\n"
    assert [e["data"] for e in events if e.get("stream") == "stderr"] == ["bye\n"]
    assert events[-1]["type"] == "exit" and events[-1]["exit_code"] == 2 and events[-1]["status"] == "failed"
    later = [e for _, e in await _sse(pro_a[2], command_id, after=2)]
    assert [e["seq"] for e in later] == [e["seq"] for e in events[2:]]


async def test_websocket_streams_a_command(api_pa, pro_a, sandbox):
    command_id = await _start(api_pa, sandbox["id"])
    ws = WebsocketCommunicator(application, f"/ws/executions/{command_id}/",
                               headers=[(b"authorization", f"Bearer {pro_a[2]}".encode())])
    assert (await ws.connect())[0]
    got = []
    while True:
        msg = await ws.receive_json_from(15)
        got.append(msg)
        if msg.get("type") == "exit":
            break
    await ws.disconnect()
    assert "".join(m.get("data", "") for m in got if m.get("stream") == "stdout") == "tick 0\ntick 1\ntick 2\n"
    assert got[-1]["exit_code"] == 2
