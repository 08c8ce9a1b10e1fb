"""The ASGI handler Mem0 serves HTTP with: one hop to a reused worker thread per request.

Stock Django ASGI, for a sync project like ours, spends most of a request on the event loop: a new
thread-sensitive executor (a new thread) per request, a hop each for the request_started and
request_finished signals and for every MiddlewareMixin hook, and two asyncio tasks to watch for a
disconnect (py-spy: a bare 404 cost 2.5 ms against 0.6 ms for Daphne alone). Here the body is read on the
loop, then signals, middleware chain, view and, for ordinary responses, `close()` (request_finished, which
hands the database connection back to the pool) run in one call on a long-lived worker thread, and the
loop only writes the bytes. Streaming responses (SSE) take Django's own disconnect-aware path.

`after_response(request, fn)` lets a view finish bookkeeping off the response's critical path: `fn` runs in
the same worker thread once the response has been handed to the event loop, while the loop sends it (a
run's result is recorded as the client receives it, and even if the client has gone). Where no
Mem0ASGIHandler serves the request (tests' client, WSGI) `fn` runs at once.
"""

import asyncio
import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.db import connections
from django.http import HttpResponse
from django.urls import set_script_prefix

from mem0web.bodylimit import BodyCap, too_large_json
from mem0web.errors import PayloadTooLarge

log = logging.getLogger("mem0.web")


def after_response(request, fn) -> None:
    """Run `fn()` once the response to `request` (a Django or DRF request) is handed over for sending."""
    callbacks = getattr(request, "mem0_after_response", None)
    if callbacks is None:
        fn()
    else:
        callbacks.append(fn)


def _settle(future: asyncio.Future, result, exc) -> None:
    if future.done():  # the request's task was cancelled (client gone)
        if getattr(result, "streaming", False):  # never sent: close it, so it gives back what it holds
            asyncio.get_running_loop().run_in_executor(None, result.close)
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


class Mem0ASGIHandler(ASGIHandler):
    def __init__(self):
        super().__init__()
        self.load_middleware(is_async=False)
        # A run with wait=true holds its thread (not its database connection) until the run ends, so the
        # pool is sized for many waiting requests; threads start on demand.
        self.executor = ThreadPoolExecutor(max_workers=settings.MEM0_WEB_THREADS, thread_name_prefix="request")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        cap = BodyCap(scope["path"])
        try:
            body_file = await self.read_capped_body(scope, receive, cap)
        except RequestAborted:
            return
        except PayloadTooLarge:
            response = HttpResponse(too_large_json(cap.limit), status=413, content_type="application/json")
            response["Connection"] = "close"
            await self.send_response(response, send)
            return
        try:
            loop = asyncio.get_running_loop()
            answered = loop.create_future()
            self.executor.submit(self.respond_then_finish, loop, answered, scope, body_file)
            response = await answered
            if response.streaming:
                async with ThreadSensitiveContext():
                    await self.stream(response, receive, send)
            else:
                await self.send_response(response, send)
        finally:
            body_file.close()

    async def read_capped_body(self, scope, receive, cap: BodyCap):
        """Django's read_body, refusing (PayloadTooLarge) a declared length over the cap before reading
        anything and a body that grows past it as soon as it does (mem0web/bodylimit.py)."""
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and not cap.allows(int(declared)):
            raise PayloadTooLarge()
        body_file = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b")
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                body_file.close()
                raise RequestAborted()
            chunk = message.get("body", b"")
            size += len(chunk)
            if not cap.allows(size):
                body_file.close()
                raise PayloadTooLarge()
            body_file.write(chunk)
            if not message.get("more_body", False):
                break
        body_file.seek(0)
        return body_file

    def respond_then_finish(self, loop, answered: asyncio.Future, scope, body_file) -> None:
        """In the worker thread: answer, hand the response to the event loop, then run the request's
        after-response callbacks in the same thread (no second hop; the loop sends meanwhile)."""
        try:
            response, callbacks = self.respond(scope, body_file)
        except BaseException as exc:
            loop.call_soon_threadsafe(_settle, answered, None, exc)
            return
        loop.call_soon_threadsafe(_settle, answered, response, None)
        if callbacks:
            self.run_after(callbacks)

    def respond(self, scope, body_file):
        """Everything Django does for a request, synchronously, in the worker thread."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        callbacks = []
        if request is not None:
            request.mem0_after_response = callbacks
        response = error_response if request is None else self.get_response(request)
        if not response.streaming:
            response.close()  # the body is in memory; release the request's resources before sending it
        return response, callbacks

    @staticmethod
    def run_after(callbacks) -> None:
        try:
            for fn in callbacks:
                try:
                    fn()
                except Exception:
                    log.exception("event=after_response_failed")
        finally:
            connections.close_all()  # back to the pool, as request_finished did for the response

    async def stream(self, response, receive, send):
        """Send a streaming response, stopping when the client goes away; then close it."""
        sending = asyncio.create_task(self.send_response(response, send))
        watching = asyncio.create_task(self.listen_for_disconnect(receive))
        await asyncio.wait([sending, watching], return_when=asyncio.FIRST_COMPLETED)
        for task in (watching, sending):
            if not task.done():
                task.cancel()
            try:
                await task
            except (asyncio.CancelledError, RequestAborted):
                pass
        await sync_to_async(response.close)()
