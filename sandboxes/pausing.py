"""Pause, resume and a sandbox's lifetime (`PATCH timeout_s`).

A pause freezes the sandbox's cgroup on its agent (`engine/pause_ops.py`): its processes stop where they
are with their memory kept, no CPU is used, and it keeps its concurrent-sandbox slot (its memory stays
held on the host). Paused time does not count towards the idle timeout (a resume starts a fresh idle
window) and uses no CPU quota; the lifetime (`expires_at`) runs on, so a forgotten pause still ends. Files,
snapshots and forks work on a paused sandbox; runs answer 409 `sandbox_paused`.

A pause lives in its agent's memory, so a pause also saves the workspace: a snapshot named "pause" is taken
once the pause is answered. If the agent is lost, the agents' sweep brings a paused sandbox back on another
agent, under the same id and still paused, from its last snapshot, with `memory: "lost"` (its processes and
their memory are gone; a resume starts a fresh interpreter on the restored workspace). A paused sandbox with
no snapshot (or whose restore fails) is `lost` like any other.
"""

import logging
from datetime import timedelta

from django.utils import timezone

from accounts.audit import audit_record
from accounts.principal import Principal
from billing import quotas
from billing.selectors import effective_limits
from mem0web.errors import InvalidRequest, Mem0Error
from sandboxes import dispatch
from sandboxes.models import Execution, Sandbox
from sandboxes.services import engine_limits, require_live, require_scope

log = logging.getLogger("mem0.sandboxes")


def sandbox_pause(*, principal, sandbox: Sandbox, request=None, reason: str = "requested") -> Sandbox:
    """Freeze a running sandbox between runs (idempotent on a paused one)."""
    if principal is not None:
        require_scope(principal, "sandboxes:write")
    require_live(sandbox)
    if sandbox.state == Sandbox.State.PAUSED:
        return sandbox
    running = Execution.objects.filter(sandbox=sandbox, status__in=Execution.OPEN_STATUSES).values_list(
        "pk", flat=True).first()
    if running:
        raise Mem0Error("A run is active in this sandbox; pause it between runs.", code="sandbox_busy", status=409,
                        details={"execution_id": running})
    reply = dispatch.call(sandbox.agent_id, "pause", owner=sandbox.organization_id, sandbox_id=sandbox.pk)
    now = timezone.now()
    if Sandbox.objects.filter(pk=sandbox.pk, state=Sandbox.State.RUNNING).update(
            state=Sandbox.State.PAUSED, paused_at=now):
        sandbox.state, sandbox.paused_at = Sandbox.State.PAUSED, now
        audit_record(org=sandbox.organization, action="sandbox.pause", principal=principal, request=request,
                     target_type="sandbox", target_id=sandbox.pk, actor_label=None if principal else "idle sweep",
                     metadata={"reason": reason, "agent_ms": (reply or {}).get("ms")})
        saver = principal or Principal(org=sandbox.organization, role="owner", scopes=frozenset())

        def save_workspace():
            _snapshot_paused(saver, sandbox)

        if request is not None:
            from mem0web.handlers import after_response

            after_response(request, save_workspace)  # the pause is answered first
        else:
            save_workspace()
    else:
        sandbox.refresh_from_db()
    return sandbox


def _snapshot_paused(principal, sandbox: Sandbox) -> None:
    """The workspace as it is paused: what comes back if the agent is lost while it is paused."""
    from sandboxes.snapshots import snapshot_create

    try:
        snapshot_create(principal=principal, sandbox=sandbox, name="pause")
    except Mem0Error as exc:  # over the storage quota, resumed or killed meanwhile, agent gone
        log.warning("pause_snapshot_failed sandbox=%s code=%s", sandbox.pk, exc.code)


