"""REST views for sandboxes, executions, forks, files and runtimes: validate, call a service, serialize."""

import json

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from mem0web.errors import InvalidRequest, PayloadTooLarge
from mem0web.handlers import after_response
from mem0web.pagination import Cursor
from sandboxes import dispatch, executions, pausing, ports, selectors, services, workspace_files
from sandboxes.file_schema import path_param
from sandboxes.idempotency import idempotent
from sandboxes.runtimes import runtime_catalog
from sandboxes.serializers import (
    ExecutionCreateSerializer,
    ExecutionSerializer,
    PortExposedSerializer,
    PortExposeSerializer,
    RuntimeListSerializer,
    SandboxCreateSerializer,
    SandboxSerializer,
    SandboxUpdateSerializer,
    execution_json,
    sandbox_json,
)
from sandboxes.stream_slots import stream_slot_take
from sandboxes.streaming import HeldStream, event_json, sse_stream, stored_events


def _int_param(request, name: str, default: int = 0) -> int:
    return _nonnegative_int(name, request.query_params.get(name, default))


def bool_param(request, name: str, default: bool) -> bool:
    """A query parameter as a boolean (true/false/1/0), else 400 invalid_request."""
    value = request.query_params.get(name)
    if value is None:
        return default
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise InvalidRequest(f"{name} must be true or false.")


def _nonnegative_int(name: str, text) -> int:
    """A query parameter or header as a non-negative integer, else 400 invalid_request."""
    try:
        value = int(text)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer.") from None
    if value < 0:
        raise InvalidRequest(f"{name} must not be negative.")
    return value


class SandboxListView(APIView):
    scope = "sandboxes"
    pagination_class = Cursor  # for the schema: a cursor page (get() paginates with it)

    @extend_schema(responses=SandboxSerializer(many=True), parameters=[
        OpenApiParameter("state", str), OpenApiParameter("runtime", str),
        OpenApiParameter("metadata.KEY", str, description="Filter on a metadata value, e.g. metadata.team=ml")])
    def get(self, request):
        metadata = {k[len("metadata."):]: v for k, v in request.query_params.items() if k.startswith("metadata.")}
        qs = selectors.sandboxes_for_org(request.auth.org, state=request.query_params.get("state"),
                                         runtime=request.query_params.get("runtime"), metadata=metadata)
        paginator = Cursor()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response([sandbox_json(s) for s in page])

    @extend_schema(request=SandboxCreateSerializer, responses={201: SandboxSerializer})
    def post(self, request):
        data = SandboxCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)

        def create():
            sandbox = services.sandbox_create(principal=request.auth, request=request, **data.validated_data)
            return Response(sandbox_json(sandbox), status=201)

        return idempotent(request, request.auth.org, create)


class SandboxDetailView(APIView):
    scope = "sandboxes"

    @extend_schema(responses=SandboxSerializer)
    def get(self, request, sandbox_id: str):
        return Response(sandbox_json(selectors.sandbox_by_id(request.auth.org, sandbox_id)))

    @extend_schema(request=SandboxUpdateSerializer, responses={200: SandboxSerializer})
    def patch(self, request, sandbox_id: str):
        """Change a live sandbox's lifetime: it ends `timeout_s` seconds from now (within the plan). Fields left
        out are left as they are."""
        data = SandboxUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        sandbox = selectors.sandbox_by_id(request.auth.org, sandbox_id)
        if "timeout_s" in data.validated_data:
            pausing.sandbox_set_timeout(principal=request.auth, sandbox=sandbox, request=request,
                                        timeout_s=data.validated_data["timeout_s"])
        return Response(sandbox_json(sandbox))

    @extend_schema(responses={200: SandboxSerializer})
    def delete(self, request, sandbox_id: str):
        sandbox = selectors.sandbox_by_id(request.auth.org, sandbox_id)
        services.sandbox_kill(principal=request.auth, sandbox=sandbox, request=request)
        return Response(sandbox_json(sandbox))


class SandboxPauseView(APIView):
    scope = "sandboxes"

    @extend_schema(request=None, responses={200: SandboxSerializer})
    def post(self, request, sandbox_id: str):
        """Freeze the sandbox between runs, memory kept (idempotent); runs answer 409 sandbox_paused until resume."""
        sandbox = selectors.sandbox_by_id(request.auth.org, sandbox_id)
        return Response(sandbox_json(pausing.sandbox_pause(principal=request.auth, sandbox=sandbox, request=request)))


class SandboxResumeView(APIView):
    scope = "sandboxes"

    @extend_schema(request=None, responses={200: SandboxSerializer})
    def post(self, request, sandbox_id: str):
        """Thaw a paused sandbox (idempotent); its idle window starts again."""
        sandbox = selectors.sandbox_by_id(request.auth.org, sandbox_id)
        return Response(sandbox_json(pausing.sandbox_resume(principal=request.auth, sandbox=sandbox, request=request)))


