"""Operators' admin for tenancy: organisations with members, keys (revoke only), audit (read-only).

Organisations show their usage beside their limits; plan changes, suspension and override edits go
through billing.services, which write the audit log with the operator's name and drop cached keys.
"""

import csv

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.http import HttpResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts import services
from accounts.audit import audit_record
from accounts.models import APIKey, AuditEvent, Membership, Organization
from billing import services as billing_services
from billing.models import LIMIT_FIELDS, Plan, PlanOverride
from billing.selectors import limits_table, organizations_with_usage, usage_csv_rows, usage_report


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class PlanOverrideInline(admin.StackedInline):
    model = PlanOverride
    extra = 0
    max_num = 1


class OrganizationActionForm(ActionForm):
    plan = forms.ModelChoiceField(Plan.objects.all(), required=False, help_text="For “Change plan”.")
    reason = forms.CharField(required=False, max_length=200, help_text="For “Suspend”: recorded in the audit log.")


def _override_values(org: Organization) -> dict:
    row = PlanOverride.objects.filter(organization=org).values(*LIMIT_FIELDS).first()
    return row or {}


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "plan", "suspended", "sandboxes_in_use", "executions_today", "cpu_seconds_month",
                    "storage_bytes_now", "created_at"]
    list_filter = ["plan", "suspended"]
    search_fields = ["slug", "name"]
    readonly_fields = ["limits_overview", "usage_overview"]
    inlines = [MembershipInline, PlanOverrideInline]
    action_form = OrganizationActionForm
    actions = ["change_plan", "suspend", "unsuspend", "export_usage_csv"]

    def get_queryset(self, request):
        return organizations_with_usage(super().get_queryset(request).select_related("plan"))

    @admin.display(description="sandboxes", ordering="sandboxes_in_use")
    def sandboxes_in_use(self, org):
        return org.sandboxes_in_use

    @admin.display(description="runs today", ordering="executions_today")
    def executions_today(self, org):
        return org.executions_today

    @admin.display(description="CPU s this month", ordering="cpu_us_month")
    def cpu_seconds_month(self, org):
        return round(org.cpu_us_month / 1_000_000, 1)

    @admin.display(description="snapshot bytes", ordering="storage_bytes_now")
    def storage_bytes_now(self, org):
        return org.storage_bytes_now

    @admin.display(description="limits (plan, override, effective)")
    def limits_overview(self, org):
        if org.pk is None:
            return "—"
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td><strong>{}</strong></td></tr>",
                                ((r["name"], r["plan"], "—" if r["override"] is None else r["override"],
                                  r["effective"]) for r in limits_table(org)))
        return format_html("<table><tr><th>limit</th><th>plan</th><th>override</th><th>effective</th></tr>{}"
                           "</table>", rows)

    @admin.display(description="usage now")
    def usage_overview(self, org):
        if org.pk is None:
            return "—"
        report = usage_report(org)
        names = ("executions", "cpu_ms", "sandbox_seconds", "storage_bytes", "concurrent_sandboxes")
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                                ((n, report[n]["used"], "—" if report[n]["limit"] is None else report[n]["limit"],
                                  report[n]["window"]) for n in names))
        return format_html("<table><tr><th>metric</th><th>used</th><th>limit</th><th>window</th></tr>{}</table>",
                           rows)

    def save_model(self, request, obj, form, change):
        """Plan and suspension changes made in the form go through the same services as the actions."""
        if not change:
            super().save_model(request, obj, form, change)
            audit_record(org=obj, action="organization.create", user=request.user, request=request,
                         actor_label=f"operator:{request.user.username}", target_type="organization",
                         target_id=str(obj.pk), metadata={"plan": obj.plan.slug, "suspended": obj.suspended})
            return
        old = Organization.objects.get(pk=obj.pk)
        new_plan, new_suspended = obj.plan, obj.suspended
        obj.plan, obj.suspended = old.plan, old.suspended
        super().save_model(request, obj, form, change)
        if new_plan.pk != old.plan_id:
            billing_services.organization_plan_change(org=obj, plan=new_plan, operator=request.user, request=request)
        if new_suspended and not old.suspended:
            billing_services.organization_suspend(org=obj, operator=request.user, request=request)
        elif old.suspended and not new_suspended:
            billing_services.organization_unsuspend(org=obj, operator=request.user, request=request)

    def save_related(self, request, form, formsets, change):
        before = _override_values(form.instance) if change else {}
        super().save_related(request, form, formsets, change)
        billing_services.plan_override_recorded(org=form.instance, before=before,
                                                after=_override_values(form.instance), operator=request.user,
                                                request=request)

    @admin.action(description="Change plan of selected organisations (choose the plan above)")
    def change_plan(self, request, queryset):
        plan = Plan.objects.filter(pk=request.POST.get("plan") or None).first()
        if plan is None:
            messages.error(request, "Choose a plan to move the organisations to.")
            return
        changed = sum(billing_services.organization_plan_change(org=org, plan=plan, operator=request.user,
                                                                request=request) for org in queryset)
        messages.success(request, f"Moved {changed} organisation(s) to {plan.name}.")

    @admin.action(description="Suspend selected organisations (stops their sandboxes)")
    def suspend(self, request, queryset):
        reason = request.POST.get("reason", "")
        stopped = [billing_services.organization_suspend(org=org, operator=request.user, request=request,
                                                         reason=reason) for org in queryset]
        messages.success(request, f"Suspended {len(stopped)} organisation(s); stopped "
                                   f"{sum(len(s) for s in stopped)} sandbox(es).")

    @admin.action(description="Unsuspend selected organisations")
    def unsuspend(self, request, queryset):
        changed = sum(billing_services.organization_unsuspend(org=org, operator=request.user, request=request)
                      for org in queryset)
        messages.success(request, f"Unsuspended {changed} organisation(s).")

    @admin.action(description="Export usage of selected organisations as CSV")
    def export_usage_csv(self, request, queryset):
        response = HttpResponse(content_type="text/csv")
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="mem0-usage-{stamp}.csv"'
        writer = csv.writer(response)
        for row in usage_csv_rows(queryset.order_by("slug")):
            writer.writerow(row)
        return response


@admin.register(APIKey)
class APIKeyAdmin(admin.ModelAdmin):
    """No secret material is shown: not the digest, never the key."""

    list_display = ["name", "prefix", "organization", "created_by", "created_at", "last_used_at", "expires_at",
                    "revoked_at"]
    list_filter = ["organization"]
    search_fields = ["prefix", "name", "organization__slug"]
    fields = ["organization", "name", "prefix", "scopes", "created_by", "created_at", "last_used_at", "expires_at",
              "revoked_at"]
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        for key in queryset.select_related("organization"):
            services.apikey_revoke(key=key, user=request.user, request=request)
        messages.success(request, f"Revoked {queryset.count()} key(s).")


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "organization", "actor_label", "action", "target_type", "target_id", "ip"]
    list_filter = ["action"]
    search_fields = ["action", "actor_label", "target_id", "organization__slug"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
