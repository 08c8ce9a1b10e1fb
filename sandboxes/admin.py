"""Operators' admin: agents and their health; sandboxes, executions and snapshots (read-only history)."""

from django.contrib import admin

from sandboxes.models import Agent, Execution, Sandbox, Snapshot


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Agent)
class AgentAdmin(ReadOnlyAdmin):
    list_display = ["id", "host", "alive", "load", "capacity", "runtimes", "last_heartbeat"]
    list_filter = ["alive"]


@admin.register(Sandbox)
class SandboxAdmin(ReadOnlyAdmin):
    list_display = ["id", "organization", "runtime", "state", "agent_id", "parent", "created_at", "stop_reason"]
    list_filter = ["state", "runtime"]
    search_fields = ["id", "organization__slug"]


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyAdmin):
    list_display = ["id", "organization", "sandbox", "status", "exit_code", "wall_ms", "cpu_ms", "limit",
                    "created_at"]
    list_filter = ["status", "limit"]
    exclude = ["code", "stdout", "stderr"]


@admin.register(Snapshot)
class SnapshotAdmin(ReadOnlyAdmin):
    list_display = ["id", "organization", "sandbox", "parent", "name", "tier", "logical_bytes", "stored_bytes",
                    "created_at"]
    list_filter = ["tier"]