class SandboxPortsView(APIView):
    scope = "sandboxes"

    @extend_schema(request=PortExposeSerializer, responses={201: PortExposedSerializer})
    def post(self, request, sandbox_id: str):
        """Expose a port a server in the sandbox listens on: it is reachable at
        `/api/v1/sandboxes/{id}/ports/{port}/…` with a key of this organisation or the signed URL."""
        data = PortExposeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        sandbox = selectors.sandbox_by_id(request.auth.org, sandbox_id)
        return Response(ports.port_expose(principal=request.auth, sandbox=sandbox, request=request,
                                          **data.validated_data), status=201)


class SandboxPortView(APIView):
    scope = "sandboxes"

    @extend_schema(responses={204: None})
    def delete(self, request, sandbox_id: str, port: int):
        """Stop exposing the port."""
        sandbox = selectors.sandbox_by_id(request.auth.org, sandbox_id)
        ports.port_unexpose(principal=request.auth, sandbox=sandbox, port=port, request=request)
        return Response(status=204)


class SandboxForkView(APIView):
    scope = "sandboxes"

    @extend_schema(request=None, responses={201: SandboxSerializer})
    def post(self, request, sandbox_id: str):
        sandbox = selectors.sandbox_by_id(request.auth.org, sandbox_id)

        def fork():
            child = services.sandbox_fork(principal=request.auth, sandbox=sandbox, request=request)
            return Response(sandbox_json(child), status=201)

        return idempotent(request, request.auth.org, fork)


class ExecutionCreateView(APIView):
    scope = "sandboxes"

    @extend_schema(request=ExecutionCreateSerializer, responses={200: ExecutionSerializer, 202: ExecutionSerializer})
    def post(self, request, sandbox_id: str):
        data = ExecutionCreateSerializer(data=request.data)
        if not data.is_valid():
            selectors.sandbox_by_id(request.auth.org, sandbox_id)  # an unknown sandbox is a 404 whatever the body
            data.is_valid(raise_exception=True)
        execution = executions.execution_start(principal=request.auth, sandbox_id=sandbox_id,
                                               code=data.validated_data["code"],
                                               timeout_s=data.validated_data.get("timeout_s"),
                                               wait=data.validated_data["wait"],
                                               stdin=data.validated_data.get("stdin"))
        if not data.validated_data["wait"]:
            return Response(execution_json(execution), status=202)
        finished = executions.execution_wait(execution, record_later=lambda fn: after_response(request, fn))
        return Response(execution_json(finished))


class ExecutionDetailView(APIView):
    scope = "sandboxes"

    @extend_schema(responses=ExecutionSerializer)
    def get(self, request, execution_id: str):
        execution = selectors.execution_by_id(request.auth.org, execution_id)
        return Response(execution_json(executions.execution_refresh(execution)))


class ExecutionCancelView(APIView):
    """Interrupt a running execution and keep its sandbox and its state (where the code honours the interrupt;
    an interpreter that ignores it is restarted, memory lost). 200 with the execution, `cancelled` once it
    has ended; 409 conflict if it had already ended."""

    scope = "sandboxes"

    @extend_schema(request=None, responses={200: ExecutionSerializer})
    def post(self, request, execution_id: str):
        execution = selectors.execution_by_id(request.auth.org, execution_id)
        execution = executions.execution_cancel(principal=request.auth, execution=execution, request=request)
        return Response(execution_json(execution))


class EventStreamRenderer(BaseRenderer):
    """Lets `Accept: text/event-stream` through content negotiation; errors are still JSON bodies."""

    media_type = "text/event-stream"
    format = "sse"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return json.dumps(data).encode() if data is not None else b""


class ExecutionEventsView(APIView):
    """Server-Sent Events with `Accept: text/event-stream`; otherwise the events so far as JSON."""

    scope = "sandboxes"
    renderer_classes = [JSONRenderer, EventStreamRenderer]

    @extend_schema(parameters=[OpenApiParameter("after", {"type": "integer", "minimum": 0})],
                   responses={200: OpenApiTypes.OBJECT})
    def get(self, request, execution_id: str):
        execution = selectors.execution_by_id(request.auth.org, execution_id)
        last_event_id = _nonnegative_int("Last-Event-ID", request.headers.get("Last-Event-ID") or 0)
        after = _int_param(request, "after", last_event_id)
        if "text/event-stream" in request.headers.get("Accept", ""):
            slot = stream_slot_take(request.auth.org.pk)  # 429 at the organisation's limit of live streams
            response = StreamingHttpResponse(HeldStream(sse_stream(execution.pk, after), slot),
                                             content_type="text/event-stream")
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"
            return response
        events = dispatch.engine().output(execution.pk, after_seq=after, block_ms=0)
        payload = [event_json(e) for e in events]
        if not payload and execution.status not in execution.OPEN_STATUSES:
            payload = stored_events(execution, after)
        done = bool(payload) and payload[-1].get("type") == "exit"
        return Response({"events": payload, "next_after": payload[-1]["seq"] if payload else after, "done": done})


