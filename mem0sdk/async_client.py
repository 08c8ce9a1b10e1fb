"""`AsyncMem0`: the asyncio client (httpx.AsyncClient), the same surface as `Mem0` with awaitable calls.

Lists and streams are async iterators: `async for sandbox in client.sandboxes.list()`,
`async for item in sandbox.stream(code)`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from mem0sdk import transport
from mem0sdk.errors import Mem0ConnectionError, Mem0Error, NotFoundError
from mem0sdk.models import (
    AsyncSandbox,
    Execution,
    ExitEvent,
    FileEntry,
    Lineage,
    OutputEvent,
    Result,
    ResultEvent,
    Runtime,
    Snapshot,
    WatchEvent,
)
from mem0sdk.transport import api_path


class AsyncMem0:
    """The asyncio Mem0 client; arguments and defaults as for `Mem0`. Use `async with` or `await close()`."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        http_client: httpx.AsyncClient | None = None,
    ):
        self.settings = transport.Settings.resolve(api_key, base_url, timeout, max_retries)
        self._http = http_client or httpx.AsyncClient(**self.settings.client_options())
        self.sandboxes = AsyncSandboxes(self)
        self.executions = AsyncExecutions(self)
        self.snapshots = AsyncSnapshots(self)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncMem0:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """As `Mem0.request`: retries where safe, typed errors; streamed responses must be closed."""
        request = self._http.build_request(
            method,
            path,
            params=params,
            json=json,
            content=content,
            headers=headers,
            timeout=timeout or httpx.USE_CLIENT_DEFAULT,
        )
        retries = self.settings.max_retries if transport.may_retry(method, headers) else 0
        attempt = 0
        while True:
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                error: Mem0Error = transport.connection_error(exc)
            else:
                if response.is_success:
                    return response
                await response.aread()
                await response.aclose()
                error = transport.error_from_response(response)
            if attempt >= retries or not transport.retryable(error):
                raise error
            await asyncio.sleep(transport.backoff(attempt, error))
            attempt += 1

    async def get_json(self, path: str, params: dict | None = None) -> Any:
        return transport.json_or_none(await self.request("GET", path, params=params))

    async def paginate(self, path: str, params: dict[str, str]) -> AsyncIterator[dict]:
        page_params: dict[str, str] | None = params
        while page_params is not None:
            page = await self.get_json(path, page_params)
            for item in page.get("results", []):
                yield item
            page_params = transport.next_page_params(page.get("next"))

    async def me(self) -> dict:
        return await self.get_json(api_path("me"))

    async def usage(self) -> dict:
        return await self.get_json(api_path("usage"))

    async def runtimes(self) -> list[Runtime]:
        return [Runtime.from_json(r) for r in (await self.get_json(api_path("runtimes"))).get("runtimes", [])]


