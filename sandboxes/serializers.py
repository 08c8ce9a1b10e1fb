"""JSON shapes of DESIGN §6.1 for sandboxes, executions and snapshots."""

import math

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from mem0web.openapi import string_map
from sandboxes.models import Execution, Sandbox, Snapshot
from sandboxes.runtimes import RUNTIMES
from sandboxes.validation import ENV_NAME, MAX_METADATA_KEYS

MAX_STDIN_CHARS = 1 << 20  # the agent refuses more than 1 MiB of UTF-8 (payload_too_large)


class FiniteFloatField(serializers.FloatField):
    """A number of seconds: DRF's FloatField takes "NaN", "inf" and true (float() does), which then failed
    deep in admission (a 500 that had already spent a daily execution, finding 16); here they are 400."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            self.fail("invalid")
        return value


class StrictIntegerField(serializers.IntegerField):
    """A whole number that must arrive as a JSON number (80 or 80.0, as JSON Schema's "integer" has it):
    DRF's IntegerField also takes "80" and true."""

    def to_internal_value(self, data):
        if isinstance(data, float) and data.is_integer():
            data = int(data)
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """Text that must arrive as a JSON string: DRF's CharField turns 5 or true into "5" / "True"."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class SandboxSerializer(serializers.ModelSerializer):
    parent_id = serializers.CharField(allow_null=True, read_only=True)
    source_snapshot_id = serializers.CharField(allow_null=True, read_only=True)
    agent = serializers.CharField(source="agent_id", read_only=True)
    memory = serializers.SerializerMethodField()

    class Meta:
        model = Sandbox
        fields = ["id", "runtime", "state", "parent_id", "source_snapshot_id", "memory", "env", "metadata", "agent",
                  "limits", "exposed_ports", "stop_reason", "created_at", "last_active_at", "expires_at",
                  "paused_at", "stopped_at"]

    def get_memory(self, obj) -> str | None:
        return obj.memory or None


LIMITS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "memory_bytes": {"type": "integer", "minimum": 16 << 20},
        "cpu_cores": {"type": "number", "minimum": 0.01},
        "workspace_bytes": {"type": "integer", "minimum": 1 << 20},
        "pids": {"type": "integer", "minimum": 4},
        "run_timeout_s": {"type": "number", "minimum": 0.1},
        "output_bytes": {"type": "integer", "minimum": 0},
    },
    "description": "Each at most the plan's value (more: 429 quota_exceeded naming it); what is not asked for is the plan's.",
}


@extend_schema_field(LIMITS_SCHEMA)  # unknown names are refused, so the schema says so
class SandboxLimitsSerializer(serializers.Serializer):
    """Limits asked for on create, each at most the plan's value (more: 429 quota_exceeded naming it).

    The lower bounds are the engine's (protocol.Limits.validate); what is not asked for is the plan's."""

    memory_bytes = serializers.IntegerField(required=False, min_value=16 << 20)
    cpu_cores = serializers.FloatField(required=False, min_value=0.01)
    workspace_bytes = serializers.IntegerField(required=False, min_value=1 << 20)
    pids = serializers.IntegerField(required=False, min_value=4)
    run_timeout_s = serializers.FloatField(required=False, min_value=0.1)
    output_bytes = serializers.IntegerField(required=False, min_value=0)

    def to_internal_value(self, data):
        unknown = set(data) - set(self.fields) if isinstance(data, dict) else set()
        if unknown:
            raise serializers.ValidationError(f"Unknown limits: {sorted(unknown)}.")
        attrs = super().to_internal_value(data)
        if any(not math.isfinite(v) for v in attrs.values()):
            raise serializers.ValidationError("Limits must be finite numbers.")
        return attrs


@extend_schema_field({"type": "string", "enum": sorted(RUNTIMES)})
class RuntimeField(serializers.CharField):
    """A runtime name; the service answers unknown_runtime for others, so the schema lists them all."""


@extend_schema_field(string_map(max_properties=4096, key_pattern=ENV_NAME.pattern))
class EnvField(serializers.JSONField):
    """Environment variables: an object of strings (at most MAX_ENV_BYTES in all)."""


# Keys as mem0web.filters.field_name takes them (1-64 of [A-Za-z0-9_.-], no "__"), written without a
# lookahead: each unit is an optional "_" then another allowed character (a subset: no trailing "_").
@extend_schema_field(string_map(max_properties=MAX_METADATA_KEYS, key_pattern=r"^(?:_?[A-Za-z0-9.-]){1,32}$",
                                value_max_length=512))
class MetadataField(serializers.JSONField):
    """Your labels: an object of strings."""


class SandboxCreateSerializer(serializers.Serializer):
    runtime = RuntimeField(max_length=32)
    limits = SandboxLimitsSerializer(required=False)
    env = EnvField(required=False, help_text="Environment variables: an object of strings.")
    metadata = MetadataField(required=False, help_text="Your labels: an object of strings.")
    timeout_s = FiniteFloatField(required=False, min_value=1)


class PortExposeSerializer(serializers.Serializer):
    port = StrictIntegerField(min_value=1, max_value=65535)
    expires_s = StrictIntegerField(required=False, min_value=60, max_value=7 * 86_400,
                                         help_text="Lifetime of the signed URL (default 3600).")


class PortExposedSerializer(serializers.Serializer):
    port = serializers.IntegerField()
    url = serializers.CharField(help_text="Reachable with an API key of the organisation.")
    signed_url = serializers.CharField(help_text="Reachable by anyone holding it, until it expires.")
    signed_url_expires_at = serializers.DateTimeField()


class SandboxUpdateSerializer(serializers.Serializer):
    timeout_s = FiniteFloatField(required=False, min_value=1, help_text="The sandbox ends this many seconds from now (within the "
                                                          "plan's maximum lifetime).")


RESULT_MIME_TYPES = ["application/json", "image/jpeg", "image/png", "image/svg+xml", "text/html", "text/latex",
                     "text/markdown", "text/plain"]  # sandboxes/engine/results.py MIME_TYPES


@extend_schema_field({
    "type": "array",
    "description": "Rich results in order, as Jupyter gives them: the last expression's value, display() outputs, "
                   "matplotlib figures. Each maps MIME types to data (image/png: base64; application/json: any "
                   "JSON value; others: strings).",
    "items": {"type": "object", "properties": {m: {} if m == "application/json" else {"type": "string"}
                                               for m in RESULT_MIME_TYPES},
              "additionalProperties": False},
})
class ResultsField(serializers.JSONField):
    """The run's rich results: a list of {mime: data}."""


@extend_schema_field({
    "type": "object", "nullable": True,
    "description": "The run's uncaught exception, or the agent's `interpreter_exited` when the interpreter died.",
    "properties": {"name": {"type": "string"}, "value": {"type": "string"},
                   "traceback": {"type": "array", "items": {"type": "string"}}},
    "required": ["name", "value", "traceback"],
})
class ErrorField(serializers.JSONField):
    """`{name, value, traceback}` or null."""


class ExecutionSerializer(serializers.ModelSerializer):
    sandbox_id = serializers.CharField(read_only=True)
    stream_url = serializers.SerializerMethodField()
    results = ResultsField(read_only=True)
    error = ErrorField(read_only=True, allow_null=True)

    class Meta:
        model = Execution
        fields = ["id", "sandbox_id", "status", "exit_code", "stdout", "stderr", "truncated", "wall_ms", "cpu_ms",
                  "peak_memory_bytes", "limit", "results", "error", "timeout_s", "stream_url", "created_at",
                  "finished_at"]

    def get_stream_url(self, obj) -> str:
        return f"/api/v1/executions/{obj.pk}/events"


class ExecutionCreateSerializer(serializers.Serializer):
    """A run request, the one validation path for REST (POST .../executions) and websockets (SandboxConsumer)."""

    code = StrictCharField(allow_blank=True, trim_whitespace=False)
    timeout_s = FiniteFloatField(required=False, min_value=0.1)
    wait = serializers.BooleanField(required=False, default=True)
    stdin = StrictCharField(required=False, allow_blank=True, trim_whitespace=False, max_length=MAX_STDIN_CHARS,
                            help_text="What the run's sys.stdin reads (input() works), then end of file.")


class SnapshotSerializer(serializers.ModelSerializer):
    sandbox_id = serializers.CharField(allow_null=True, read_only=True)
    parent_id = serializers.CharField(allow_null=True, read_only=True)
    tags = serializers.SerializerMethodField()

    class Meta:
        model = Snapshot
        fields = ["id", "sandbox_id", "parent_id", "name", "tags", "digest", "runtime", "env", "logical_bytes",
                  "new_bytes", "stored_bytes", "files", "tier", "created_at"]

    def get_tags(self, obj) -> list[str]:
        return sorted(t.name for t in obj.tag_set.all())


def _iso(value) -> str | None:
    """A datetime as DRF's DateTimeField renders it (UTC: ISO 8601 with a Z)."""
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _str(value) -> str | None:
    return None if value is None else str(value)


def _float(value) -> float | None:
    return None if value is None else float(value)


def _int(value) -> int | None:
    return None if value is None else int(value)


def sandbox_json(s: Sandbox) -> dict:
    """SandboxSerializer's output, built directly: DRF's field-by-field rendering was ~4 % of a request's CPU
    on the hot paths (tests/sandboxes/test_representation.py keeps the two equal)."""
    return {"id": s.id, "runtime": _str(s.runtime), "state": _str(s.state), "parent_id": s.parent_id,
            "source_snapshot_id": s.source_snapshot_id, "memory": s.memory or None, "env": s.env,
            "metadata": s.metadata, "agent": _str(s.agent_id), "limits": s.limits, "exposed_ports": s.exposed_ports,
            "stop_reason": _str(s.stop_reason),
            "created_at": _iso(s.created_at), "last_active_at": _iso(s.last_active_at),
            "expires_at": _iso(s.expires_at), "paused_at": _iso(s.paused_at), "stopped_at": _iso(s.stopped_at)}


def execution_json(e: Execution) -> dict:
    """ExecutionSerializer's output, built directly (see sandbox_json)."""
    return {"id": e.id, "sandbox_id": _str(e.sandbox_id), "status": _str(e.status), "exit_code": _int(e.exit_code),
            "stdout": _str(e.stdout), "stderr": _str(e.stderr), "truncated": bool(e.truncated),
            "wall_ms": _float(e.wall_ms), "cpu_ms": _float(e.cpu_ms), "peak_memory_bytes": _int(e.peak_memory_bytes),
            "limit": _str(e.limit), "results": e.results if e.results is not None else [], "error": e.error,
            "timeout_s": _float(e.timeout_s), "stream_url": f"/api/v1/executions/{e.pk}/events",
            "created_at": _iso(e.created_at), "finished_at": _iso(e.finished_at)}


class RuntimeSerializer(serializers.Serializer):
    """A runtime as GET /api/v1/runtimes lists it (sandboxes/runtimes.py runtime_catalog)."""

    name = serializers.CharField()
    language = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    version = serializers.CharField(allow_null=True, help_text="As the agents serving it report it.")
    fork_memory = serializers.ChoiceField(
        choices=["carried", "fresh"],
        help_text="carried: a fork copies the live interpreter's memory; fresh: a new process with a copy of the workspace.",
    )
    can_fork_memory = serializers.BooleanField()
    pool_size = serializers.IntegerField(min_value=0, help_text="Warm sandboxes ready, over all agents.")
    agents = serializers.IntegerField(min_value=0)
    available = serializers.BooleanField()


class RuntimeListSerializer(serializers.Serializer):
    runtimes = RuntimeSerializer(many=True)
