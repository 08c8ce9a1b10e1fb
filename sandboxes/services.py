"""Sandbox lifecycle: create, fork, kill, stop bookkeeping, files. Views call these; they call the agents.

Every live sandbox holds one concurrent-sandbox slot; `sandbox_mark_ended()` gives it back exactly once
(a conditional state UPDATE decides who ends it) and records the sandbox-seconds it used.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.audit import audit_event, audit_record
from billing import quotas
from billing.selectors import effective_limits
from mem0web.errors import Mem0Error, PayloadTooLarge, PermissionDenied
from mem0web.sql import orm_update, update_and_insert
from sandboxes import dispatch
from sandboxes.models import Execution, Sandbox
from sandboxes.runtimes import RUNTIMES
from sandboxes.validation import UnknownRuntime, clean_env, clean_metadata, clean_workspace_path

log = logging.getLogger("mem0.sandboxes")


class SandboxNotRunning(Mem0Error):
    code, status, message = "sandbox_not_running", 409, "The sandbox is not running."


class SandboxPaused(Mem0Error):
    code, status, message = "sandbox_paused", 409, "The sandbox is paused; resume it first."


def sandbox_limits(org) -> dict:
    """The engine limits of a sandbox of this organisation, from its effective plan limits."""
    limits = effective_limits(org)
    memory = limits["memory_per_sandbox_mb"] * 1024 * 1024
    return {"memory_bytes": memory, "pids": 64, "cpu_cores": 1.0, "run_timeout_s": float(limits["max_run_seconds"]),
            "output_bytes": 4 * 1024 * 1024, "workspace_bytes": max(memory, 256 * 1024 * 1024), "network": False}


def sandbox_limits_asked(org, asked: dict | None) -> dict:
    """The plan's sandbox limits with those `asked` for on create put in their place; each asked value must
    not exceed the plan's, else quota_exceeded naming the limit (its details as every quota refusal's)."""
    limits = sandbox_limits(org)
    for name, value in (asked or {}).items():
        if value > limits[name]:
            raise quotas.QuotaExceeded(f"{name} may be at most {limits[name]} on this plan.",
                                       details={"limit_name": name, "used": value, "limit": limits[name],
                                                "resets_at": None})
        limits[name] = value
    return limits


def engine_limits(limits: dict):
    from sandboxes.engine.protocol import Limits

    return Limits(**limits)


def _creator(principal) -> dict:
    return {"created_by_user": principal.user if getattr(principal.user, "pk", None) else None,
            "created_by_key": principal.key}


def _lifetime(org, timeout_s) -> timezone.datetime:
    max_life = effective_limits(org)["max_lifetime_seconds"]
    seconds = max_life if timeout_s is None else min(float(timeout_s), max_life)
    return timezone.now() + timedelta(seconds=seconds)


PLACEMENT_RETRY_CODES = frozenset({"agent_lost", "agent_timeout", "agents_unavailable"})
PLACEMENT_ATTEMPTS = 3


def _start(sandbox: Sandbox, method: str, *, movable: bool = True, audit=None, **kwargs) -> dict:
    """Ask the agent to start `sandbox`; on failure the row ends `stopped` and the slot is returned.

    A new sandbox (`movable`) whose agent is dead, silent or full is placed on the next-best agent, up to
    PLACEMENT_ATTEMPTS agents; a fork must stay on its parent's agent. A retried create cannot run twice:
    agents drop ops whose deadline has passed. `audit(sandbox)` gives the unsaved audit event of a start,
    written with the state change in one statement."""
    tried: set[str] = set()
    while True:
        try:
            reply = dispatch.call(sandbox.agent_id, method, owner=sandbox.organization_id, **kwargs)
            break
        except Mem0Error as exc:
            tried.add(sandbox.agent_id)
            retry = movable and exc.code in PLACEMENT_RETRY_CODES and len(tried) < PLACEMENT_ATTEMPTS
            try:
                next_agent = dispatch.pick_agent(sandbox.runtime, exclude=tried) if retry else None
            except Mem0Error:
                next_agent = None
            if next_agent is None:
                sandbox_mark_ended(sandbox, state=Sandbox.State.STOPPED, reason="start_failed")
                raise exc from None
            log.warning("sandbox_replaced sandbox=%s from=%s to=%s code=%s", sandbox.pk, sandbox.agent_id,
                        next_agent, exc.code)
            sandbox.agent_id = next_agent
            Sandbox.objects.filter(pk=sandbox.pk).update(agent_id=next_agent)
    running = {"state": Sandbox.State.RUNNING}
    if audit is None:
        orm_update(Sandbox, running, id=sandbox.pk, state=Sandbox.State.STARTING)
    else:
        update_and_insert(Sandbox, running, audit(sandbox), id=sandbox.pk, state=Sandbox.State.STARTING)
    sandbox.state = Sandbox.State.RUNNING
    return reply


def sandbox_create(*, principal, runtime: str, env=None, metadata=None, timeout_s=None, request=None,
                   source_snapshot=None, restore_digest: str | None = None, restore_scope: str = "",
                   limits: dict | None = None) -> Sandbox:
    """Create a sandbox (from the warm pool, or restored from a snapshot's tree) on the best agent.

    `limits`: any of memory_bytes, cpu_cores, workspace_bytes, pids, run_timeout_s, output_bytes, each at
    most the plan's (see sandbox_limits_asked); the rest are the plan's. The agent enforces them all.

    Whatever the route (create, restore), a new running sandbox needs the `sandboxes:write` scope."""
    require_scope(principal, "sandboxes:write")
    if runtime not in RUNTIMES:
        raise UnknownRuntime(f"Unknown runtime {runtime!r}.", details={"runtimes": sorted(RUNTIMES)})
    org = principal.org
    env, metadata = clean_env(env), clean_metadata(metadata)
    limits = sandbox_limits_asked(org, limits)
    agent_id = dispatch.pick_agent(runtime)
    sandbox = Sandbox(organization=org, runtime=runtime, agent_id=agent_id, env=env, metadata=metadata,
                      limits=limits, expires_at=_lifetime(org, timeout_s), source_snapshot=source_snapshot,
                      **_creator(principal))
    quotas.sandbox_slot_reserve(org=org, record=sandbox)  # takes a slot and writes the row
    def audit(started: Sandbox):
        return audit_event(org=org, action="sandbox.restore" if source_snapshot else "sandbox.create",
                           principal=principal, request=request, target_type="sandbox", target_id=started.pk,
                           metadata={"runtime": runtime, "agent": started.agent_id,
                                     **({"snapshot": source_snapshot.pk} if source_snapshot else {})})

    if restore_digest is None:
        _start(sandbox, "create", audit=audit, sandbox_id=sandbox.pk, runtime=runtime, env=env,
               limits=engine_limits(limits))
    else:
        _start(sandbox, "restore", audit=audit, digest=restore_digest, scope=restore_scope,
               new_sandbox_id=sandbox.pk, runtime=runtime, env=env, limits=engine_limits(limits), timeout=120)
    return sandbox


def sandbox_fork(*, principal, sandbox: Sandbox, request=None) -> Sandbox:
    """Copy-on-write fork on the parent's agent: memory and workspace copied, own lifetime and accounting;
    its limits are the parent's (those asked for on create, else the plan's)."""
    require_scope(principal, "sandboxes:write")
    org = principal.org
    require_live(sandbox)
    quotas.sandbox_slot_reserve(org=org)
    limits = sandbox_limits(org)
    for name, value in (sandbox.limits or {}).items():  # the parent's own limits, never above today's plan
        if name in limits and name != "network":
            limits[name] = min(limits[name], value)
    child = Sandbox.objects.create(organization=org, runtime=sandbox.runtime, agent_id=sandbox.agent_id,
                                   env=sandbox.env, metadata=sandbox.metadata, limits=limits, parent=sandbox,
                                   source_snapshot=None, last_snapshot=sandbox.last_snapshot,
                                   expires_at=_lifetime(org, None), **_creator(principal))
    reply = _start(child, "fork", movable=False, sandbox_id=sandbox.pk, new_sandbox_id=child.pk,
                   limits=engine_limits(limits))
    child.memory = reply.get("memory", "copied")
    child.save(update_fields=["memory"])
    audit_record(org=org, action="sandbox.fork", principal=principal, request=request, target_type="sandbox",
                 target_id=child.pk, metadata={"parent": sandbox.pk, "memory": child.memory})
    return child


def require_scope(principal, scope: str) -> None:
    """PermissionDenied (403) unless the principal holds `scope`: services that start sandboxes check it
    themselves, so a route guarded by another scope (restore: snapshots:write) cannot create one."""
    if not principal.can(scope):
        raise PermissionDenied(f"This key lacks the {scope} scope.", details={"required_scope": scope})


def require_running(sandbox: Sandbox) -> None:
    """For what needs the sandbox's processes to run (code, commands)."""
    if sandbox.state == Sandbox.State.PAUSED:
        raise SandboxPaused(f"Sandbox {sandbox.pk} is paused; resume it first.", details={"state": sandbox.state})
    if sandbox.state != Sandbox.State.RUNNING:
        raise SandboxNotRunning(f"Sandbox {sandbox.pk} is {sandbox.state}.", details={"state": sandbox.state})


