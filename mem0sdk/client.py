"""`Mem0`: the synchronous client (httpx.Client). `AsyncMem0` in async_client.py mirrors it method for method."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from mem0sdk import transport
from mem0sdk.errors import Mem0ConnectionError, Mem0Error, NotFoundError
from mem0sdk.models import (
    Execution,
    ExitEvent,
    FileEntry,
    Lineage,
    OutputEvent,
    Result,
    ResultEvent,
    Runtime,
    Sandbox,
    Snapshot,
    WatchEvent,
)
from mem0sdk.transport import api_path


class Mem0:
    """A Mem0 API client. Thread-safe; reuse one per process. Use as a context manager or call `close()`.

    api_key defaults to $MEM0_API_KEY, base_url to $MEM0_BASE_URL (else http://127.0.0.1:8000);
    timeout is seconds per request (a waiting `run` adds its own run time); max_retries applies to
    rate_limited / agents_unavailable / connection failures on calls that are safe to repeat.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        http_client: httpx.Client | None = None,
    ):
        self.settings = transport.Settings.resolve(api_key, base_url, timeout, max_retries)
        self._http = http_client or httpx.Client(**self.settings.client_options())
        self.sandboxes = Sandboxes(self)
        self.executions = Executions(self)
        self.snapshots = Snapshots(self)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Mem0:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(
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
        """Send one API call with retries; raise the typed error of a non-2xx answer. Streamed
        responses are returned unread and must be closed by the caller."""
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
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                error: Mem0Error = transport.connection_error(exc)
            else:
                if response.is_success:
                    return response
                response.read()
                response.close()
                error = transport.error_from_response(response)
            if attempt >= retries or not transport.retryable(error):
                raise error
            time.sleep(transport.backoff(attempt, error))
            attempt += 1

    def get_json(self, path: str, params: dict | None = None) -> Any:
        return transport.json_or_none(self.request("GET", path, params=params))

    def paginate(self, path: str, params: dict[str, str]) -> Iterator[dict]:
        """Every item of a cursor-paginated list, fetching the next page only when needed."""
        page_params: dict[str, str] | None = params
        while page_params is not None:
            page = self.get_json(path, page_params)
            yield from page.get("results", [])
            page_params = transport.next_page_params(page.get("next"))

    def me(self) -> dict:
        """The key's organisation, plan, effective limits, role and scopes."""
        return self.get_json(api_path("me"))

    def usage(self) -> dict:
        """This period's usage per metric (`used`, `limit`)."""
        return self.get_json(api_path("usage"))

    def runtimes(self) -> list[Runtime]:
        return [Runtime.from_json(r) for r in self.get_json(api_path("runtimes")).get("runtimes", [])]


class Sandboxes:
    """client.sandboxes: create, get, list, kill, and the per-sandbox calls that `Sandbox` delegates to."""

    def __init__(self, client: Mem0):
        self._client = client

    def _sandbox(self, data: dict) -> Sandbox:
        return Sandbox.from_json(data, client=self._client)

    def create(
        self,
        runtime: str = "python",
        env: dict[str, str] | None = None,
        metadata: dict[str, str] | None = None,
        timeout_s: float | None = None,
        idempotency_key: str | None = None,
    ) -> Sandbox:
        """Start a sandbox (from the warm pool). timeout_s caps its lifetime (the plan's maximum otherwise)."""
        response = self._client.request(
            "POST",
            api_path("sandboxes"),
            json=transport.create_body(runtime, env, metadata, timeout_s),
            headers=transport.idempotency_headers(idempotency_key),
        )
        return self._sandbox(response.json())

    def get(self, sandbox_id: str) -> Sandbox:
        return self._sandbox(self._client.get_json(api_path("sandboxes", sandbox_id)))

    def list(
        self,
        state: str | None = None,
        runtime: str | None = None,
        metadata: dict[str, str] | None = None,
        page_size: int | None = None,
    ) -> Iterator[Sandbox]:
        """All matching sandboxes, newest first, across every page (lazily)."""
        params = transport.sandbox_list_params(state, runtime, metadata, page_size)
        return (self._sandbox(item) for item in self._client.paginate(api_path("sandboxes"), params))

    def kill(self, sandbox_id: str) -> Sandbox:
        """Stop a sandbox; killing a stopped one is not an error."""
        return self._sandbox(self._client.request("DELETE", api_path("sandboxes", sandbox_id)).json())

    def pause(self, sandbox_id: str) -> Sandbox:
        """Freeze the sandbox between runs with its memory kept (idempotent)."""
        return self._sandbox(self._client.request("POST", api_path("sandboxes", sandbox_id, "pause")).json())

    def resume(self, sandbox_id: str) -> Sandbox:
        return self._sandbox(self._client.request("POST", api_path("sandboxes", sandbox_id, "resume")).json())

    def set_timeout(self, sandbox_id: str, timeout_s: float) -> Sandbox:
        """The sandbox ends `timeout_s` seconds from now (within the plan's maximum lifetime)."""
        response = self._client.request("PATCH", api_path("sandboxes", sandbox_id), json={"timeout_s": timeout_s})
        return self._sandbox(response.json())

    def fork(self, sandbox_id: str, idempotency_key: str | None = None) -> Sandbox:
        response = self._client.request(
            "POST",
            api_path("sandboxes", sandbox_id, "fork"),
            headers=transport.idempotency_headers(idempotency_key),
        )
        return self._sandbox(response.json())

    def run(
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
            execution = self.start(sandbox_id, code, timeout_s, stdin=stdin)
            for event in self._client.executions.events(execution.id):
                transport.deliver(event, on_stdout, on_stderr, on_result)
            return self._client.executions.get(execution.id)
        response = self._client.request(
            "POST",
            api_path("sandboxes", sandbox_id, "executions"),
            json=transport.run_body(code, timeout_s, wait=True, stdin=stdin),
            timeout=transport.run_timeout(self._client.settings.timeout, timeout_s),
        )
        return Execution.from_json(response.json())

    def start(
        self, sandbox_id: str, code: str, timeout_s: float | None = None, *, stdin: str | None = None
    ) -> Execution:
        """Start a run and return at once (status `running`); follow it with client.executions.events()."""
        response = self._client.request(
            "POST",
            api_path("sandboxes", sandbox_id, "executions"),
            json=transport.run_body(code, timeout_s, wait=False, stdin=stdin),
        )
        return Execution.from_json(response.json())

    def stream(
        self, sandbox_id: str, code: str, timeout_s: float | None = None, *, stdin: str | None = None
    ) -> Iterator[OutputEvent | ResultEvent | Execution]:
        """Start a run, yield each OutputEvent as it is produced, then the finished Execution.

        The run starts when iteration does (this is a generator); a dropped stream is resumed, see events()."""
        execution = self.start(sandbox_id, code, timeout_s, stdin=stdin)
        for event in self._client.executions.events(execution.id):
            if isinstance(event, OutputEvent | ResultEvent):
                yield event
        yield self._client.executions.get(execution.id)

    def snapshot(
        self, sandbox_id: str, name: str | None = None, idempotency_key: str | None = None
    ) -> Snapshot:
        response = self._client.request(
            "POST",
            api_path("sandboxes", sandbox_id, "snapshots"),
            json={"name": name} if name else {},
            headers=transport.idempotency_headers(idempotency_key),
        )
        return Snapshot.from_json(response.json())

    def files(self, sandbox_id: str) -> SandboxFiles:
        return SandboxFiles(self._client, sandbox_id)


class SandboxFiles:
    """sandbox.files: the workspace (/workspace) of one sandbox; paths are relative to it."""

    def __init__(self, client: Mem0, sandbox_id: str):
        self._client, self.sandbox_id = client, sandbox_id

    def list(self, path: str = "", depth: int = 1) -> list[FileEntry]:
        """The directory's entries, and with `depth` > 1 those of its subdirectories that many levels down
        (symlinks are listed, never followed), sorted by path."""
        params = {"path": path, **({"depth": str(depth)} if depth != 1 else {})}
        body = self._client.get_json(api_path("sandboxes", self.sandbox_id, "files"), params)
        return [FileEntry.from_json(e) for e in body.get("entries", [])]

    def read(self, path: str) -> bytes:
        return self._client.request("GET", api_path("sandboxes", self.sandbox_id, "files", path)).content

    def read_text(self, path: str) -> str:
        """The file as UTF-8 text; a file that is not raises Mem0Error code `not_text` (422)."""
        return self._client.get_json(api_path("sandboxes", self.sandbox_id, "fs", "text"), {"path": path})[
            "text"
        ]

    def stat(self, path: str) -> FileEntry:
        """Type, size, mode and mtime of the path itself (a symlink is not followed); NotFoundError if missing."""
        return FileEntry.from_json(
            self._client.get_json(api_path("sandboxes", self.sandbox_id, "fs", "stat"), {"path": path})
        )

    def exists(self, path: str) -> bool:
        try:
            self.stat(path)
        except NotFoundError:
            return False
        return True

    def make_dir(self, path: str, parents: bool = True) -> FileEntry:
        """Create a directory (with `parents`, like mkdir -p); ConflictError when a file is in the way."""
        response = self._client.request(
            "POST",
            api_path("sandboxes", self.sandbox_id, "fs", "mkdir"),
            json={"path": path, "parents": parents},
        )
        return FileEntry.from_json(response.json())

    def rename(self, source: str, destination: str, overwrite: bool = False) -> FileEntry:
        """Move within the workspace; an existing destination is ConflictError unless `overwrite`."""
        response = self._client.request(
            "POST",
            api_path("sandboxes", self.sandbox_id, "fs", "move"),
            json={"source": source, "destination": destination, "overwrite": overwrite},
        )
        return FileEntry.from_json(response.json())

    move = rename

    def watch(
        self, path: str = "", recursive: bool = True, timeout_s: int | None = None
    ) -> Iterator[WatchEvent]:
        """Changes below the directory as they happen, until its `end` event (the sandbox ended, the
        directory was deleted, `timeout_s` passed...) or until the caller stops iterating (the watch is
        then closed)."""
        response = self._client.request(
            "GET",
            api_path("sandboxes", self.sandbox_id, "fs", "watch"),
            params=transport.watch_params(path, recursive, timeout_s),
            headers={"Accept": transport.SSE_ACCEPT},
            stream=True,
            timeout=transport.stream_timeout(self._client.settings.timeout),
        )
        try:
            decoder = transport.SSEDecoder()
            for line in response.iter_lines():
                event = transport.decode_watch_event(decoder, line)
                if event is not None:
                    yield event
                    if event.type == "end":
                        return
        finally:
            response.close()

    def write(self, path: str, data: bytes | str) -> int:
        """Create or replace a file (parents are created); str is written as UTF-8. Returns its size."""
        content = data.encode() if isinstance(data, str) else bytes(data)
        self._client.request(
            "PUT",
            api_path("sandboxes", self.sandbox_id, "files", path),
            content=content,
            headers={"Content-Type": "application/octet-stream"},
        )
        return len(content)

    def delete(self, path: str, recursive: bool = True) -> None:
        """Remove a file, a link or a directory; a non-empty directory with `recursive=False` is ConflictError."""
        params = None if recursive else {"recursive": "false"}
        self._client.request("DELETE", api_path("sandboxes", self.sandbox_id, "files", path), params=params)


class Executions:
    """client.executions: a run's current state and its live event stream."""

    def __init__(self, client: Mem0):
        self._client = client

    def get(self, execution_id: str) -> Execution:
        return Execution.from_json(self._client.get_json(api_path("executions", execution_id)))

    def cancel(self, execution_id: str) -> Execution:
        """Interrupt a running execution and keep its sandbox (and its state, where the code honours the
        interrupt); returns it `cancelled`. ConflictError if it had already ended."""
        return Execution.from_json(
            (self._client.request("POST", api_path("executions", execution_id, "cancel"))).json()
        )

    def events(self, execution_id: str, after: int = 0) -> Iterator[OutputEvent | ExitEvent]:
        """The run's events after sequence `after`, live over SSE, ending with its ExitEvent.

        A dropped connection is resumed from the last sequence received (`after=`), so no output is lost
        or repeated; after STREAM_RECONNECTS failures in a row it raises Mem0ConnectionError."""
        last, failures = after, 0
        while True:
            try:
                for event in self._connect(execution_id, last):
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
            time.sleep(transport.reconnect_delay(failures))

    def _connect(self, execution_id: str, after: int) -> Iterator[OutputEvent | ExitEvent]:
        """One SSE connection: the events with a sequence above `after` until the server closes it."""
        response = self._client.request(
            "GET",
            api_path("executions", execution_id, "events"),
            params={"after": after},
            headers={"Accept": transport.SSE_ACCEPT},
            stream=True,
            timeout=transport.stream_timeout(self._client.settings.timeout),
        )
        try:
            decoder = transport.SSEDecoder()
            for line in response.iter_lines():
                event = transport.decode_event(decoder, line)
                if event is not None and event.seq > after:
                    yield event
        finally:
            response.close()


class Snapshots:
    """client.snapshots: stored workspaces, their tags and lineage; restore makes a new sandbox."""

    def __init__(self, client: Mem0):
        self._client = client

    def get(self, snapshot_id: str) -> Snapshot:
        return Snapshot.from_json(self._client.get_json(api_path("snapshots", snapshot_id)))

    def list(
        self, sandbox_id: str | None = None, tag: str | None = None, page_size: int | None = None
    ) -> Iterator[Snapshot]:
        """All snapshots (newest first), across pages; optionally only one sandbox's, or those with a tag."""
        params = transport.snapshot_list_params(sandbox_id, tag, page_size)
        return (Snapshot.from_json(item) for item in self._client.paginate(api_path("snapshots"), params))

    def restore(self, snapshot_id: str, idempotency_key: str | None = None) -> Sandbox:
        """A new running sandbox with the snapshot's workspace, runtime and environment."""
        response = self._client.request(
            "POST",
            api_path("snapshots", snapshot_id, "restore"),
            headers=transport.idempotency_headers(idempotency_key),
        )
        return Sandbox.from_json(response.json(), client=self._client)

    def delete(self, snapshot_id: str) -> None:
        self._client.request("DELETE", api_path("snapshots", snapshot_id))

    def tag(self, snapshot_id: str, tag: str) -> Snapshot:
        """Add `tag` to this snapshot; returns the snapshot as it now is."""
        body = transport.json_or_none(
            self._client.request("PUT", api_path("snapshots", snapshot_id, "tags", tag))
        )
        return Snapshot.from_json(body) if isinstance(body, dict) and "id" in body else self.get(snapshot_id)

    def lineage(self, snapshot_id: str) -> Lineage:
        return Lineage.from_json(self._client.get_json(api_path("snapshots", snapshot_id, "lineage")))
