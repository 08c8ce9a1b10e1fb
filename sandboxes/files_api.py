"""REST views for files as agents need them: stat, make_dir, move, text reads and directory watches.

    GET  /api/v1/sandboxes/{id}/fs/stat?path=P            {name, path, type, size, mode, mtime}; 404 when missing
    POST /api/v1/sandboxes/{id}/fs/mkdir   {path, parents}   201 the directory's stat
    POST /api/v1/sandboxes/{id}/fs/move    {source, destination, overwrite}   the destination's stat
    GET  /api/v1/sandboxes/{id}/fs/text?path=P            {path, text, size}; 422 not_text when not UTF-8
    GET  /api/v1/sandboxes/{id}/fs/watch?path=P&recursive=true   Server-Sent Events of changes below P

Listing with `depth`, bytes and directory delete with `recursive` are on the files resource (api.py).
"""

import functools
import json
from collections.abc import AsyncIterator

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from sandboxes import selectors, workspace_files
from sandboxes.api import EventStreamRenderer, bool_param
from sandboxes.file_schema import PATH_PATTERN, SSE_EVENT, path_param
from sandboxes.stream_slots import stream_slot_take
from sandboxes.watch_stream import MAX_WATCH_TIMEOUT_S, stop_watch_later, watch_events, watch_timeout


class StatSerializer(serializers.Serializer):
    name = serializers.CharField()
    path = serializers.CharField()
    type = serializers.ChoiceField(choices=["file", "dir", "symlink"])
    size = serializers.IntegerField()
    mode = serializers.IntegerField()
    mtime = serializers.FloatField()


class MkdirSerializer(serializers.Serializer):
    path = serializers.RegexField(PATH_PATTERN, max_length=1024)
    parents = serializers.BooleanField(default=True)


class MoveSerializer(serializers.Serializer):
    source = serializers.RegexField(PATH_PATTERN, max_length=1024)
    destination = serializers.RegexField(PATH_PATTERN, max_length=1024)
    overwrite = serializers.BooleanField(default=False)


class TextSerializer(serializers.Serializer):
    path = serializers.CharField()
    text = serializers.CharField(allow_blank=True)
    size = serializers.IntegerField()


class SandboxFileStatView(APIView):
    scope = "sandboxes"

    @extend_schema(
        operation_id="sandbox_file_stat", parameters=[path_param()], responses={200: StatSerializer}
    )
    def get(self, request, sandbox_id: str):
        sandbox = selectors.sandbox_by_id(request.auth.org, sandbox_id)
        return Response(workspace_files.file_stat(sandbox=sandbox, path=request.query_params.get("path", "")))


class SandboxMkdirView(APIView):
    scope = "sandboxes"

    @extend_schema(
        operation_id="sandbox_file_mkdir", request=MkdirSerializer, responses={201: StatSerializer}
    )
    def post(self, request, sandbox_id: str):
        sandbox = selectors.sandbox_by_id(request.auth.org, sandbox_id)
        data = MkdirSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(workspace_files.file_mkdir(sandbox=sandbox, **data.validated_data), status=201)


class SandboxMoveView(APIView):
    scope = "sandboxes"

    @extend_schema(operation_id="sandbox_file_move", request=MoveSerializer, responses={200: StatSerializer})
    def post(self, request, sandbox_id: str):
        sandbox = selectors.sandbox_by_id(request.auth.org, sandbox_id)
        data = MoveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(workspace_files.file_move(sandbox=sandbox, **data.validated_data))


class SandboxFileTextView(APIView):
    scope = "sandboxes"

    @extend_schema(
        operation_id="sandbox_file_text",
        parameters=[path_param()],
        responses={200: TextSerializer, 422: OpenApiResponse(description="not_text: not UTF-8")},
    )
    def get(self, request, sandbox_id: str):
        sandbox = selectors.sandbox_by_id(request.auth.org, sandbox_id)
        path = request.query_params.get("path", "")
        text = workspace_files.file_read_text(sandbox=sandbox, path=path)
        return Response({"path": path, "text": text, "size": len(text.encode())})


class HeldWatch:
    """The SSE body of a watch: closing the response gives back the stream slot and stops the watch."""

    def __init__(self, body: AsyncIterator[bytes], slot, stop):
        self.body, self.slot, self.stop = body, slot, stop

    def __aiter__(self):
        return self.body.__aiter__()

    def close(self) -> None:
        self.slot.release()
        stop_watch_later(self.stop)


class SandboxWatchView(APIView):
    """Server-Sent Events: one `created`, `modified`, `deleted` or `moved` event per change below the
    directory (`data` is `{"type", "path", "dest" (moved), "is_dir"}`), `overflow` when changes came faster
    than they can be told apart, and a last `end` event (`reason`: `sandbox_ended`, `deleted`, `timeout`
    (after `timeout` seconds, if given), `time_limit` (an hour)...). Each open watch holds one of the
    organisation's live stream slots."""

    scope = "sandboxes"
    renderer_classes = [JSONRenderer, EventStreamRenderer]

    @extend_schema(
        operation_id="sandbox_files_watch",
        parameters=[
            path_param(required=False),
            OpenApiParameter("recursive", bool),
            OpenApiParameter(
                "timeout",
                {"type": "integer", "minimum": 1, "maximum": MAX_WATCH_TIMEOUT_S},
                description="End the watch after this many seconds (default: when the sandbox ends, or an hour).",
            ),
        ],
        responses={(200, "text/event-stream"): SSE_EVENT},
    )
    def get(self, request, sandbox_id: str):
        sandbox = selectors.sandbox_by_id(request.auth.org, sandbox_id)
        recursive = bool_param(request, "recursive", True)
        path = request.query_params.get("path", "")
        timeout_s = watch_timeout(request.query_params.get("timeout"))
        slot = stream_slot_take(request.auth.org.pk)
        try:
            started = workspace_files.files_watch_start(sandbox=sandbox, path=path, recursive=recursive)
        except BaseException:
            slot.release()
            raise
        stop = functools.partial(
            workspace_files.files_watch_stop,
            sandbox=sandbox,
            watch_id=started["watch_id"],
            stream=started["stream"],
        )
        body = HeldWatch(watch_sse(request.auth.org, sandbox.pk, started["stream"], timeout_s), slot, stop)
        response = StreamingHttpResponse(body, content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response


async def watch_sse(org, sandbox_id: str, stream: str, timeout_s: int | None) -> AsyncIterator[bytes]:
    yield b": watching\n\n"
    async for item in watch_events(org, sandbox_id, stream, timeout_s):
        if item is None:
            yield b": keep-alive\n\n"
            continue
        seq, change = item
        yield f"id: {seq}\nevent: {change.get('type', 'message')}\ndata: {json.dumps(change)}\n\n".encode()
