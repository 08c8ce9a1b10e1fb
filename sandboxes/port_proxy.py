"""`/api/v1/sandboxes/{id}/ports/{port}/…`: HTTP to a server inside a sandbox, through its agent's relay.

Authorised by `Authorization: Bearer <key>` of the sandbox's organisation (GET/HEAD need sandboxes:read,
other methods sandboxes:write) or by `?token=` from the expose call (that one sandbox and port, until it
expires). The request goes on with its method, path, query (less the token) and body; the key, cookies and
hop-by-hop headers stay here. The answer streams back as it comes, without hop-by-hop headers or
`Set-Cookie`, and with a `sandbox` Content-Security-Policy (see `ports.py`). One request per relayed
connection (`Connection: close`); WebSocket upgrades are not relayed yet.
"""

import http.client
import json
import socket
from urllib.parse import parse_qsl, urlencode

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from accounts.authentication import KeyAuthFailed, bearer_token, principal_for_key
from mem0web.errors import Mem0Error, error_body
from sandboxes import ports
from sandboxes.models import Sandbox

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "proxy-connection"}
NOT_FORWARDED = HOP_BY_HOP | {"authorization", "cookie", "host", "content-length", "x-forwarded-for",
                              "x-forwarded-host", "x-forwarded-proto", "x-forwarded-prefix"}
SANDBOX_CSP = "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads"
TIMEOUT_S = 60
CHUNK = 64 << 10


def _error(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status)


def _authorise(request, sandbox_id: str, port: int) -> Sandbox:
    """The sandbox, if the caller may reach its `port`; raises Mem0Error otherwise (404 for other tenants)."""
    token = request.GET.get("token")
    if token is not None:
        if not ports.token_allows(token, sandbox_id, port):
            raise Mem0Error("The port token is not valid for this sandbox and port, or has expired.",
                            code="authentication_failed", status=401)
        sandbox = Sandbox.objects.filter(pk=sandbox_id).select_related("organization").first()
    else:
        raw = bearer_token(request.META.get("HTTP_AUTHORIZATION", ""))
        if raw is None:
            raise Mem0Error("An API key or a port token is needed.", code="authentication_failed", status=401)
        try:
            principal = principal_for_key(raw)
        except KeyAuthFailed as exc:
            raise Mem0Error(str(exc.detail), code="authentication_failed", status=401) from None
        scope = "sandboxes:read" if request.method in ("GET", "HEAD", "OPTIONS") else "sandboxes:write"
        if not principal.can(scope):
            raise Mem0Error(f"This key lacks the {scope} scope.", code="permission_denied", status=403,
                            details={"required_scope": scope})
        sandbox = Sandbox.objects.filter(pk=sandbox_id, organization=principal.org).first()
    if sandbox is None:
        raise Mem0Error("Not found.", code="not_found", status=404)
    if port not in (sandbox.exposed_ports or []):
        raise Mem0Error(f"Port {port} is not exposed.", code="port_not_exposed", status=404)
    if sandbox.state not in (Sandbox.State.RUNNING, Sandbox.State.PAUSED):
        raise Mem0Error(f"Sandbox {sandbox.pk} is {sandbox.state}.", code="sandbox_not_running", status=409)
    return sandbox


def _connect(sandbox: Sandbox, port: int) -> socket.socket:
    """A connection to the sandbox's port through its agent's relay (exposing again once if the agent
    forgot it, e.g. after a restart)."""
    for attempt in (0, 1):
        relay = ports.relay_address(sandbox, port)
        if not relay.startswith("unix:"):
            raise Mem0Error("The sandbox's agent has no relay this server can reach.", code="agents_unavailable",
                            status=503)
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(TIMEOUT_S)
        try:
            conn.connect(relay[len("unix:"):])
            conn.sendall(json.dumps({"sandbox_id": sandbox.pk, "port": port}).encode() + b"\n")
            answer = conn.makefile("rb").readline(600).decode(errors="replace").strip()
        except OSError:
            conn.close()
            ports.forget_relay(sandbox.agent_id)
            if attempt:
                raise Mem0Error("The sandbox's agent cannot be reached.", code="agents_unavailable",
                                status=503) from None
            continue
        if answer == "OK":
            return conn
        conn.close()
        code = answer.split(" ", 2)[1] if answer.count(" ") >= 1 else "internal_error"
        if code == "not_found" and not attempt:
            ports.forget_relay(sandbox.agent_id)  # the agent forgot the exposure: tell it again
            continue
        if code == "unreachable":
            raise Mem0Error(f"Nothing answers on port {port} in the sandbox.", code="port_unreachable", status=502)
        raise Mem0Error("The sandbox's port cannot be reached.", code="sandbox_not_running", status=409)
    raise Mem0Error("The sandbox's port cannot be reached.", code="sandbox_not_running", status=409)


def _forwarded_request(request, port: int, rest: str) -> bytes:
    query = urlencode([(k, v) for k, v in parse_qsl(request.META.get("QUERY_STRING", ""), keep_blank_values=True)
                       if k != "token"])
    target = "/" + rest + (f"?{query}" if query else "")
    body = request.body
    lines = [f"{request.method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close",
             f"Content-Length: {len(body)}",
             f"X-Forwarded-Prefix: /api/v1/sandboxes/{request.resolver_match.kwargs['sandbox_id']}/ports/{port}"]
    for key, value in request.META.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").lower()
            if name not in NOT_FORWARDED and "\r" not in value and "\n" not in value:
                lines.append(f"{name}: {value}")
    if request.META.get("CONTENT_TYPE"):
        lines.append(f"Content-Type: {request.META['CONTENT_TYPE']}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace") + body


@csrf_exempt  # authorised by a key or a token, never by the console's session
def port_proxy(request, sandbox_id: str, port: int, rest: str = ""):
    try:
        sandbox = _authorise(request, sandbox_id, port)
        conn = _connect(sandbox, port)
    except Mem0Error as exc:
        return _error(exc.code, exc.message, exc.status)
    try:
        conn.sendall(_forwarded_request(request, port, rest))
        upstream = http.client.HTTPResponse(conn, method=request.method)
        upstream.begin()
    except (OSError, http.client.HTTPException):
        conn.close()
        return _error("port_unreachable", f"The server on port {port} gave no valid HTTP answer.", 502)

    def body():
        try:
            while chunk := upstream.read(CHUNK):
                yield chunk
        except (OSError, http.client.HTTPException):
            return
        finally:
            conn.close()

    response = (HttpResponse(status=upstream.status) if request.method == "HEAD"
                else StreamingHttpResponse(body(), status=upstream.status))
    for name, value in upstream.getheaders():
        if name.lower() not in HOP_BY_HOP | {"set-cookie", "content-length", "content-security-policy"}:
            response[name] = value
    response["Content-Security-Policy"] = SANDBOX_CSP
    response["X-Content-Type-Options"] = "nosniff"
    if request.method == "HEAD":
        conn.close()
    return response
