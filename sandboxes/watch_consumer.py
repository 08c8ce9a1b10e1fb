"""`/ws/sandboxes/{id}/watch/?path=P&recursive=true&timeout=S`: a directory watch over a websocket.

Authenticated, tenant-checked and re-checked like the other sockets (consumers._Mem0Consumer: another
organisation's sandbox closes with 4404, the socket holds one of the organisation's stream slots). Each
change is one JSON message `{"seq", "type", "path", "dest"?, "is_dir"}` (as the SSE watch, files_api.py);
the last is `{"type": "end", "reason"}` and the server then closes. Closing the socket stops the watch.
Messages from the client are refused (the watch takes no input).
"""

import asyncio
import functools
from urllib.parse import parse_qs

from channels.db import database_sync_to_async

from mem0web.errors import Mem0Error, error_body
from sandboxes import selectors, workspace_files
from sandboxes.consumers import _Mem0Consumer
from sandboxes.watch_stream import stop_watch_later, watch_events, watch_timeout

CLOSE_REFUSED = 4400


class WatchConsumer(_Mem0Consumer):
    watch = None

    async def load(self):
        self.sandbox = await database_sync_to_async(selectors.sandbox_by_id)(
            self.principal.org, self.scope["url_route"]["kwargs"]["sandbox_id"]
        )

    async def started(self):
        query = parse_qs(self.scope.get("query_string", b"").decode("latin1"))
        path = query.get("path", [""])[0]
        recursive = query.get("recursive", ["true"])[0].lower() not in ("false", "0")
        try:
            self.timeout_s = watch_timeout(query["timeout"][0] if "timeout" in query else None)
            self.watch = await database_sync_to_async(workspace_files.files_watch_start)(
                sandbox=self.sandbox, path=path, recursive=recursive
            )
        except Mem0Error as exc:
            await self.send_json(error_body(exc.code, exc.message, exc.details))
            await self.release()
            await self.close(code=CLOSE_REFUSED)
            return
        self.stream_task = asyncio.create_task(self.follow(self.watch["stream"]))

    async def follow(self, stream: str):
        async for item in watch_events(self.principal.org, self.sandbox.pk, stream, self.timeout_s):
            if item is not None:
                seq, change = item
                await self.send_json({"seq": seq, **change})
        await self.release()
        await self.close()

    async def release(self) -> None:
        await super().release()
        watch, self.watch = self.watch, None
        if watch is not None:
            stop_watch_later(
                functools.partial(
                    workspace_files.files_watch_stop,
                    sandbox=self.sandbox,
                    watch_id=watch["watch_id"],
                    stream=watch["stream"],
                )
            )

    async def receive_json(self, content, **kwargs):
        await self.send_json(error_body("invalid_request", "A watch takes no messages; close it to stop."))
