"""JSON shapes of DESIGN §6.1 for sandboxes, executions and snapshots."""

from rest_framework import serializers

from sandboxes.models import Execution, Sandbox, Snapshot


class SandboxSerializer(serializers.ModelSerializer):
    parent_id = serializers.CharField(allow_null=True, read_only=True)
    source_snapshot_id = serializers.CharField(allow_null=True, read_only=True)
    agent = serializers.CharField(source="agent_id", read_only=True)
    memory = serializers.SerializerMethodField()

    class Meta:
        model = Sandbox
        fields = ["id", "runtime", "state", "parent_id", "source_snapshot_id", "memory", "env", "metadata", "agent",
                  "limits", "stop_reason", "created_at", "last_active_at", "expires_at", "stopped_at"]

    def get_memory(self, obj) -> str | None:
        return obj.memory or None


class SandboxCreateSerializer(serializers.Serializer):
    runtime = serializers.CharField(max_length=32)
    env = serializers.JSONField(required=False, help_text="Environment variables: an object of strings.")
    metadata = serializers.JSONField(required=False, help_text="Your labels: an object of strings.")
    timeout_s = serializers.FloatField(required=False, min_value=1)


class ExecutionSerializer(serializers.ModelSerializer):
    sandbox_id = serializers.CharField(read_only=True)
    stream_url = serializers.SerializerMethodField()

    class Meta:
        model = Execution
        fields = ["id", "sandbox_id", "status", "exit_code", "stdout", "stderr", "truncated", "wall_ms", "cpu_ms",
                  "peak_memory_bytes", "limit", "timeout_s", "stream_url", "created_at", "finished_at"]

    def get_stream_url(self, obj) -> str:
        return f"/api/v1/executions/{obj.pk}/events"


class ExecutionCreateSerializer(serializers.Serializer):
    code = serializers.CharField(allow_blank=True, trim_whitespace=False)
    timeout_s = serializers.FloatField(required=False, min_value=0.1)
    wait = serializers.BooleanField(required=False, default=True)


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


class Representer:
    """Renders instances through one serializer built once.

    DRF builds a ModelSerializer's fields anew for every instance (py-spy: 9 % of a run request's CPU); the
    bound fields keep no per-instance state, so one set serves every instance and thread."""

    def __init__(self, serializer_class):
        self._template = serializer_class()

    def __call__(self, instance) -> dict:
        return self._template.to_representation(instance)

    def many(self, instances) -> list[dict]:
        return [self._template.to_representation(i) for i in instances]


sandbox_json = Representer(SandboxSerializer)
execution_json = Representer(ExecutionSerializer)
