"""Housekeeping services run by Celery beat: lifetimes, dead agents, stale executions, idempotency records."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from billing.selectors import effective_limits
from sandboxes import dispatch, executions
from sandboxes.idempotency import RETENTION
from sandboxes.models import Agent, Execution, IdempotencyRecord, Sandbox
from sandboxes.pausing import sandbox_pause, sandbox_recover
from sandboxes.services import sandbox_kill, sandbox_mark_ended, sandbox_meter_cpu

log = logging.getLogger("mem0.reaping")


@contextmanager
def _each(what: str, pk) -> Iterator[None]:
    """One item of a sweep: its failure is logged and the sweep goes on with the next (one bad
    row must never stall the others, as an unrecordable result once did: finding 6)."""
    try:
        with transaction.atomic():
            yield
    except Exception:
        log.exception("event=sweep_item_failed what=%s id=%s", what, pk)


def sandboxes_reap(now: datetime | None = None) -> int:
    """Stop sandboxes past their maximum lifetime; stop (or pause, where the plan says `pause_on_idle`) those
    idle longer than their plan allows."""
    now = now or timezone.now()
    reaped = 0
    live = Sandbox.objects.filter(state__in=(Sandbox.State.RUNNING, Sandbox.State.PAUSED)).select_related(
        "organization__plan")
    for sandbox in live.filter(expires_at__lte=now):  # a paused sandbox's lifetime runs on
        with _each("reap_lifetime", sandbox.pk):
            sandbox_kill(principal=None, sandbox=sandbox, reason="max_lifetime")
            reaped += 1
    idle_limits: dict[int, dict] = {}
    running = live.filter(state=Sandbox.State.RUNNING)  # paused time is not idle time
    for sandbox in running.filter(last_active_at__lt=now - timedelta(seconds=60)):
        with _each("reap_idle", sandbox.pk):
            org = sandbox.organization
            if org.pk not in idle_limits:
                idle_limits[org.pk] = effective_limits(org)
            limits = idle_limits[org.pk]
            busy = Execution.objects.filter(sandbox=sandbox, status__in=Execution.OPEN_STATUSES).exists()
            if not busy and sandbox.last_active_at < now - timedelta(seconds=limits["idle_timeout_seconds"]):
                if limits.get("pause_on_idle"):
                    sandbox_pause(principal=None, sandbox=sandbox, reason="idle_timeout")
                else:
                    sandbox_kill(principal=None, sandbox=sandbox, reason="idle_timeout")
                reaped += 1
    IdempotencyRecord.objects.filter(created_at__lt=now - RETENTION).delete()
    return reaped


def sandboxes_meter_cpu() -> int:
    """Meter the CPU that running sandboxes used between runs (background threads and processes), so a
    long-lived sandbox is billed as it goes, not only when it ends. Returns the µs metered."""
    metered = 0
    running = Sandbox.objects.filter(state=Sandbox.State.RUNNING).values_list("id", "agent_id", "organization_id")
    by_agent: dict[str, list[tuple[str, int]]] = {}
    for sandbox_id, agent_id, org_id in running:
        by_agent.setdefault(agent_id, []).append((sandbox_id, org_id))
    for agent_id, sandboxes in by_agent.items():
        try:
            totals = dispatch.call(agent_id, "sandboxes_cpu")
        except Exception as exc:  # one agent failing must not stop the others' metering
            log.warning("cpu_metering_skipped agent=%s error=%s", agent_id, type(exc).__name__)
            continue
        for sandbox_id, org_id in sandboxes:
            cpu_ms = totals.get(sandbox_id)
            if isinstance(cpu_ms, int | float):
                metered += sandbox_meter_cpu(sandbox_id=sandbox_id, organization_id=org_id, cpu_ms=cpu_ms)
    return metered


def agents_sweep() -> dict:
    """Refresh the agents' registry; sandboxes on an agent whose heartbeat expired become `lost`."""
    seen = dispatch.engine().agents()
    alive = {a.id for a in seen if a.alive}
    for a in seen:
        Agent.objects.update_or_create(id=a.id, defaults={
            "host": a.host, "capacity": a.capacity, "runtimes": list(a.runtimes), "load": a.load, "alive": a.alive,
            "last_heartbeat": datetime.fromtimestamp(a.last_heartbeat, tz=UTC)})
    Agent.objects.exclude(id__in=[a.id for a in seen]).update(alive=False)
    lost = 0
    recovered = 0
    for sandbox in Sandbox.objects.filter(state__in=Sandbox.LIVE_STATES).exclude(agent_id__in=alive).select_related(
            "organization", "last_snapshot"):
        with _each("mark_lost", sandbox.pk):
            if sandbox_recover(sandbox):  # paused, with a snapshot: back on another agent, memory lost
                recovered += 1
                continue
            lost += sandbox_mark_ended(sandbox, state=Sandbox.State.LOST, reason="agent_lost")
    finished = 0
    stale = Execution.objects.filter(status__in=Execution.OPEN_STATUSES,
                                     created_at__lt=timezone.now() - timedelta(seconds=2)).select_related(
        "sandbox", "organization")
    for execution in stale:
        with _each("refresh_execution", execution.pk):
            before = execution.status
            executions.execution_refresh(execution)
            finished += execution.status != before
    if lost:
        log.warning("agents_lost sandboxes=%d alive_agents=%d", lost, len(alive))
    return {"agents": len(seen), "alive": len(alive), "lost_sandboxes": lost, "recovered_sandboxes": recovered,
            "finished_executions": finished}
