"""Files as agents need them over the REST API (issue 14 item 6), with real agents on the Redis bus, and
GET /api/v1/runtimes (item 7)."""

import asyncio
import json
import platform

import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator

from mem0web.asgi import application
from sandboxes.stream_slots import streams_open
from tests.sandboxes.conftest import run


def put(api, sid: str, path: str, data: bytes):
    r = api.put(f"/api/v1/sandboxes/{sid}/files/{path}", data, content_type="application/octet-stream")
    assert r.status_code == 201, r.content


def test_stat_mkdir_move_text_list_and_delete(api_pa, sandbox):
    sid = sandbox["id"]
    base = f"/api/v1/sandboxes/{sid}"
    r = api_pa.post(f"{base}/fs/mkdir", {"path": "a/b"}, format="json")
    assert r.status_code == 201 and r.json()["type"] == "dir" and r.json()["path"] == "a/b"
    assert (
        api_pa.post(f"{base}/fs/mkdir", {"path": "a/b", "parents": False}, format="json").status_code == 409
    )
    put(api_pa, sid, "a/b/note.txt", "héllo".encode())
    stat = api_pa.get(f"{base}/fs/stat", {"path": "a/b/note.txt"}).json()
    assert (stat["type"], stat["size"], stat["name"]) == ("file", 6, "note.txt") and stat["mtime"] > 0
    missing = api_pa.get(f"{base}/fs/stat", {"path": "a/nope"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    text = api_pa.get(f"{base}/fs/text", {"path": "a/b/note.txt"}).json()
    assert text == {"path": "a/b/note.txt", "text": "héllo", "size": 6}
    put(api_pa, sid, "bin.dat", b"\xff\xfe\x00")
    r = api_pa.get(f"{base}/fs/text", {"path": "bin.dat"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "not_text"
    assert api_pa.get(f"{base}/files/bin.dat").content == b"\xff\xfe\x00"  # bytes still read as bytes
    r = api_pa.post(f"{base}/fs/move", {"source": "a/b/note.txt", "destination": "bin.dat"}, format="json")
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    r = api_pa.post(
        f"{base}/fs/move", {"source": "a/b/note.txt", "destination": "a/moved.txt"}, format="json"
    )
    assert r.status_code == 200 and r.json()["path"] == "a/moved.txt"
    tree = api_pa.get(f"{base}/files", {"path": "a", "depth": 3}).json()
    assert [e["path"] for e in tree["entries"]] == ["a/b", "a/moved.txt"]
    flat = api_pa.get(f"{base}/files", {"path": ""}).json()
    assert [e["path"] for e in flat["entries"]] == ["a", "bin.dat"]
    assert api_pa.get(f"{base}/files", {"depth": 0}).status_code == 400
    r = api_pa.delete(f"{base}/files/a?recursive=false")
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    assert api_pa.delete(f"{base}/files/a/b?recursive=false").status_code == 204  # empty: fine
    assert api_pa.delete(f"{base}/files/a?recursive=true").status_code == 204
    assert api_pa.get(f"{base}/fs/stat", {"path": "a"}).status_code == 404
    assert "bin.dat" in run(api_pa, sid, "import os; print(os.listdir('.'))")["stdout"]


@pytest.mark.parametrize("bad", ["../etc/passwd", "/etc/passwd", "a/../../x", "link/passwd", "proc/environ"])
def test_escapes_are_refused_on_every_new_endpoint(api_pa, sandbox, bad):
    sid = sandbox["id"]
    base = f"/api/v1/sandboxes/{sid}"
    run(
        api_pa,
        sid,
        "import os\nos.symlink('/etc', 'link')\nos.symlink('/proc/self', 'proc')\nopen('f', 'w').close()",
    )
    for r in (
        api_pa.get(f"{base}/fs/stat", {"path": bad}),
        api_pa.get(f"{base}/fs/text", {"path": bad}),
        api_pa.post(f"{base}/fs/mkdir", {"path": f"{bad}/x"}, format="json"),
        api_pa.post(f"{base}/fs/move", {"source": "f", "destination": bad}, format="json"),
        api_pa.post(f"{base}/fs/move", {"source": bad, "destination": "stolen"}, format="json"),
        api_pa.get(f"{base}/files", {"path": bad, "depth": 2}),
        api_pa.get(f"{base}/fs/watch", {"path": bad}),
    ):
        assert r.status_code in (400, 404), (r.status_code, r.content)
        assert r.json()["error"]["code"] in ("invalid_request", "not_found")
        assert b"root:" not in r.content
    assert api_pa.get(f"{base}/fs/stat", {"path": "stolen"}).status_code == 404


def test_other_tenant_gets_404_on_every_new_endpoint(api_pa, api_pb, sandbox):
    sid = sandbox["id"]
    base = f"/api/v1/sandboxes/{sid}"
    put(api_pa, sid, "s.txt", b"secret")
    for method, path, body in (
        ("get", f"{base}/fs/stat?path=s.txt", None),
        ("get", f"{base}/fs/text?path=s.txt", None),
        ("get", f"{base}/fs/watch", None),
        ("get", f"{base}/files?path=&depth=2", None),
        ("post", f"{base}/fs/mkdir", {"path": "d"}),
        ("post", f"{base}/fs/move", {"source": "s.txt", "destination": "t.txt"}),
        ("delete", f"{base}/files/s.txt?recursive=false", None),
    ):
        r = (
            getattr(api_pb, method)(path, body, format="json")
            if body is not None
            else getattr(api_pb, method)(path)
        )
        assert r.status_code == 404, (method, path, r.status_code)
        assert r.json()["error"]["code"] == "not_found" and b"secret" not in r.content
    assert api_pa.get(f"{base}/fs/text?path=s.txt").json()["text"] == "secret"
    assert api_pa.get(f"{base}/fs/stat?path=d").status_code == 404


def _scope(path: str, key: str, query: bytes) -> dict:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "scheme": "http",
        "http_version": "1.1",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 5000),
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", f"Bearer {key}".encode()),
            (b"accept", b"text/event-stream"),
        ],
    }


async def _events(comm, until) -> list[dict]:
    events = []
    while not until(events):
        msg = await comm.receive_output(20)
        for line in msg.get("body", b"").decode().splitlines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
        if not msg.get("more_body", False):
            break
    return events


@pytest.mark.django_db(transaction=True)
async def test_watch_streams_what_code_in_the_sandbox_writes(api_pa, pro_a, sandbox):
    sid, key = sandbox["id"], pro_a[2]
    await sync_to_async(api_pa.post)(f"/api/v1/sandboxes/{sid}/fs/mkdir", {"path": "out"}, format="json")
    comm = ApplicationCommunicator(application, _scope(f"/api/v1/sandboxes/{sid}/fs/watch", key, b"path=out"))
    await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await comm.receive_output(20)
    assert start["status"] == 200
    assert dict(start["headers"])[b"Content-Type"] == b"text/event-stream"
    assert streams_open(pro_a[0].pk) == 1
    await comm.receive_output(20)  # ": watching": the watch is in place
    await sync_to_async(run)(
        api_pa,
        sid,
        "import os\nopen('out/result.json', 'w').write('{}')\n"
        "os.rename('out/result.json', 'out/final.json')\nopen('elsewhere', 'w')",
    )
    events = await _events(comm, lambda ev: any(e["type"] == "moved" for e in ev))
    assert {"type": "created", "path": "out/result.json", "is_dir": False} in events
    assert {"type": "moved", "path": "out/result.json", "dest": "out/final.json", "is_dir": False} in events
    assert not any(e.get("path") == "elsewhere" for e in events)
    await sync_to_async(api_pa.delete)(f"/api/v1/sandboxes/{sid}")
    tail = await _events(comm, lambda ev: bool(ev) and ev[-1]["type"] == "end")
    assert tail[-1] == {"type": "end", "reason": "sandbox_ended"}
    await comm.send_input({"type": "http.disconnect"})
    await comm.wait(5)
    for _ in range(50):
        if streams_open(pro_a[0].pk) == 0:
            break
        await asyncio.sleep(0.1)
    assert streams_open(pro_a[0].pk) == 0


def test_watch_takes_a_stream_slot_and_refuses_past_the_limit(api_pa, sandbox, settings):
    settings.MEM0_STREAMS_PER_ORG = 0
    r = api_pa.get(f"/api/v1/sandboxes/{sandbox['id']}/fs/watch")
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"


def test_runtimes_lists_each_runtime_with_version_fork_memory_and_pool(api_pa, engine, client):
    r = api_pa.get("/api/v1/runtimes")
    assert r.status_code == 200
    runtimes = {rt["name"]: rt for rt in r.json()["runtimes"]}
    python = runtimes["python"]
    assert python["available"] and python["agents"] == 2
    assert python["version"] == platform.python_version()
    assert python["fork_memory"] == "carried" and python["can_fork_memory"] is True
    assert python["pool_size"] >= 0 and python["language"] == "python"
    for rt in runtimes.values():
        assert rt["fork_memory"] in ("carried", "fresh")
        assert "/" not in (rt["version"] or "")  # a version, never a host path
    assert client.get("/api/v1/runtimes").status_code == 401


def test_runtimes_come_from_the_agents_registry(api_pa, engine):
    """A runtime the Django side has never heard of is listed once an agent advertises it, as its heartbeat
    says (memory not carried on fork, its version and pool), and is gone when the agent is."""
    import time

    from sandboxes.engine.protocol import AgentInfo
    from sandboxes.engine.transport import make_bus
    from tests.sandboxes.conftest import BUS_URL, PREFIX, forget_agent

    template = {
        "name": "cobol-test",
        "language": "cobol",
        "version": "3.2.1",
        "fork_memory": "fresh",
        "pool_size": 3,
    }
    make_bus(BUS_URL, prefix=PREFIX).register_agent(
        AgentInfo("fake-agent", "h", 1, ["cobol-test"], 1, time.time(), templates=[template])
    )
    try:
        runtimes = {r["name"]: r for r in api_pa.get("/api/v1/runtimes").json()["runtimes"]}
        listed = runtimes["cobol-test"]
        assert (listed["version"], listed["fork_memory"], listed["can_fork_memory"]) == (
            "3.2.1",
            "fresh",
            False,
        )
        assert (listed["pool_size"], listed["agents"], listed["available"]) == (3, 1, True)
    finally:
        forget_agent("fake-agent")
    assert "cobol-test" not in {r["name"] for r in api_pa.get("/api/v1/runtimes").json()["runtimes"]}


@pytest.mark.django_db(transaction=True)
async def test_watch_over_a_websocket(api_pa, pro_a, pro_b, sandbox):
    from channels.testing import WebsocketCommunicator

    sid = sandbox["id"]
    stranger = WebsocketCommunicator(
        application,
        f"/ws/sandboxes/{sid}/watch/",
        headers=[(b"authorization", f"Bearer {pro_b[2]}".encode())],
    )
    connected, code = await stranger.connect()
    assert not connected and code == 4404
    ws = WebsocketCommunicator(
        application,
        f"/ws/sandboxes/{sid}/watch/?path=&recursive=true",
        headers=[(b"authorization", f"Bearer {pro_a[2]}".encode())],
    )
    assert (await ws.connect())[0]
    assert streams_open(pro_a[0].pk) == 1
    await sync_to_async(run)(api_pa, sid, "import os\nos.mkdir('d')\nopen('d/x.txt', 'w').write('1')")
    seen = []
    while not {("created", "d"), ("created", "d/x.txt")} <= {(m["type"], m.get("path")) for m in seen}:
        seen.append(await ws.receive_json_from(20))
    assert [m["seq"] for m in seen] == sorted(m["seq"] for m in seen)
    await ws.send_json_to({"hello": 1})
    assert (await ws.receive_json_from(10))["error"]["code"] == "invalid_request"
    await sync_to_async(api_pa.delete)(f"/api/v1/sandboxes/{sid}")
    while (message := await ws.receive_json_from(20))["type"] != "end":
        pass
    assert message["reason"] == "sandbox_ended"
    assert (await ws.receive_output(10))["type"] == "websocket.close"
    assert streams_open(pro_a[0].pk) == 0


@pytest.mark.django_db(transaction=True)
async def test_watch_websocket_refuses_a_path_through_a_link(api_pa, pro_a, sandbox):
    from channels.testing import WebsocketCommunicator

    sid = sandbox["id"]
    await sync_to_async(run)(api_pa, sid, "import os\nos.symlink('/etc', 'etc')")
    ws = WebsocketCommunicator(
        application,
        f"/ws/sandboxes/{sid}/watch/?path=etc",
        headers=[(b"authorization", f"Bearer {pro_a[2]}".encode())],
    )
    assert (await ws.connect())[0]
    assert (await ws.receive_json_from(10))["error"]["code"] == "invalid_request"
    assert (await ws.receive_output(10))["type"] == "websocket.close"
    assert streams_open(pro_a[0].pk) == 0
