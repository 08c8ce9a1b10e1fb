"""Websockets: `/ws/executions/{id}/` streams one run; `/ws/sandboxes/{id}/` takes code and streams its runs.

Authentication: the console's session, or an API key in the `Authorization` header, a `key` query
parameter, or a `mem0.key.<key>` subprotocol (browsers cannot set headers). Tenant-checked: another
organisation's id closes the socket with code 4404, exactly as a missing one.
"""

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from rest_framework.exceptions import AuthenticationFailed

from accounts.authentication import principal_for_key, principal_for_session
from mem0web.errors import Mem0Error, error_body
from sandboxes import executions, selectors
from sandboxes.streaming import execution_events

KEY_SUBPROTOCOL = "mem0.key."


def _scope_key(scope) -> tuple[str | None, str | None]:
    """(api key, chosen subprotocol) from the header, the subprotocols or the query string."""
    headers = dict(scope.get("headers") or [])
    auth = headers.get(b"authorization", b"").decode()
    if auth.lower().startswith("bearer "):
        return auth[7:].strip(), None
    for proto in scope.get("subprotocols") or []:
        if proto.startswith(KEY_SUBPROTOCOL):
            return proto[len(KEY_SUBPROTOCOL):], proto
    query = parse_qs(scope.get("query_string", b"").decode())
    return (query["key"][0], None) if "key" in query else (None, None)


def _principal(scope, key: str | None):
    if key:
        return principal_for_key(key)
    user = scope.get("user")
    if user is not None and user.is_authenticated:
        session = scope.get("session") or {}
        return principal_for_session(user, session.get("org_id"))
    return None


class _Mem0Consumer(AsyncJsonWebsocketConsumer):
    principal = None

    async def connect(self):
        key, subprotocol = _scope_key(self.scope)
        try:
            self.principal = await database_sync_to_async(_principal)(self.scope, key)
        except AuthenticationFailed:
            self.principal = None
        if self.principal is None or self.principal.org.suspended or not self.principal.can("sandboxes:read"):
            await self.close(code=4401)
            return
        try:
            await self.load()
        except Mem0Error:
            await self.close(code=4404)
            return
        await self.accept(subprotocol=subprotocol)
        await self.started()

    async def load(self):
        raise NotImplementedError

    async def started(self):
        pass

    async def stream(self, execution_id: str, after: int = 0):
        async for event in execution_events(execution_id, after):
            if event is not None:
                await self.send_json({"execution_id": execution_id, **event})


class ExecutionConsumer(_Mem0Consumer):
    async def load(self):
        self.execution = await database_sync_to_async(selectors.execution_by_id)(self.principal.org,
                                                                       self.scope["url_route"]["kwargs"]["execution_id"])

    async def started(self):
        query = parse_qs(self.scope.get("query_string", b"").decode())
        after = int(query.get("after", ["0"])[0]) if query.get("after", ["0"])[0].isdigit() else 0
        await self.stream(self.execution.pk, after)
        await self.close()


class SandboxConsumer(_Mem0Consumer):
    """Send `{"code": "...", "timeout_s"?: n}`; receive `{"type": "started", "execution_id"}`, events, exit."""

    async def load(self):
        self.sandbox = await database_sync_to_async(selectors.sandbox_by_id)(self.principal.org,
                                                                   self.scope["url_route"]["kwargs"]["sandbox_id"])

    async def receive_json(self, content, **kwargs):
        if not isinstance(content, dict) or not isinstance(content.get("code"), str):
            await self.send_json(error_body("invalid_request", 'Send {"code": "..."}.'))
            return
        if not self.principal.can("sandboxes:write"):
            await self.send_json(error_body("permission_denied", "This key lacks the sandboxes:write scope."))
            return
        try:
            execution = await database_sync_to_async(executions.execution_start)(
                principal=self.principal, sandbox_id=self.sandbox.pk, code=content["code"],
                timeout_s=content.get("timeout_s"))
        except Mem0Error as exc:
            await self.send_json(error_body(exc.code, exc.message, exc.details))
            return
        await self.send_json({"type": "started", "execution_id": execution.pk})
        await self.stream(execution.pk)
        await database_sync_to_async(executions.execution_refresh)(execution)