def require_live(sandbox: Sandbox) -> None:
    """For what a paused sandbox allows too (files, snapshots, forks)."""
    if sandbox.state not in (Sandbox.State.RUNNING, Sandbox.State.PAUSED):
        raise SandboxNotRunning(f"Sandbox {sandbox.pk} is {sandbox.state}.", details={"state": sandbox.state})


def sandbox_mark_ended(sandbox: Sandbox, *, state: str, reason: str, cpu_ms: float | None = None) -> bool:
    """Move a live sandbox to stopped/lost once: release its slot, meter its lifetime, end open runs.

    One transaction; the conditional state UPDATE makes it once, so the lifetime is metered straight into
    the organisation's period rows (no event to roll up). `cpu_ms`: the CPU its cgroup used over its whole
    life, as its agent reports it (`sandbox_lifetime_cpu`); what its recorded runs did not meter (work
    between runs: background threads and processes; runs that never got a result) is metered here. The
    runs still open are ended without CPU in the same transaction, so no CPU is counted twice. A sandbox
    whose agent is lost has no figure: its CPU between runs goes unmetered."""
    now = timezone.now()
    with transaction.atomic():
        ended = Sandbox.objects.filter(pk=sandbox.pk, state__in=Sandbox.LIVE_STATES).update(
            state=state, stop_reason=reason, stopped_at=now)
        if not ended:
            return False
        quotas.sandbox_slot_release(org=sandbox.organization_id)
        final = Execution.Status.AGENT_LOST if state == Sandbox.State.LOST else Execution.Status.KILLED
        open_runs = Execution.objects.filter(sandbox=sandbox, status__in=Execution.OPEN_STATUSES)
        ended_runs = list(open_runs.values_list("pk", flat=True))
        open_runs.filter(pk__in=ended_runs).update(status=final, finished_at=now)
        between_runs_us = 0 if cpu_ms is None else _cpu_between_runs_unmetered(sandbox.pk, cpu_ms)
        quotas.usage_add(sandbox.organization_id, now, cpu_us=between_runs_us,
                         sandbox_ms=round((now - sandbox.created_at).total_seconds() * 1000))
    sandbox.state, sandbox.stop_reason, sandbox.stopped_at = state, reason, now
    dispatch.output_recorded(ended_runs)  # recorded as ended: their streams may go
    return True


