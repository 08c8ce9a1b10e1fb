"""Who a websocket acts for: resolved at connect, again on every message, and at once when accounts says it changed.

Credentials: an API key in the `Authorization` header, a `mem0.key.<key>` subprotocol (browsers cannot set
headers) or a `key` query parameter; without one, the console's session cookie.

Origin (finding 13): a browser sends the session cookie to our host from any page, so a socket with cookies
and without a key must come from one of ALLOWED_HOSTS (Channels' `AllowedHostsOriginValidator`; no Origin at
all is refused too), or a sibling site could open it as the signed-in user. A socket that names a key
carries its own credential, which no other site holds: any Origin, or none (SDKs, the CLI), is fine; and a
key, even a bad one, is never topped up with the session (a bad key is refused, 4401).

Live sockets (finding 9): the principal is resolved again on each message a client sends (the key cache's
per-process copy lives LOCAL_TTL_S = 1 s, and a revoke leaves a tombstone in the shared cache, so another
process sees it within a second). On top of that, `accounts.signals.principal_changed` (key revoked,
organisation suspended, plan or quota changed) becomes a channel-layer group message to `ws-key-<prefix>` or
`ws-org-<id>` once the change commits; each socket in the group re-checks at once and closes if refused.
Bounds: a revoke, suspension or plan/override change closes (or re-limits) sockets as soon as the channel
layer delivers the group message; if that message is lost (channel layer down), at the socket's next message
(stale by at most LOCAL_TTL_S). A key's expiry sends nothing: it takes effect at the next message. A run
already started when its key is revoked is not killed: the socket closes, the run ends at its own timeout.
"""

import logging
from urllib.parse import parse_qs

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.security.websocket import AllowedHostsOriginValidator
from django.db import transaction
from django.dispatch import receiver
from rest_framework.exceptions import AuthenticationFailed

from accounts.authentication import principal_for_key, principal_for_session
from accounts.principal import Principal
from accounts.signals import principal_changed

log = logging.getLogger("mem0.websockets")

KEY_SUBPROTOCOL = "mem0.key."
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


class SocketRefused(Exception):
    """The socket may not (or may no longer) act: `code` is the API error code, `close_code` the websocket's."""

    def __init__(self, code: str, message: str, close_code: int):
        super().__init__(message)
        self.code, self.message, self.close_code = code, message, close_code


def scope_key(scope) -> tuple[str | None, str | None]:
    """(api key, chosen subprotocol) from the header, the subprotocols or the query string."""
    headers = dict(scope.get("headers") or [])
    auth = headers.get(b"authorization", b"").decode("latin1")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip(), None
    for proto in scope.get("subprotocols") or []:
        if proto.startswith(KEY_SUBPROTOCOL):
            return proto[len(KEY_SUBPROTOCOL) :], proto
    query = parse_qs(scope.get("query_string", b"").decode("latin1"))
    return (query["key"][0], None) if "key" in query else (None, None)


def socket_principal(scope, key: str | None) -> Principal:
    """The principal a socket acts for now, or SocketRefused; reads the database (call it off the event loop)."""
    if key:
        try:
            principal = principal_for_key(key)
        except AuthenticationFailed as exc:
            raise SocketRefused(
                getattr(exc, "mem0_code", "authentication_failed"), str(exc.detail), CLOSE_UNAUTHENTICATED
            ) from None
    else:
        user, session = scope.get("user"), scope.get("session")
        principal = None
        # The session must still exist: signing out (or an operator deleting it) ends its sockets too.
        if (
            user is not None
            and user.is_authenticated
            and session is not None
            and session.session_key
            and session.exists(session.session_key)
        ):
            principal = principal_for_session(user, session.get("org_id"))
        if principal is None:
            raise SocketRefused(
                "authentication_failed", "Sign in, or send an API key.", CLOSE_UNAUTHENTICATED
            )
    if principal.org.suspended:
        raise SocketRefused("organization_suspended", "This organisation is suspended.", CLOSE_FORBIDDEN)
    if not principal.can("sandboxes:read"):
        raise SocketRefused("permission_denied", "This key lacks the sandboxes:read scope.", CLOSE_FORBIDDEN)
    return principal


def key_group(prefix: str) -> str:
    return f"ws-key-{prefix}"


def org_group(org_id: int) -> str:
    return f"ws-org-{org_id}"


def socket_groups(principal: Principal) -> list[str]:
    """The channel-layer groups a socket joins so that a change to its principal reaches it."""
    groups = [org_group(principal.org.pk)]
    if principal.key is not None:
        groups.append(key_group(principal.key.prefix))
    return groups


class SessionOriginValidator:
    """ASGI middleware: a socket that carries cookies and no API key (so would act with the console session)
    must come from an allowed Origin; one with a key, or with no cookie at all, has no ambient credential."""

    def __init__(self, application):
        self.application = application
        self.checked = AllowedHostsOriginValidator(application)

    async def __call__(self, scope, receive, send):
        cookies = any(name == b"cookie" for name, _ in scope.get("headers") or [])
        if scope["type"] == "websocket" and (scope_key(scope)[0] or not cookies):
            return await self.application(scope, receive, send)
        return await self.checked(scope, receive, send)


@receiver(principal_changed)
def _tell_sockets(sender, key_prefix: str | None = None, org_id: int | None = None, **kwargs) -> None:
    """Once the change commits, ask the sockets of that key or organisation to re-check their principal."""
    group = key_group(key_prefix) if key_prefix else org_group(org_id)

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            async_to_sync(layer.group_send)(group, {"type": "principal.changed"})
        except Exception:  # the per-message re-check still refuses within LOCAL_TTL_S
            log.warning("event=principal_changed_not_sent group=%s", group, exc_info=True)

    transaction.on_commit(send)
