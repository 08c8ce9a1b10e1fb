"""Tenant-scoped reads: every API and console query for tenancy data goes through here."""

from django.db.models import QuerySet

from accounts.models import APIKey, AuditEvent, Membership, Organization
from mem0web.errors import NotFound


def keys_for_org(org: Organization) -> QuerySet[APIKey]:
    return APIKey.objects.for_org(org).order_by("-created_at", "-id")


def key_by_id(org: Organization, key_id) -> APIKey:
    """The organisation's key; another tenant's key is 404, the same as a missing one."""
    try:
        return APIKey.objects.for_org(org).get(pk=int(key_id))
    except (APIKey.DoesNotExist, ValueError, TypeError):
        raise NotFound("No such API key.") from None


def audit_for_org(org: Organization, *, action: str | None = None) -> QuerySet[AuditEvent]:
    qs = AuditEvent.objects.for_org(org)
    if action and "\x00" in action:  # no action holds a NUL (and PostgreSQL would refuse it: a 500)
        return qs.none()
    if action:
        qs = qs.filter(action=action) if not action.endswith(".") else qs.filter(action__startswith=action)
    return qs


def membership_for(user, org_id: int | None = None) -> Membership | None:
    qs = Membership.objects.select_related("organization", "organization__plan").filter(user=user)
    if org_id is not None:
        qs = qs.filter(organization_id=org_id)
    return qs.order_by("created_at").first()
