"""Reads for the console's sandbox pages, every one scoped to the organisation inside the query."""

from django.db.models import QuerySet

from sandboxes.models import Execution, Sandbox
from sandboxes.selectors import snapshots_for_org

HISTORY_LIMIT = 50
LIVE_STATES = Sandbox.LIVE_STATES  # a paused state, when it comes, joins them there


def executions_for_sandbox(org, sandbox: Sandbox) -> QuerySet[Execution]:
    """The sandbox's latest runs, newest first (at most HISTORY_LIMIT)."""
    return Execution.objects.filter(organization=org, sandbox=sandbox).order_by("-created_at")[:HISTORY_LIMIT]


def forks_of(org, sandbox: Sandbox) -> QuerySet[Sandbox]:
    return Sandbox.objects.for_org(org).filter(parent=sandbox).order_by("-created_at")


def snapshots_of(org, sandbox: Sandbox):
    return snapshots_for_org(org).filter(sandbox=sandbox).order_by("-created_at")


def live_sandboxes(org) -> QuerySet[Sandbox]:
    return Sandbox.objects.for_org(org).filter(state__in=LIVE_STATES)
