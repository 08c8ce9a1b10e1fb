"""REST views for commands and processes in a sandbox (sandboxes/commands.py): validate, call, serialize.

    POST /api/v1/sandboxes/{id}/commands                      start (wait: the result; else 202 and the id)
    GET  /api/v1/sandboxes/{id}/commands                      its running commands (?all=true: recent ones too)
    GET  /api/v1/sandboxes/{id}/commands/{cid}                one command (status, exit_code, output)
    POST /api/v1/sandboxes/{id}/commands/{cid}/stdin          {"data": "...", "close": false}
    POST /api/v1/sandboxes/{id}/commands/{cid}/signal         {"signal": "SIGTERM"}
    GET  /api/v1/sandboxes/{id}/commands/{cid}/events         output from any offset (?after=N), JSON or SSE

A command is an execution: `/api/v1/executions/{cid}/events` and the `/ws/executions/{cid}/` websocket
carry its output unchanged.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from mem0web.handlers import after_response
from sandboxes import commands, executions, selectors
from sandboxes.api import ExecutionEventsView
from sandboxes.models import Execution
from sandboxes.serializers import EnvField, FiniteFloatField, StrictCharField, execution_json
from sandboxes.validation import clean_env


@extend_schema_field({"oneOf": [
    {"type": "string", "minLength": 1, "pattern": r"^[^\x00]*$", "description": "A shell command, run as sh -c"},
    {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": r"^[^\x00]*$"},
     "description": "argv; the program is looked up in PATH"},
]})
class CmdField(serializers.JSONField):
    """A shell string or an argv list (checked by commands.clean_cmd)."""


class CommandCreateSerializer(serializers.Serializer):
    cmd = CmdField()
    cwd = StrictCharField(required=False, allow_blank=True, max_length=commands.MAX_CWD_BYTES,
                          help_text="Working directory; relative paths are under /workspace (default: it).")
    env = EnvField(required=False, help_text="Environment variables added to the sandbox's.")
    stdin = StrictCharField(required=False, allow_blank=True, trim_whitespace=False,
                            max_length=commands.MAX_STDIN_BYTES,
                            help_text="Written to the command's stdin; a foreground command then reads end-of-file.")
    timeout_s = FiniteFloatField(required=False, min_value=0.1, help_text="At most the plan's maximum run time.")
    background = serializers.BooleanField(required=False, default=False,
                                          help_text="Keep stdin open; answer at once unless wait is true.")
    wait = serializers.BooleanField(required=False, help_text="Answer with the result (default: not background).")


class CommandSerializer(serializers.ModelSerializer):
    """An execution with the command's own fields."""

    sandbox_id = serializers.CharField(read_only=True)
    stream_url = serializers.CharField(read_only=True)
    cmd = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = Execution
        fields = ["id", "sandbox_id", "status", "exit_code", "stdout", "stderr", "truncated", "wall_ms", "cpu_ms",
                  "peak_memory_bytes", "limit", "timeout_s", "stream_url", "created_at", "finished_at", "cmd", "cwd",
                  "pid", "background"]


class CommandStdinSerializer(serializers.Serializer):
    data = StrictCharField(required=False, allow_blank=True, trim_whitespace=False, default="",
                           max_length=commands.MAX_STDIN_BYTES)
    close = serializers.BooleanField(required=False, default=False)


class CommandSignalSerializer(serializers.Serializer):
    signal = serializers.ChoiceField(choices=commands.SIGNALS, default="SIGTERM")


def command_json(e: Execution) -> dict:
    return {**execution_json(e), "cmd": list(e.cmd or []), "cwd": e.cwd or "", "pid": e.pid,
            "background": bool(e.background)}


class SandboxCommandsView(APIView):
    scope = "sandboxes"

    @extend_schema(operation_id="sandbox_commands_list", parameters=[OpenApiParameter("all", bool)],
                   responses={200: OpenApiTypes.OBJECT})
    def get(self, request, sandbox_id: str):
        sandbox = selectors.sandbox_by_id(request.auth.org, sandbox_id)
        running_only = request.query_params.get("all", "").lower() not in ("1", "true", "yes")
        found = commands.commands_of_sandbox(sandbox, running_only=running_only)
        return Response({"commands": [command_json(e) for e in found]})

    @extend_schema(operation_id="sandbox_commands_create", request=CommandCreateSerializer,
                   responses={200: CommandSerializer, 202: CommandSerializer})
    def post(self, request, sandbox_id: str):
        data = CommandCreateSerializer(data=request.data)
        if not data.is_valid():
            selectors.sandbox_by_id(request.auth.org, sandbox_id)  # an unknown sandbox is a 404 whatever the body
            data.is_valid(raise_exception=True)
        v = data.validated_data
        background = v["background"]
        wait = v.get("wait", not background)
        execution = commands.command_start(principal=request.auth, sandbox_id=sandbox_id, cmd=v["cmd"],
                                           cwd=v.get("cwd", ""), env=clean_env(v.get("env")), stdin=v.get("stdin"),
                                           timeout_s=v.get("timeout_s"), background=background, wait=wait)
        if not wait:
            return Response(command_json(execution), status=202)
        finished = executions.execution_wait(execution, record_later=lambda fn: after_response(request, fn))
        return Response(command_json(finished))


class SandboxCommandView(APIView):
    scope = "sandboxes"

    @extend_schema(responses=CommandSerializer)
    def get(self, request, sandbox_id: str, command_id: str):
        execution = commands.command_by_id(request.auth.org, sandbox_id, command_id)
        return Response(command_json(executions.execution_refresh(execution)))


class CommandStdinView(APIView):
    scope = "sandboxes"

    @extend_schema(request=CommandStdinSerializer, responses={200: OpenApiTypes.OBJECT})
    def post(self, request, sandbox_id: str, command_id: str):
        execution = commands.command_by_id(request.auth.org, sandbox_id, command_id)
        data = CommandStdinSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(commands.command_send_stdin(execution=execution, data=data.validated_data["data"],
                                                    close=data.validated_data["close"]))


class CommandSignalView(APIView):
    scope = "sandboxes"

    @extend_schema(request=CommandSignalSerializer, responses={200: OpenApiTypes.OBJECT})
    def post(self, request, sandbox_id: str, command_id: str):
        execution = commands.command_by_id(request.auth.org, sandbox_id, command_id)
        data = CommandSignalSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(commands.command_signal(execution=execution, signal=data.validated_data["signal"]))


class CommandEventsView(ExecutionEventsView):
    """The command's output from any offset, as for an execution (JSON, or SSE with Accept: text/event-stream)."""

    @extend_schema(operation_id="sandbox_command_events",
                   parameters=[OpenApiParameter("after", {"type": "integer", "minimum": 0})],
                   responses={200: OpenApiTypes.OBJECT})
    def get(self, request, sandbox_id: str, command_id: str):
        commands.command_by_id(request.auth.org, sandbox_id, command_id)
        return super().get(request, command_id)
