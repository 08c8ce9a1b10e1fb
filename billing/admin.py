"""Operators' admin for billing: plans (editable, every edit audited) and usage (read-only history)."""

from django.contrib import admin
from django.forms.models import model_to_dict

from billing import services
from billing.models import LIMIT_FIELDS, Plan, UsageEvent, UsagePeriod


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = [
        "slug",
        "name",
        "concurrent_sandboxes",
        "executions_per_day",
        "cpu_seconds_per_month",
        "memory_per_sandbox_mb",
        "max_run_seconds",
        "snapshot_storage_bytes",
        "requests_per_minute",
        "request_burst",
    ]
    fields = ["slug", "name", *LIMIT_FIELDS]

    def save_model(self, request, obj, form, change):
        before = model_to_dict(Plan.objects.get(pk=obj.pk)) if change else {}
        super().save_model(request, obj, form, change)
        services.plan_change_recorded(plan=obj, before=before, operator=request.user, request=request)

    def has_delete_permission(self, request, obj=None):
        return False  # organisations point at plans (PROTECT); a plan is retired by moving them off it


class ReadOnlyAdmin(admin.ModelAdmin):
    """Metered history is never edited by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(UsagePeriod)
class UsagePeriodAdmin(ReadOnlyAdmin):
    list_display = [
        "organization",
        "kind",
        "start",
        "executions",
        "executions_admitted",
        "cpu_us",
        "sandbox_ms",
        "storage_bytes",
    ]
    list_filter = ["kind"]
    search_fields = ["organization__slug"]
    date_hierarchy = "start"


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "organization", "source", "executions", "cpu_us", "sandbox_ms", "rolled_up"]
    list_filter = ["rolled_up"]
    search_fields = ["organization__slug", "source"]
    date_hierarchy = "created_at"
