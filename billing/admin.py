"""Operators' admin for plans."""

from django.contrib import admin

from billing.models import Plan


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "concurrent_sandboxes", "executions_per_day", "cpu_seconds_per_month",
                    "memory_per_sandbox_mb", "max_run_seconds", "snapshot_storage_bytes", "requests_per_minute"]
