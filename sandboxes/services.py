"""Sandbox lifecycle: create, fork, kill, stop bookkeeping, files. Views call these; they call the agents.

Every live sandbox holds one concurrent-sandbox slot; `sandbox_mark_ended()` gives it back exactly once
(a conditional state UPDATE decides who ends it) and records the sandbox-seconds it used.
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_event, audit_record
from billing import quotas
from billing.selectors import effective_limits
from mem0web.errors import Mem0Error, PermissionDenied
from mem0web.sql import orm_update, update_and_insert
from sandboxes import dispatch
from sandboxes.models import Execution, Sandbox
from sandboxes.runtimes import RUNTIMES
from sandboxes.validation import UnknownRuntime, clean_env, clean_metadata, clean_workspace_path

log = logging.getLogger("mem0.sandboxes")


class SandboxNotRunning(Mem0Error):
    code, status, message = "sandbox_not_running", 409, "The sandbox is not running."


def sandbox_limits(org) -> dict:
    """The engine limits of a sandbox of this organisation, from its effective plan limits."""
    limits = effective_limits(org)
    memory = limits["memory_per_sandbox_mb"] * 1024 * 1024
    return {"memory_bytes": memory, "pids": 64, "cpu_cores": 1.0, "run_timeout_s": float(limits["max_run_seconds"]),
            "output_bytes": 4 * 1024 * 1024, "workspace_bytes": max(memory, 256 * 1024 * 1024), "network": False}


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
            reply = dispatch.call(sandbox.agent_id, method, **kwargs)
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
                   source_snapshot=None, restore_digest: str | None = None) -> Sandbox:
    """Create a sandbox (from the warm pool, or restored from a snapshot's tree) on the best agent.

    Whatever the route (create, restore), a new running sandbox needs the `sandboxes:write` scope."""
    require_scope(principal, "sandboxes:write")
    if runtime not in RUNTIMES:
        raise UnknownRuntime(f"Unknown runtime {runtime!r}.", details={"runtimes": sorted(RUNTIMES)})
    org = principal.org
    env, metadata = clean_env(env), clean_metadata(metadata)
    agent_id = dispatch.pick_agent(runtime)
    limits = sandbox_limits(org)
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
        _start(sandbox, "restore", audit=audit, digest=restore_digest, new_sandbox_id=sandbox.pk, runtime=runtime,
               env=env, limits=engine_limits(limits), timeout=120)
    return sandbox


def sandbox_fork(*, principal, sandbox: Sandbox, request=None) -> Sandbox:
    """Copy-on-write fork on the parent's agent: memory and workspace copied, own limits and lifetime."""
    require_scope(principal, "sandboxes:write")
    org = principal.org
    require_running(sandbox)
    quotas.sandbox_slot_reserve(org=org)
    limits = sandbox_limits(org)
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
    if sandbox.state != Sandbox.State.RUNNING:
        raise SandboxNotRunning(f"Sandbox {sandbox.pk} is {sandbox.state}.", details={"state": sandbox.state})


def sandbox_mark_ended(sandbox: Sandbox, *, state: str, reason: str) -> bool:
    """Move a live sandbox to stopped/lost once: release its slot, meter its lifetime, end open runs.

    One transaction; the conditional state UPDATE makes it once, so the lifetime is metered straight into
    the organisation's period rows (no event to roll up)."""
    now = timezone.now()
    with transaction.atomic():
        ended = Sandbox.objects.filter(pk=sandbox.pk, state__in=Sandbox.LIVE_STATES).update(
            state=state, stop_reason=reason, stopped_at=now)
        if not ended:
            return False
        quotas.sandbox_slot_release(org=sandbox.organization_id)
        final = Execution.Status.AGENT_LOST if state == Sandbox.State.LOST else Execution.Status.KILLED
        Execution.objects.filter(sandbox=sandbox, status__in=Execution.OPEN_STATUSES).update(
            status=final, finished_at=now)
        quotas.usage_add(sandbox.organization_id, now, sandbox_ms=round((now - sandbox.created_at).total_seconds() * 1000))
    sandbox.state, sandbox.stop_reason, sandbox.stopped_at = state, reason, now
    return True


def sandbox_kill(*, principal, sandbox: Sandbox, request=None, reason: str = "killed") -> Sandbox:
    """Stop a sandbox (idempotent). The agent is told; if it is gone, the sandbox is still stopped here."""
    if sandbox.state in Sandbox.LIVE_STATES:
        try:
            dispatch.call(sandbox.agent_id, "kill", sandbox_id=sandbox.pk)
        except Mem0Error as exc:
            log.warning("kill_not_delivered sandbox=%s agent=%s code=%s", sandbox.pk, sandbox.agent_id, exc.code)
        if sandbox_mark_ended(sandbox, state=Sandbox.State.STOPPED, reason=reason) and principal is not None:
            audit_record(org=sandbox.organization, action="sandbox.kill", principal=principal, request=request,
                         target_type="sandbox", target_id=sandbox.pk, metadata={"reason": reason})
    return sandbox


def file_list(*, sandbox: Sandbox, path: str) -> list[dict]:
    require_running(sandbox)
    return dispatch.call(sandbox.agent_id, "files_list", sandbox_id=sandbox.pk,
                         path=clean_workspace_path(path, allow_root=True))


def file_read(*, sandbox: Sandbox, path: str) -> bytes:
    require_running(sandbox)
    return dispatch.call(sandbox.agent_id, "file_read", sandbox_id=sandbox.pk, path=clean_workspace_path(path))


def file_write(*, sandbox: Sandbox, path: str, data: bytes) -> None:
    require_running(sandbox)
    dispatch.call(sandbox.agent_id, "file_write", sandbox_id=sandbox.pk, path=clean_workspace_path(path), data=data)


def file_delete(*, sandbox: Sandbox, path: str) -> None:
    require_running(sandbox)
    dispatch.call(sandbox.agent_id, "file_delete", sandbox_id=sandbox.pk, path=clean_workspace_path(path))