def _cpu_between_runs_unmetered(sandbox_id: str, cpu_ms: float) -> int:
    """Of the lifetime CPU `cpu_ms`, the µs that neither its recorded runs nor an earlier metering counted;
    recorded as metered. Call inside a transaction holding the sandbox row's lock."""
    in_runs = Execution.objects.filter(sandbox_id=sandbox_id).aggregate(cpu=Sum("cpu_ms"))["cpu"] or 0
    between_us = max(0, round((cpu_ms - in_runs) * 1000))
    metered = Sandbox.objects.filter(pk=sandbox_id).values_list("cpu_between_runs_us", flat=True).first() or 0
    if between_us <= metered:
        return 0
    Sandbox.objects.filter(pk=sandbox_id).update(cpu_between_runs_us=between_us)
    return between_us - metered


def sandbox_meter_cpu(*, sandbox_id: str, organization_id: int, cpu_ms: float) -> int:
    """Meter a running sandbox's CPU used between runs so far (`cpu_ms`: its lifetime CPU, read by its agent
    before this call). Skipped while a run is open: its CPU is in the lifetime figure but not yet in its
    row, and would be counted twice. Returns the µs metered (0 when nothing new)."""
    now = timezone.now()
    with transaction.atomic():
        locked = list(Sandbox.objects.select_for_update().filter(pk=sandbox_id, state=Sandbox.State.RUNNING)
                      .values_list("pk", flat=True))
        if not locked or Execution.objects.filter(sandbox_id=sandbox_id, status__in=Execution.OPEN_STATUSES).exists():
            return 0
        added = _cpu_between_runs_unmetered(sandbox_id, cpu_ms)
        if added:
            quotas.usage_add(organization_id, now, cpu_us=added)
    return added


