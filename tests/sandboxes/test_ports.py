"""Exposed ports through the web tier: a key or a signed URL reaches an exposed port, nothing else does."""

import time

from django.core import signing

from sandboxes import ports
from tests.conftest import client_for
from tests.sandboxes.conftest import run

SERVER = """
import http.server, socketserver, threading
class H(http.server.BaseHTTPRequestHandler):
    def _answer(self, body):
        self.send_response(201 if self.command == 'POST' else 200)
        self.send_header('Content-Type', 'text/html'); self.send_header('Set-Cookie', 'sessionid=stolen')
        self.send_header('X-From-Sandbox', 'yes'); self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        seen = 'auth=%s cookie=%s' % (self.headers.get('Authorization'), self.headers.get('Cookie'))
        self._answer(('path=%s %s' % (self.path, seen)).encode())
    def do_POST(self):
        self._answer(b'posted ' + self.rfile.read(int(self.headers['Content-Length'])))
    def log_message(self, *a): pass
socketserver.TCPServer.allow_reuse_address = True
srv = socketserver.TCPServer(('0.0.0.0', 8080), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
"""


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_expose_then_reach_with_the_key_or_the_signed_url(api_pa, sandbox, pro_a):
    sid = sandbox["id"]
    assert run(api_pa, sid, SERVER)["status"] == "succeeded"
    r = api_pa.get(f"/api/v1/sandboxes/{sid}/ports/8080/hello?x=1")
    assert r.status_code == 404 and r.json()["error"]["code"] == "port_not_exposed"

    r = api_pa.post(f"/api/v1/sandboxes/{sid}/ports", {"port": 8080}, format="json")
    assert r.status_code == 201, r.content
    exposed = r.json()
    assert exposed["url"] == f"/api/v1/sandboxes/{sid}/ports/8080/"
    assert api_pa.get(f"/api/v1/sandboxes/{sid}").json()["exposed_ports"] == [8080]

    r = api_pa.get(f"/api/v1/sandboxes/{sid}/ports/8080/hello?x=1", HTTP_COOKIE="sessionid=console")
    assert r.status_code == 200
    got = body(r).decode()
    assert got.startswith("path=/hello?x=1 ") and "auth=None cookie=None" in got  # key and cookies stay here
    assert r["X-From-Sandbox"] == "yes" and "Set-Cookie" not in r  # the sandbox cannot set our cookies
    assert r["Content-Security-Policy"].startswith("sandbox")
    r = api_pa.post(f"/api/v1/sandboxes/{sid}/ports/8080/form", b"a=1", content_type="text/plain")
    assert r.status_code == 201 and body(r) == b"posted a=1"

    anonymous = client_for(None)
    assert anonymous.get(f"/api/v1/sandboxes/{sid}/ports/8080/").status_code == 401
    r = anonymous.get(exposed["signed_url"] + "&more=2")
    assert r.status_code == 200 and body(r).startswith(b"path=/?more=2 ")  # the token is not forwarded
    other_port = exposed["signed_url"].replace("/ports/8080/", "/ports/9090/")
    assert anonymous.get(other_port).status_code == 401
    token = exposed["signed_url"].split("token=")[1]
    assert anonymous.get(f"/api/v1/sandboxes/{sid}/ports/8080/?token={token[:-2]}xx").status_code == 401


def test_another_tenant_and_unexposed_ports_get_nothing(api_pa, api_pb, sandbox):
    sid = sandbox["id"]
    run(api_pa, sid, SERVER)
    api_pa.post(f"/api/v1/sandboxes/{sid}/ports", {"port": 8080}, format="json")
    assert api_pb.get(f"/api/v1/sandboxes/{sid}/ports/8080/").status_code == 404
    assert api_pb.post(f"/api/v1/sandboxes/{sid}/ports", {"port": 8080}, format="json").status_code == 404
    assert api_pa.get(f"/api/v1/sandboxes/{sid}/ports/22/").json()["error"]["code"] == "port_not_exposed"
    r = api_pa.post(f"/api/v1/sandboxes/{sid}/ports", {"port": 9999}, format="json")
    assert r.status_code == 201
    r = api_pa.get(f"/api/v1/sandboxes/{sid}/ports/9999/")
    assert r.status_code == 502 and r.json()["error"]["code"] == "port_unreachable"
    for bad in ({"port": 0}, {"port": 70000}, {"port": "80"}, {"port": 80.5}, {"port": 8080, "expires_s": 5}):
        assert api_pa.post(f"/api/v1/sandboxes/{sid}/ports", bad, format="json").status_code == 400, bad
    assert api_pa.delete(f"/api/v1/sandboxes/{sid}/ports/8080").status_code == 204
    assert api_pa.get(f"/api/v1/sandboxes/{sid}/ports/8080/").json()["error"]["code"] == "port_not_exposed"
    assert api_pa.delete(f"/api/v1/sandboxes/{sid}/ports/8080").status_code == 404


def test_signed_urls_expire(api_pa, sandbox, monkeypatch):
    sid = sandbox["id"]
    run(api_pa, sid, SERVER)
    url = api_pa.post(f"/api/v1/sandboxes/{sid}/ports", {"port": 8080, "expires_s": 60},
                      format="json").json()["signed_url"]
    assert client_for(None).get(url).status_code == 200
    real = time.time
    monkeypatch.setattr(signing.time, "time", lambda: real() + 61)  # the signer's clock, a minute on
    assert client_for(None).get(url).status_code == 401
    assert ports.token_allows(url.split("token=")[1], sid, 8080) is False
