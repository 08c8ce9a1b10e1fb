"""Exposed ports: a server a sandbox runs (`python -m http.server 8080`) reached through the web tier at
`/api/v1/sandboxes/{id}/ports/{port}/…`, authorised by an API key of the sandbox's organisation or by a
signed, expiring URL token for that one sandbox and port. Only ports the owner exposed are reachable; the
sandbox's agent relays each connection into the sandbox's own network namespace (`engine/ports.py`).

What a sandbox serves is untrusted and is served from this origin, so every proxied response carries
`Content-Security-Policy: sandbox …` (the page runs in an opaque origin: no cookies of this site, no
same-origin API calls with a console session) and loses any `Set-Cookie`.
"""

from django.core import signing
from django.utils import timezone

from accounts.audit import audit_record
from mem0web.errors import InvalidRequest, Mem0Error, NotFound
from sandboxes import dispatch
from sandboxes.models import Sandbox
from sandboxes.services import require_live, require_scope

MAX_EXPOSED = 16
TOKEN_SALT = "mem0.sandbox-port"
TOKEN_DEFAULT_S = 3600
TOKEN_MAX_S = 7 * 86_400
_relays: dict[str, str] = {}  # agent id -> its relay's address


def valid_port(port) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidRequest("port must be an integer from 1 to 65535.", details={"field": "port"})
    return port


def port_url(sandbox: Sandbox, port: int) -> str:
    return f"/api/v1/sandboxes/{sandbox.pk}/ports/{port}/"


def signed_url(sandbox: Sandbox, port: int, expires_s: int) -> tuple[str, str]:
    token = signing.TimestampSigner(salt=TOKEN_SALT).sign(f"{sandbox.pk}:{port}:{int(expires_s)}")
    expires = timezone.now() + timezone.timedelta(seconds=expires_s)
    return f"{port_url(sandbox, port)}?token={token}", expires.isoformat()


def token_allows(token: str, sandbox_id: str, port: int) -> bool:
    try:
        value = signing.TimestampSigner(salt=TOKEN_SALT).unsign(token, max_age=TOKEN_MAX_S)
        sid, tport, expires_s = value.rsplit(":", 2)
        signing.TimestampSigner(salt=TOKEN_SALT).unsign(token, max_age=int(expires_s))
    except (signing.BadSignature, ValueError):
        return False
    return sid == sandbox_id and tport == str(port)


def port_expose(*, principal, sandbox: Sandbox, port, expires_s=None, request=None) -> dict:
    require_scope(principal, "sandboxes:write")
    port = valid_port(port)
    expires_s = TOKEN_DEFAULT_S if expires_s is None else expires_s
    if isinstance(expires_s, bool) or not isinstance(expires_s, int) or not 60 <= expires_s <= TOKEN_MAX_S:
        raise InvalidRequest(f"expires_s must be whole seconds from 60 to {TOKEN_MAX_S}.",
                             details={"field": "expires_s"})
    require_live(sandbox)
    ports = sorted(set(sandbox.exposed_ports or []) | {port})
    if len(ports) > MAX_EXPOSED:
        raise Mem0Error(f"A sandbox may expose at most {MAX_EXPOSED} ports.", code="conflict", status=409)
    reply = dispatch.call(sandbox.agent_id, "port_expose", owner=sandbox.organization_id, sandbox_id=sandbox.pk,
                          port=port)
    _relays[sandbox.agent_id] = reply["relay"]
    Sandbox.objects.filter(pk=sandbox.pk).update(exposed_ports=ports)
    sandbox.exposed_ports = ports
    audit_record(org=sandbox.organization, action="sandbox.port_expose", principal=principal, request=request,
                 target_type="sandbox", target_id=sandbox.pk, metadata={"port": port})
    url, expires = signed_url(sandbox, port, expires_s)
    return {"port": port, "url": port_url(sandbox, port), "signed_url": url, "signed_url_expires_at": expires}


def port_unexpose(*, principal, sandbox: Sandbox, port: int, request=None) -> None:
    require_scope(principal, "sandboxes:write")
    if port not in (sandbox.exposed_ports or []):
        raise NotFound(f"Port {port} is not exposed.")
    ports = [p for p in sandbox.exposed_ports if p != port]
    Sandbox.objects.filter(pk=sandbox.pk).update(exposed_ports=ports)
    sandbox.exposed_ports = ports
    if sandbox.state in Sandbox.LIVE_STATES:
        dispatch.call(sandbox.agent_id, "port_unexpose", owner=sandbox.organization_id, sandbox_id=sandbox.pk,
                      port=port)
    audit_record(org=sandbox.organization, action="sandbox.port_unexpose", principal=principal, request=request,
                 target_type="sandbox", target_id=sandbox.pk, metadata={"port": port})


def relay_address(sandbox: Sandbox, port: int) -> str:
    """The sandbox's agent's relay (asked again, which also re-exposes the port, when not known here)."""
    relay = _relays.get(sandbox.agent_id)
    if relay is None:
        reply = dispatch.call(sandbox.agent_id, "port_expose", owner=sandbox.organization_id,
                              sandbox_id=sandbox.pk, port=port)
        relay = _relays[sandbox.agent_id] = reply["relay"]
    return relay


def forget_relay(agent_id: str) -> None:
    """The next `relay_address` asks the agent again (it did not answer, or forgot an exposure)."""
    _relays.pop(agent_id, None)