class RawBytesParser(BaseParser):
    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return stream.read(settings.MEM0_MAX_FILE_BYTES + 1) if stream is not None else b""


class SandboxFilesView(APIView):
    scope = "sandboxes"

    @extend_schema(operation_id="sandbox_files_list", parameters=[
        path_param(required=False),
        OpenApiParameter("depth", {"type": "integer", "minimum": 1, "maximum": workspace_files.MAX_LIST_DEPTH},
                         description="Levels to list: 1 (default) the directory's entries, more: recursive.")],
        responses={200: OpenApiTypes.OBJECT})
    def get(self, request, sandbox_id: str):
        sandbox = selectors.sandbox_by_id(request.auth.org, sandbox_id)
        path = request.query_params.get("path", "")
        depth = _int_param(request, "depth", 1)
        if not 1 <= depth <= workspace_files.MAX_LIST_DEPTH:
            raise InvalidRequest(f"depth must be from 1 to {workspace_files.MAX_LIST_DEPTH}.")
        if depth == 1:
            return Response({"path": path, "entries": services.file_list(sandbox=sandbox, path=path)})
        return Response({"path": path, "depth": depth,
                         "entries": workspace_files.file_list_tree(sandbox=sandbox, path=path, depth=depth)})


# A workspace path as validation.clean_workspace_path takes it, written without lookaheads: segments
# separated by "/", none of them "." or "..", no backslash or NUL, not absolute (a subset: no empty
# segment either).
_SEGMENT = r"(?:[^/\\\x00.][^/\\\x00]*|\.[^/\\\x00.][^/\\\x00]*|\.\.[^/\\\x00]+)"
FILE_PATH = OpenApiParameter(
    "path", str, OpenApiParameter.PATH, required=True, pattern=rf"^{_SEGMENT}(?:/{_SEGMENT})*$",
    description="A path relative to /workspace.",
)


@extend_schema(parameters=[FILE_PATH])
class SandboxFileView(APIView):
    """Raw bytes in and out; paths are relative to /workspace."""

    scope = "sandboxes"
    parser_classes = [RawBytesParser]
    body_limit_setting = "MEM0_MAX_FILE_BYTES"  # mem0web/bodylimit.py: uploads are capped at their own size

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request, sandbox_id: str, path: str):
        sandbox = selectors.sandbox_by_id(request.auth.org, sandbox_id)
        data = services.file_read(sandbox=sandbox, path=path)
        return HttpResponse(data, content_type="application/octet-stream")

    @extend_schema(request={"application/octet-stream": OpenApiTypes.BINARY}, responses={201: OpenApiTypes.OBJECT})
    def put(self, request, sandbox_id: str, path: str):
        sandbox = selectors.sandbox_by_id(request.auth.org, sandbox_id)
        if int(request.META.get("CONTENT_LENGTH") or 0) > settings.MEM0_MAX_FILE_BYTES:
            raise PayloadTooLarge(f"Files may be at most {settings.MEM0_MAX_FILE_BYTES} bytes.",
                                  details={"limit": settings.MEM0_MAX_FILE_BYTES})
        data = request.data if isinstance(request.data, bytes) else b""
        if len(data) > settings.MEM0_MAX_FILE_BYTES:
            raise PayloadTooLarge(f"Files may be at most {settings.MEM0_MAX_FILE_BYTES} bytes.",
                                  details={"limit": settings.MEM0_MAX_FILE_BYTES})
        services.file_write(sandbox=sandbox, path=path, data=data)
        return Response({"path": path, "size": len(data)}, status=201)

    @extend_schema(responses={204: None}, parameters=[OpenApiParameter(
        "recursive", bool, description="A directory with entries is removed only with recursive=true (the "
        "default); recursive=false answers 409 conflict for it.")])
    def delete(self, request, sandbox_id: str, path: str):
        sandbox = selectors.sandbox_by_id(request.auth.org, sandbox_id)
        recursive = bool_param(request, "recursive", True)
        if recursive:
            services.file_delete(sandbox=sandbox, path=path)
        else:
            workspace_files.file_delete(sandbox=sandbox, path=path, recursive=False)
        return Response(status=204)


class RuntimesView(APIView):
    @extend_schema(responses={200: RuntimeListSerializer})
    def get(self, request):
        return Response({"runtimes": runtime_catalog(dispatch.engine().agents())})
