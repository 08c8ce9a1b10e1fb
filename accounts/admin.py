"""Operators' admin for tenancy: organisations with members, keys (revoke only), audit (read-only)."""

from django.contrib import admin, messages

from accounts import services
from accounts.models import APIKey, AuditEvent, Membership, Organization
from billing.models import PlanOverride


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class PlanOverrideInline(admin.StackedInline):
    model = PlanOverride
    extra = 0
    max_num = 1


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "plan", "suspended", "created_at"]
    list_filter = ["plan", "suspended"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline, PlanOverrideInline]


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
