"""Websockets: `/ws/executions/{id}/` streams one run; `/ws/sandboxes/{id}/` takes code and streams its runs.

Authentication, Origin and the live re-check of the principal: sandboxes/websocket_auth.py. Tenant-checked:
another organisation's id closes the socket with code 4404, exactly as a missing one.

Every client message is hostile input: text frames only, at most MEM0_MAX_WS_MESSAGE_BYTES, JSON that parses
(deep nesting included), then the same serializer as the REST API (ExecutionCreateSerializer); any refusal is
a JSON error message `{"error": {"code", "message", "details"}}` with the REST code, and costs nothing.
Output streams run as a task beside the receive loop, so a revoke or suspension closes a socket mid-run.
"""

import asyncio
import json
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from rest_framework.exceptions import ValidationError

from billing.throttling import RateLimited, request_rate_take
from mem0web.errors import Mem0Error, error_body
from sandboxes import executions, selectors
from sandboxes.serializers import ExecutionCreateSerializer
from sandboxes.stream_slots import CLOSE_TOO_MANY_STREAMS, stream_slot_take
from sandboxes.streaming import execution_events
from sandboxes.websocket_auth import SocketRefused, scope_key, socket_groups, socket_principal

CLOSE_NOT_FOUND = 4404
MAX_PENDING_RUNS = 8


class _Mem0Consumer(AsyncJsonWebsocketConsumer):
    principal = None
    slot = None
    stream_task = None
    closing = False
    joined: tuple[str, ...] = ()

    async def connect(self):
        self.key, subprotocol = scope_key(self.scope)
        try:
            self.principal = await database_sync_to_async(socket_principal)(self.scope, self.key)
            await self.load()
        except SocketRefused as exc:
            await self.close(code=exc.close_code)
            return
        except Mem0Error:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        try:
            self.slot = stream_slot_take(self.principal.org.pk)
        except RateLimited as exc:
            await self.accept(subprotocol=subprotocol)
            await self.send_json(error_body(exc.code, exc.message, exc.details))
            await self.close(code=CLOSE_TOO_MANY_STREAMS)
            return
        self.joined = tuple(socket_groups(self.principal))
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept(subprotocol=subprotocol)
        await self.started()

    async def disconnect(self, code):
        await self.release()

    async def release(self) -> None:
        """Stop streaming, leave the groups and give the stream slot back (idempotent)."""
        task, self.stream_task = self.stream_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        for group in self.joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.joined = ()
        if self.slot is not None:
            self.slot.release()

    async def refuse_and_close(self, exc: SocketRefused) -> None:
        self.closing = True
        await self.send_json(error_body(exc.code, exc.message))
        await self.release()
        await self.close(code=exc.close_code)

    async def principal_changed(self, event):
        """Group message (websocket_auth): the key or organisation changed; re-check, close if refused."""
        try:
            self.principal = await database_sync_to_async(socket_principal)(self.scope, self.key)
        except SocketRefused as exc:
            await self.refuse_and_close(exc)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        """Frames to JSON, refusing with an error message (not a 1011 and a traceback) what does not parse."""
        if text_data is None:
            await self.send_json(error_body("invalid_request", "Send JSON in text frames."))
            return
        if len(text_data) > settings.MEM0_MAX_WS_MESSAGE_BYTES:
            await self.send_json(
                error_body(
                    "payload_too_large",
                    "The message is too large.",
                    {"limit": settings.MEM0_MAX_WS_MESSAGE_BYTES},
                )
            )
            return
        try:
            content = json.loads(text_data)
        except (ValueError, RecursionError):
            await self.send_json(error_body("invalid_request", "The message is not valid JSON."))
            return
        await self.receive_json(content, **kwargs)

    async def load(self):
        raise NotImplementedError

    async def started(self):
        pass

    async def stream(self, execution_id: str, after: int = 0):
        async for event in execution_events(execution_id, after):
            if event is not None:
                await self.send_json({"execution_id": execution_id, **event})


def _after(scope) -> int:
    text = parse_qs(scope.get("query_string", b"").decode("latin1")).get("after", ["0"])[0]
    return int(text) if text.isascii() and text.isdigit() else 0


class ExecutionConsumer(_Mem0Consumer):
    async def load(self):
        self.execution = await database_sync_to_async(selectors.execution_by_id)(
            self.principal.org, self.scope["url_route"]["kwargs"]["execution_id"]
        )

    async def started(self):
        self.stream_task = asyncio.create_task(self.stream_then_close(_after(self.scope)))

    async def stream_then_close(self, after: int):
        await self.stream(self.execution.pk, after)
        await self.release()
        await self.close()


def _start_run(scope, key, sandbox_id: str, content):
    """In a worker thread: re-check the principal, take a request from its rate limit, validate as REST does,
    and start the run."""
    principal = socket_principal(scope, key)
    if not principal.can("sandboxes:write"):
        raise Mem0Error(
            "This key lacks the sandboxes:write scope.",
            code="permission_denied",
            status=403,
            details={"required_scope": "sandboxes:write"},
        )
    request_rate_take(principal)  # a run message costs what a REST request does (429 rate_limited)
    data = ExecutionCreateSerializer(data=content if isinstance(content, dict) else {})
    data.is_valid(raise_exception=True)
    execution = executions.execution_start(
        principal=principal,
        sandbox_id=sandbox_id,
        code=data.validated_data["code"],
        timeout_s=data.validated_data.get("timeout_s"),
        stdin=data.validated_data.get("stdin"),
    )
    return principal, execution


class SandboxConsumer(_Mem0Consumer):
    """Send `{"code": "...", "timeout_s"?: n}`; receive `{"type": "started", "execution_id"}`, events, exit.

    Messages are taken in order by one task per socket (a run streams to its exit before the next starts),
    at most MAX_PENDING_RUNS waiting; the receive loop stays free for the principal's group messages."""

    async def load(self):
        self.sandbox = await database_sync_to_async(selectors.sandbox_by_id)(
            self.principal.org, self.scope["url_route"]["kwargs"]["sandbox_id"]
        )

    async def started(self):
        self.pending = asyncio.Queue(maxsize=MAX_PENDING_RUNS)
        self.stream_task = asyncio.create_task(self.take_runs())

    async def receive_json(self, content, **kwargs):
        try:
            self.pending.put_nowait(content)
        except asyncio.QueueFull:
            await self.send_json(
                error_body(
                    "rate_limited",
                    f"At most {MAX_PENDING_RUNS} runs may wait on a socket.",
                    {"limit": MAX_PENDING_RUNS},
                )
            )

    async def take_runs(self):
        while not self.closing:
            await self.run(await self.pending.get())

    async def run(self, content) -> None:
        try:
            self.principal, execution = await database_sync_to_async(_start_run)(
                self.scope, self.key, self.sandbox.pk, content
            )
        except SocketRefused as exc:
            await self.refuse_and_close(exc)
            return
        except ValidationError as exc:
            await self.send_json(
                error_body("invalid_request", "The request is not valid.", {"fields": exc.detail})
            )
            return
        except Mem0Error as exc:
            await self.send_json(error_body(exc.code, exc.message, exc.details))
            return
        await self.send_json({"type": "started", "execution_id": execution.pk})
        try:
            await self.stream(execution.pk)
        finally:
            await database_sync_to_async(executions.execution_refresh)(execution)