def sandbox_lifetime_cpu(sandbox: Sandbox) -> float | None:
    """Kill the sandbox on its agent (a no-op if it already ended) and return its lifetime CPU in ms, or None
    when the agent cannot say (unreachable, or it forgot a sandbox that ended long ago)."""
    try:
        cpu_ms = (dispatch.call(sandbox.agent_id, "kill", owner=sandbox.organization_id, sandbox_id=sandbox.pk) or {}).get("cpu_ms")
    except Mem0Error as exc:
        log.warning("kill_not_delivered sandbox=%s agent=%s code=%s", sandbox.pk, sandbox.agent_id, exc.code)
        return None
    return float(cpu_ms) if isinstance(cpu_ms, int | float) and cpu_ms >= 0 else None


def sandbox_ended_by_itself(sandbox: Sandbox, *, reason: str) -> bool:
    """The sandbox's interpreter is gone (it exited, or was OOM-killed): stop it here, metering its CPU."""
    if sandbox.state not in Sandbox.LIVE_STATES:
        return False
    return sandbox_mark_ended(sandbox, state=Sandbox.State.STOPPED, reason=reason,
                              cpu_ms=sandbox_lifetime_cpu(sandbox))


def sandbox_kill(*, principal, sandbox: Sandbox, request=None, reason: str = "killed") -> Sandbox:
    """Stop a sandbox (idempotent). The agent is told; if it is gone, the sandbox is still stopped here."""
    if sandbox.state in Sandbox.LIVE_STATES:
        cpu_ms = sandbox_lifetime_cpu(sandbox)
        if sandbox_mark_ended(sandbox, state=Sandbox.State.STOPPED, reason=reason, cpu_ms=cpu_ms) \
                and principal is not None:
            audit_record(org=sandbox.organization, action="sandbox.kill", principal=principal, request=request,
                         target_type="sandbox", target_id=sandbox.pk, metadata={"reason": reason})
    return sandbox


def file_list(*, sandbox: Sandbox, path: str) -> list[dict]:
    require_live(sandbox)
    return dispatch.call(sandbox.agent_id, "files_list", owner=sandbox.organization_id, sandbox_id=sandbox.pk,
                         path=clean_workspace_path(path, allow_root=True))


def file_read(*, sandbox: Sandbox, path: str) -> bytes:
    """The file's bytes, at most settings.MEM0_MAX_FILE_BYTES (413 payload_too_large past it).

    The agent is asked for no more than the cap (it never reads more than the cap plus one byte, whatever
    the file grows to meanwhile), and the size of what came back is checked again here."""
    require_live(sandbox)
    cap = settings.MEM0_MAX_FILE_BYTES
    too_large = PayloadTooLarge(f"Files may be at most {cap} bytes.", details={"limit": cap})
    try:
        data = dispatch.call(sandbox.agent_id, "file_read", owner=sandbox.organization_id, sandbox_id=sandbox.pk, path=clean_workspace_path(path),
                             max_bytes=cap)
    except Mem0Error as exc:
        if exc.code == "payload_too_large":
            raise too_large from None
        raise
    if len(data) > cap:
        raise too_large
    return data


def file_write(*, sandbox: Sandbox, path: str, data: bytes) -> None:
    require_live(sandbox)
    dispatch.call(sandbox.agent_id, "file_write", owner=sandbox.organization_id, sandbox_id=sandbox.pk, path=clean_workspace_path(path), data=data)


def file_delete(*, sandbox: Sandbox, path: str) -> None:
    require_live(sandbox)
    dispatch.call(sandbox.agent_id, "file_delete", owner=sandbox.organization_id, sandbox_id=sandbox.pk, path=clean_workspace_path(path))
