"""Writes for billing: usage roll-up, and the operators' actions on plans, overrides and suspension.

Every operator action is written to the audit log with the operator's name, and drops the organisation's
cached API keys (accounts.authentication caches the key with its organisation and plan), so a plan change
or a suspension applies from the next request in every web process.
"""

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from accounts.audit import audit_record
from accounts.authentication import forget_key, forget_org_keys
from accounts.models import APIKey, Organization
from billing.models import LIMIT_FIELDS, Plan, StorageHeld, UsageEvent, UsagePeriod
from billing.periods import DAY, MONTH, period_of
from billing.quotas import period_row_ensure, periods_add

log = logging.getLogger("mem0.billing")

ROLL_UP_BATCH = 2000
# Rolled-up events are kept this long (to trace a figure back to its run, and to recognise a late duplicate
# report by its source), then deleted so the table stays bounded; their figures live on in UsagePeriod.
EVENT_RETENTION = timedelta(days=90)


def _operator_label(operator) -> str:
    return f"operator:{getattr(operator, 'username', '?')}"


def usage_roll_up(*, now: datetime | None = None, batch: int = ROLL_UP_BATCH) -> int:
    """Fold pending UsageEvents into their day and month UsagePeriods; returns how many were folded.

    Each batch is one transaction that adds the events' figures and marks them rolled up, so an event
    counts once: concurrent roll-ups take disjoint batches (SKIP LOCKED on PostgreSQL; SQLite has one
    writer). Safe to run at any time and to retry. Also samples snapshot storage into the current periods
    and deletes rolled-up events older than EVENT_RETENTION."""
    now = now or timezone.now()
    total = 0
    while True:
        done = _roll_up_batch(batch)
        total += done
        if done < batch:
            break
    _sample_storage(now)
    UsageEvent.objects.filter(rolled_up=True, created_at__lt=now - EVENT_RETENTION).delete()
    return total


@transaction.atomic
def _roll_up_batch(batch: int) -> int:
    pending = UsageEvent.objects.filter(rolled_up=False).order_by("id")
    if connection.features.has_select_for_update_skip_locked:
        pending = pending.select_for_update(skip_locked=True)
    events = list(
        pending.values_list("id", "organization_id", "created_at", "executions", "cpu_us", "sandbox_ms")[
            :batch
        ]
    )
    sums: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
    for _, org_id, created_at, executions, cpu_us, sandbox_ms in events:
        for kind in (DAY, MONTH):
            acc = sums[(org_id, kind, period_of(kind, created_at).start)]
            acc[0] += executions
            acc[1] += cpu_us
            acc[2] += sandbox_ms
    periods_add([(org_id, kind, start, *figures) for (org_id, kind, start), figures in sums.items()])
    UsageEvent.objects.filter(id__in=[e[0] for e in events]).update(rolled_up=True)
    return len(events)


def _sample_storage(now: datetime) -> None:
    """Keep the highest snapshot storage seen in each current day and month row."""
    held = StorageHeld.objects.filter(bytes__gt=0).values("organization_id", stored=F("bytes"))
    for row in held:
        for kind in (DAY, MONTH):
            start = period_of(kind, now).start
            period_row_ensure(row["organization_id"], kind, start)
            UsagePeriod.objects.filter(organization_id=row["organization_id"], kind=kind, start=start).update(
                storage_bytes=Greatest(F("storage_bytes"), row["stored"])
            )


def organization_plan_change(*, org: Organization, plan: Plan, operator, request=None) -> bool:
    """Move an organisation to another plan; its next request is limited by the new one."""
    old = Plan.objects.get(pk=org.plan_id)
    if old.pk == plan.pk:
        return False
    Organization.objects.filter(pk=org.pk).update(plan=plan)
    org.plan = plan
    forget_org_keys(org)
    audit_record(
        org=org,
        action="organization.plan_change",
        user=operator,
        request=request,
        actor_label=_operator_label(operator),
        target_type="organization",
        target_id=str(org.pk),
        metadata={"from": old.slug, "to": plan.slug},
    )
    return True


def organization_suspend(*, org: Organization, operator, request=None, reason: str = "") -> list[str]:
    """Suspend an organisation: its keys get 403 organization_suspended from the next request, and its live
    sandboxes are stopped. Idempotent (a repeat stops anything started meanwhile). Returns stopped ids."""
    changed = Organization.objects.filter(pk=org.pk, suspended=False).update(suspended=True)
    org.suspended = True
    forget_org_keys(org)
    stopped = _stop_live_sandboxes(org)
    if changed or stopped:
        audit_record(
            org=org,
            action="organization.suspend",
            user=operator,
            request=request,
            actor_label=_operator_label(operator),
            target_type="organization",
            target_id=str(org.pk),
            metadata={"reason": reason, "stopped_sandboxes": stopped},
        )
    return stopped


def organization_unsuspend(*, org: Organization, operator, request=None) -> bool:
    changed = Organization.objects.filter(pk=org.pk, suspended=True).update(suspended=False)
    org.suspended = False
    forget_org_keys(org)
    if changed:
        audit_record(
            org=org,
            action="organization.unsuspend",
            user=operator,
            request=request,
            actor_label=_operator_label(operator),
            target_type="organization",
            target_id=str(org.pk),
        )
    return bool(changed)


def _stop_live_sandboxes(org: Organization) -> list[str]:
    from sandboxes.models import Sandbox
    from sandboxes.services import sandbox_kill

    stopped = []
    for sandbox in Sandbox.objects.for_org(org).filter(state__in=Sandbox.LIVE_STATES):
        sandbox_kill(principal=None, sandbox=sandbox, reason="organization_suspended")
        stopped.append(sandbox.pk)
    if stopped:
        log.info("suspension_stopped_sandboxes org=%s count=%s", org.pk, len(stopped))
    return stopped


def plan_override_recorded(*, org: Organization, before: dict, after: dict, operator, request=None) -> None:
    """Audit an operator's change to an organisation's overrides (values are None where the plan applies)."""
    changes = {
        name: [before.get(name), after.get(name)]
        for name in LIMIT_FIELDS
        if before.get(name) != after.get(name)
    }
    if not changes:
        return
    forget_org_keys(org)
    audit_record(
        org=org,
        action="quota.override_change",
        user=operator,
        request=request,
        actor_label=_operator_label(operator),
        target_type="organization",
        target_id=str(org.pk),
        metadata={"changes": changes},
    )


def plan_change_recorded(*, plan: Plan, before: dict, operator, request=None) -> None:
    """Audit an operator's edit of a plan's limits and apply it to its organisations from the next request."""
    changes = {
        name: [before.get(name), getattr(plan, name)]
        for name in ("name", *LIMIT_FIELDS)
        if before.get(name) != getattr(plan, name)
    }
    if not changes:
        return
    for prefix in APIKey.objects.filter(organization__plan=plan).values_list("prefix", flat=True).iterator():
        forget_key(prefix)
    audit_record(
        org=None,
        action="plan.change" if before else "plan.create",
        user=operator,
        request=request,
        actor_label=_operator_label(operator),
        target_type="plan",
        target_id=plan.slug,
        metadata={"changes": changes},
    )
