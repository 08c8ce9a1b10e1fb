"""Cache invalidation: any change to a plan, an override or an organisation drops the cached limits."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.models import Organization
from billing.models import Plan, PlanOverride
from billing.selectors import forget_limits


@receiver([post_save, post_delete], sender=PlanOverride)
def override_changed(sender, instance, **kwargs):
    forget_limits([instance.organization_id])


@receiver([post_save, post_delete], sender=Organization)
def organization_changed(sender, instance, **kwargs):
    forget_limits([instance.pk])


@receiver(post_save, sender=Plan)
def plan_changed(sender, instance, **kwargs):
    forget_limits(Organization.objects.filter(plan=instance).values_list("pk", flat=True))
