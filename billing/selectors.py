"""Reads for plans and limits."""

from accounts.models import Organization
from billing.models import LIMIT_FIELDS, Plan, PlanOverride


def effective_limits(org: Organization) -> dict[str, int]:
    """The organisation's limits: its plan's values, with any operator override on top."""
    plan: Plan = org.plan
    limits = {name: getattr(plan, name) for name in LIMIT_FIELDS}
    override = PlanOverride.objects.filter(organization_id=org.pk).first()
    if override is not None:
        for name in LIMIT_FIELDS:
            value = getattr(override, name)
            if value is not None:
                limits[name] = value
    return limits


def plan_by_slug(slug: str) -> Plan:
    return Plan.objects.get(slug=slug)