class AsyncSandboxes:
    def __init__(self, client: AsyncMem0):
        self._client = client

    def _sandbox(self, data: dict) -> AsyncSandbox:
        return AsyncSandbox.from_json(data, client=self._client)

    async def create(
        self,
        runtime: str = "python",
        env: dict[str, str] | None = None,
        metadata: dict[str, str] | None = None,
        timeout_s: float | None = None,
        idempotency_key: str | None = None,
    ) -> AsyncSandbox:
        response = await self._client.request(
            "POST",
            api_path("sandboxes"),
            json=transport.create_body(runtime, env, metadata, timeout_s),
            headers=transport.idempotency_headers(idempotency_key),
        )
        return self._sandbox(response.json())

    async def get(self, sandbox_id: str) -> AsyncSandbox:
        return self._sandbox(await self._client.get_json(api_path("sandboxes", sandbox_id)))

    async def list(
        self,
        state: str | None = None,
        runtime: str | None = None,
        metadata: dict[str, str] | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[AsyncSandbox]:
        params = transport.sandbox_list_params(state, runtime, metadata, page_size)
        async for item in self._client.paginate(api_path("sandboxes"), params):
            yield self._sandbox(item)

    async def kill(self, sandbox_id: str) -> AsyncSandbox:
        return self._sandbox((await self._client.request("DELETE", api_path("sandboxes", sandbox_id))).json())

    async def pause(self, sandbox_id: str) -> AsyncSandbox:
        return self._sandbox((await self._client.request("POST", api_path("sandboxes", sandbox_id, "pause"))).json())

    async def resume(self, sandbox_id: str) -> AsyncSandbox:
        return self._sandbox((await self._client.request("POST", api_path("sandboxes", sandbox_id, "resume"))).json())

    async def set_timeout(self, sandbox_id: str, timeout_s: float) -> AsyncSandbox:
        response = await self._client.request("PATCH", api_path("sandboxes", sandbox_id), json={"timeout_s": timeout_s})
        return self._sandbox(response.json())

    async def fork(self, sandbox_id: str, idempotency_key: str | None = None) -> AsyncSandbox:
        response = await self._client.request(
            "POST",
            api_path("sandboxes", sandbox_id, "fork"),
            headers=transport.idempotency_headers(idempotency_key),
        )
        return self._sandbox(response.json())

    async def run(
        self,
        sandbox_id: str,
        code: str,
        timeout_s: float | None = None,
        *,
        stdin: str | None = None,
        on_stdout: Callable[[str], Any] | None = None,
        on_stderr: Callable[[str], Any] | None = None,
        on_result: Callable[[Result], Any] | None = None,
    ) -> Execution:
        """Run code and wait for the result (the request stays open for the run). With a callback the run
        is streamed instead and each callback gets its output chunks or `Result`s as they arrive."""
        if on_stdout or on_stderr or on_result:
            execution = await self.start(sandbox_id, code, timeout_s, stdin=stdin)
            async for event in self._client.executions.events(execution.id):
                transport.deliver(event, on_stdout, on_stderr, on_result)
            return await self._client.executions.get(execution.id)
        response = await self._client.request(
            "POST",
            api_path("sandboxes", sandbox_id, "executions"),
            json=transport.run_body(code, timeout_s, wait=True, stdin=stdin),
            timeout=transport.run_timeout(self._client.settings.timeout, timeout_s),
        )
        return Execution.from_json(response.json())

    async def start(
        self, sandbox_id: str, code: str, timeout_s: float | None = None, *, stdin: str | None = None
    ) -> Execution:
        response = await self._client.request(
            "POST",
            api_path("sandboxes", sandbox_id, "executions"),
            json=transport.run_body(code, timeout_s, wait=False, stdin=stdin),
        )
        return Execution.from_json(response.json())

    async def stream(
        self, sandbox_id: str, code: str, timeout_s: float | None = None, *, stdin: str | None = None
    ) -> AsyncIterator[OutputEvent | ResultEvent | Execution]:
        execution = await self.start(sandbox_id, code, timeout_s, stdin=stdin)
        async for event in self._client.executions.events(execution.id):
            if isinstance(event, OutputEvent | ResultEvent):
                yield event
        yield await self._client.executions.get(execution.id)

    async def snapshot(
        self, sandbox_id: str, name: str | None = None, idempotency_key: str | None = None
    ) -> Snapshot:
        response = await self._client.request(
            "POST",
            api_path("sandboxes", sandbox_id, "snapshots"),
            json={"name": name} if name else {},
            headers=transport.idempotency_headers(idempotency_key),
        )
        return Snapshot.from_json(response.json())

    def files(self, sandbox_id: str) -> AsyncSandboxFiles:
        return AsyncSandboxFiles(self._client, sandbox_id)


class AsyncSandboxFiles:
    def __init__(self, client: AsyncMem0, sandbox_id: str):
        self._client, self.sandbox_id = client, sandbox_id

    async def list(self, path: str = "", depth: int = 1) -> list[FileEntry]:
        params = {"path": path, **({"depth": str(depth)} if depth != 1 else {})}
        body = await self._client.get_json(api_path("sandboxes", self.sandbox_id, "files"), params)
        return [FileEntry.from_json(e) for e in body.get("entries", [])]

    async def read(self, path: str) -> bytes:
        return (
            await self._client.request("GET", api_path("sandboxes", self.sandbox_id, "files", path))
        ).content

    async def read_text(self, path: str) -> str:
        body = await self._client.get_json(
            api_path("sandboxes", self.sandbox_id, "fs", "text"), {"path": path}
        )
        return body["text"]

    async def stat(self, path: str) -> FileEntry:
        return FileEntry.from_json(
            await self._client.get_json(api_path("sandboxes", self.sandbox_id, "fs", "stat"), {"path": path})
        )

    async def exists(self, path: str) -> bool:
        try:
            await self.stat(path)
        except NotFoundError:
            return False
        return True

    async def make_dir(self, path: str, parents: bool = True) -> FileEntry:
        response = await self._client.request(
            "POST",
            api_path("sandboxes", self.sandbox_id, "fs", "mkdir"),
            json={"path": path, "parents": parents},
        )
        return FileEntry.from_json(response.json())

    async def rename(self, source: str, destination: str, overwrite: bool = False) -> FileEntry:
        response = await self._client.request(
            "POST",
            api_path("sandboxes", self.sandbox_id, "fs", "move"),
            json={"source": source, "destination": destination, "overwrite": overwrite},
        )
        return FileEntry.from_json(response.json())

    move = rename

    async def watch(
        self, path: str = "", recursive: bool = True, timeout_s: int | None = None
    ) -> AsyncIterator[WatchEvent]:
        """As `SandboxFiles.watch`."""
        response = await self._client.request(
            "GET",
            api_path("sandboxes", self.sandbox_id, "fs", "watch"),
            params=transport.watch_params(path, recursive, timeout_s),
            headers={"Accept": transport.SSE_ACCEPT},
            stream=True,
            timeout=transport.stream_timeout(self._client.settings.timeout),
        )
        try:
            decoder = transport.SSEDecoder()
            async for line in response.aiter_lines():
                event = transport.decode_watch_event(decoder, line)
                if event is not None:
                    yield event
                    if event.type == "end":
                        return
        finally:
            await response.aclose()

    async def write(self, path: str, data: bytes | str) -> int:
        content = data.encode() if isinstance(data, str) else bytes(data)
        await self._client.request(
            "PUT",
            api_path("sandboxes", self.sandbox_id, "files", path),
            content=content,
            headers={"Content-Type": "application/octet-stream"},
        )
        return len(content)

    async def delete(self, path: str, recursive: bool = True) -> None:
        params = None if recursive else {"recursive": "false"}
        await self._client.request(
            "DELETE", api_path("sandboxes", self.sandbox_id, "files", path), params=params
        )


class AsyncExecutions:
    def __init__(self, client: AsyncMem0):
        self._client = client

    async def get(self, execution_id: str) -> Execution:
        return Execution.from_json(await self._client.get_json(api_path("executions", execution_id)))

    async def cancel(self, execution_id: str) -> Execution:
        """Interrupt a running execution and keep its sandbox (and its state, where the code honours the
        interrupt); returns it `cancelled`. ConflictError if it had already ended."""
        return Execution.from_json(
            (await self._client.request("POST", api_path("executions", execution_id, "cancel"))).json()
        )

    async def events(self, execution_id: str, after: int = 0) -> AsyncIterator[OutputEvent | ExitEvent]:
        """As `Executions.events`: live SSE, resumed from the last sequence after a dropped connection."""
        last, failures = after, 0
        while True:
            try:
                async for event in self._connect(execution_id, last):
                    last, failures = event.seq, 0
                    yield event
                    if isinstance(event, ExitEvent):
                        return
                error = Mem0ConnectionError("connection_error", "The event stream ended before the run did.")
            except httpx.TransportError as exc:
                error = transport.connection_error(exc)
            except Mem0ConnectionError as exc:
                error = exc
            failures += 1
            if failures > transport.STREAM_RECONNECTS:
                raise error
            await asyncio.sleep(transport.reconnect_delay(failures))

    async def _connect(self, execution_id: str, after: int) -> AsyncIterator[OutputEvent | ExitEvent]:
        response = await self._client.request(
            "GET",
            api_path("executions", execution_id, "events"),
            params={"after": after},
            headers={"Accept": transport.SSE_ACCEPT},
            stream=True,
            timeout=transport.stream_timeout(self._client.settings.timeout),
        )
        try:
            decoder = transport.SSEDecoder()
            async for line in response.aiter_lines():
                event = transport.decode_event(decoder, line)
                if event is not None and event.seq > after:
                    yield event
        finally:
            await response.aclose()


class AsyncSnapshots:
    def __init__(self, client: AsyncMem0):
        self._client = client

    async def get(self, snapshot_id: str) -> Snapshot:
        return Snapshot.from_json(await self._client.get_json(api_path("snapshots", snapshot_id)))

    async def list(
        self, sandbox_id: str | None = None, tag: str | None = None, page_size: int | None = None
    ) -> AsyncIterator[Snapshot]:
        params = transport.snapshot_list_params(sandbox_id, tag, page_size)
        async for item in self._client.paginate(api_path("snapshots"), params):
            yield Snapshot.from_json(item)

    async def restore(self, snapshot_id: str, idempotency_key: str | None = None) -> AsyncSandbox:
        response = await self._client.request(
            "POST",
            api_path("snapshots", snapshot_id, "restore"),
            headers=transport.idempotency_headers(idempotency_key),
        )
        return AsyncSandbox.from_json(response.json(), client=self._client)

    async def delete(self, snapshot_id: str) -> None:
        await self._client.request("DELETE", api_path("snapshots", snapshot_id))

    async def tag(self, snapshot_id: str, tag: str) -> Snapshot:
        response = await self._client.request("PUT", api_path("snapshots", snapshot_id, "tags", tag))
        body = transport.json_or_none(response)
        return (
            Snapshot.from_json(body)
            if isinstance(body, dict) and "id" in body
            else await self.get(snapshot_id)
        )

    async def lineage(self, snapshot_id: str) -> Lineage:
        return Lineage.from_json(await self._client.get_json(api_path("snapshots", snapshot_id, "lineage")))
