"""Exposed ports: the agent's relay reaches a server inside a sandbox's own network namespace, and nothing else."""

from __future__ import annotations

import json
import socket

import pytest

from sandboxes.engine.protocol import EngineError

SERVER = """
import http.server, socketserver, threading
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ('hello from ' + self.path).encode()
        self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
socketserver.TCPServer.allow_reuse_address = True
srv = socketserver.TCPServer(('0.0.0.0', {port}), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
"""


def relay(engine, sandbox_id: str, port: int, request: bytes = b"GET /x HTTP/1.0\r\n\r\n") -> tuple[str, bytes]:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(10)
    conn.connect(engine.agent.ports.path)
    conn.sendall(json.dumps({"sandbox_id": sandbox_id, "port": port}).encode() + b"\n")
    head = b""
    while not head.endswith(b"\n"):
        head += conn.recv(1)
    if head != b"OK\n":
        conn.close()
        return head.decode().strip(), b""
    conn.sendall(request)
    body = b""
    while chunk := conn.recv(65536):
        body += chunk
    conn.close()
    return "OK", body


def test_an_exposed_port_is_relayed_and_others_are_not(engine):
    sid = engine.create()
    engine.ok(sid, SERVER.format(port=8080) + SERVER.replace("srv", "srv2").format(port=9090))
    # the sandbox reaches its own server over its loopback
    assert engine.ok(sid, "import urllib.request\nprint(urllib.request.urlopen('http://127.0.0.1:8080/in').read())") \
        == "b'hello from /in'\n"
    status, _ = relay(engine, sid, 8080)
    assert status.startswith("ERR not_found")  # not exposed yet
    out = engine.client.port_expose(engine.agent_id, sandbox_id=sid, port=8080)
    assert out["relay"] == f"unix:{engine.agent.ports.path}"
    status, body = relay(engine, sid, 8080)
    assert status == "OK" and body.startswith(b"HTTP/1.0 200") and body.endswith(b"hello from /x")
    assert relay(engine, sid, 9090)[0].startswith("ERR not_found")  # listening, but not exposed

    other = engine.create()
    assert relay(engine, other, 8080)[0].startswith("ERR not_found")  # another sandbox's port 8080
    engine.client.port_expose(engine.agent_id, sandbox_id=other, port=8080)
    assert relay(engine, other, 8080)[0].startswith("ERR unreachable")  # its own namespace: nothing there

    engine.kill(sid)
    assert relay(engine, sid, 8080)[0].startswith("ERR")


def test_a_fork_has_its_own_loopback(engine):
    sid = engine.create()
    engine.ok(sid, SERVER.format(port=8081))
    child = engine.fork(sid)["sandbox_id"]
    out = engine.ok(child, "import socket\ns = socket.socket()\nprint(s.connect_ex(('127.0.0.1', 8081)) != 0)")
    assert out == "True\n"  # the parent's server is not on the fork's loopback


def test_bad_handshakes_and_ports_are_refused(engine):
    sid = engine.create()
    with pytest.raises(EngineError) as exc:
        engine.client.port_expose(engine.agent_id, sandbox_id=sid, port=70000)
    assert exc.value.code == "invalid_request"
    for line in (b"not json\n", b'{"sandbox_id": 5, "port": 80}\n', b"x" * 2000 + b"\n"):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(10)
        conn.connect(engine.agent.ports.path)
        conn.sendall(line)
        assert conn.recv(200).startswith(b"ERR invalid_request")
        conn.close()