def sandbox_recover(sandbox: Sandbox) -> bool:
    """A paused sandbox whose agent is lost: restore its last snapshot on a live agent under the same id and
    pause it there, `memory: "lost"`. False (nothing changed) if it has no snapshot or no agent can take it."""
    snapshot = sandbox.last_snapshot
    if sandbox.state != Sandbox.State.PAUSED or snapshot is None or snapshot.deleted_at is not None:
        return False
    try:
        agent_id = dispatch.pick_agent(sandbox.runtime, exclude={sandbox.agent_id})
        dispatch.call(agent_id, "restore", owner=sandbox.organization_id, digest=snapshot.digest,
                      scope=snapshot.store_scope, new_sandbox_id=sandbox.pk, runtime=sandbox.runtime,
                      env=sandbox.env, limits=engine_limits(sandbox.limits), timeout=120)
        dispatch.call(agent_id, "pause", owner=sandbox.organization_id, sandbox_id=sandbox.pk)
    except Mem0Error as exc:
        log.warning("paused_sandbox_not_recovered sandbox=%s code=%s", sandbox.pk, exc.code)
        return False
    lost_agent = sandbox.agent_id
    if not Sandbox.objects.filter(pk=sandbox.pk, state=Sandbox.State.PAUSED, agent_id=lost_agent).update(
            agent_id=agent_id, memory="lost"):
        dispatch.call(agent_id, "kill", owner=sandbox.organization_id, sandbox_id=sandbox.pk)
        return False
    sandbox.agent_id, sandbox.memory = agent_id, "lost"
    audit_record(org=sandbox.organization, action="sandbox.recover", target_type="sandbox", target_id=sandbox.pk,
                 actor_label="agents sweep",
                 metadata={"lost_agent": lost_agent, "agent": agent_id, "snapshot": snapshot.pk, "memory": "lost"})
    return True


def sandbox_resume(*, principal, sandbox: Sandbox, request=None) -> Sandbox:
    """Thaw a paused sandbox (idempotent on a running one); its idle window starts again now."""
    require_scope(principal, "sandboxes:write")
    require_live(sandbox)
    if sandbox.state != Sandbox.State.PAUSED:
        return sandbox
    reply = dispatch.call(sandbox.agent_id, "resume", owner=sandbox.organization_id, sandbox_id=sandbox.pk)
    now = timezone.now()
    paused_for = (now - sandbox.paused_at).total_seconds() if sandbox.paused_at else None
    if Sandbox.objects.filter(pk=sandbox.pk, state=Sandbox.State.PAUSED).update(
            state=Sandbox.State.RUNNING, paused_at=None, last_active_at=now):
        sandbox.state, sandbox.paused_at, sandbox.last_active_at = Sandbox.State.RUNNING, None, now
        audit_record(org=sandbox.organization, action="sandbox.resume", principal=principal, request=request,
                     target_type="sandbox", target_id=sandbox.pk,
                     metadata={"paused_s": round(paused_for, 3) if paused_for is not None else None,
                               "agent_ms": (reply or {}).get("ms")})
    else:
        sandbox.refresh_from_db()
    return sandbox


def sandbox_set_timeout(*, principal, sandbox: Sandbox, timeout_s, request=None) -> Sandbox:
    """The sandbox ends `timeout_s` seconds from now (longer or shorter than before), at most the plan's
    maximum lifetime from now."""
    require_scope(principal, "sandboxes:write")
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not timeout_s >= 1:
        raise InvalidRequest("timeout_s must be a number of seconds, at least 1.", details={"field": "timeout_s"})
    require_live(sandbox)
    most = effective_limits(sandbox.organization)["max_lifetime_seconds"]
    if timeout_s > most:
        raise quotas.QuotaExceeded(f"timeout_s may be at most {most} on this plan.",
                                   details={"limit_name": "max_lifetime_seconds", "used": timeout_s, "limit": most,
                                            "resets_at": None})
    before = sandbox.expires_at
    expires = timezone.now() + timedelta(seconds=float(timeout_s))
    if not Sandbox.objects.filter(pk=sandbox.pk, state__in=Sandbox.LIVE_STATES).update(expires_at=expires):
        sandbox.refresh_from_db()
        require_live(sandbox)
    sandbox.expires_at = expires
    audit_record(org=sandbox.organization, action="sandbox.timeout_change", principal=principal, request=request,
                 target_type="sandbox", target_id=sandbox.pk,
                 metadata={"timeout_s": timeout_s, "before": before.isoformat() if before else None,
                           "expires_at": expires.isoformat()})
    return sandbox
