"""Snapshots: save a live sandbox's workspace to the block store, restore it anywhere, tag, delete, lineage.

A snapshot's parent is its sandbox's previous snapshot, or the snapshot the sandbox was restored from
(forks inherit their parent's), so snapshots form a lineage graph per tenant. Deleting a snapshot is
soft (its row stays for the lineage, its chunks become garbage once no live snapshot shares them);
its children keep every chunk they reference, so they stay restorable.
"""

from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record
from billing import quotas
from sandboxes import dispatch, storage
from sandboxes.models import Execution, Sandbox, Snapshot, SnapshotTag
from sandboxes.services import require_live, sandbox_create

CODE_HISTORY_RUNS = 200


def _code_history(sandbox: Sandbox) -> list[str]:
    runs = Execution.objects.filter(sandbox=sandbox).order_by("-created_at").values_list("code", flat=True)
    return list(reversed(runs[:CODE_HISTORY_RUNS]))


def snapshot_create(*, principal, sandbox: Sandbox, name: str = "", request=None) -> Snapshot:
    """Snapshot the workspace into the organisation's block store scope (the agent pauses the sandbox only
    while it reads changed files).

    Admission is checked twice: before (a tenant already at its limit does no work) and after, on the total
    the organisation would keep referenced with this snapshot; over the limit, nothing is recorded (its
    new chunks are garbage for the next GC) and the answer is quota_exceeded."""
    org = principal.org
    require_live(sandbox)
    quotas.storage_admit(org=org)
    scope = storage.scope_for(org)
    reply = dispatch.call(sandbox.agent_id, "snapshot", owner=sandbox.organization_id, sandbox_id=sandbox.pk, scope=scope, timeout=300)
    parent = sandbox.last_snapshot or sandbox.source_snapshot
    with transaction.atomic():
        quotas.storage_lock(org=org)
        held = storage.held_bytes(org, plus=(scope, reply["digest"]))
        quotas.storage_hold(org=org, held_bytes=held, admit=True)
        snapshot = Snapshot.objects.create(
            organization=org, sandbox=sandbox, parent=parent, digest=reply["digest"], store_scope=scope,
            name=name[:120], runtime=sandbox.runtime, env=sandbox.env, code_history=_code_history(sandbox),
            logical_bytes=reply["logical_bytes"], new_bytes=reply["new_bytes"], stored_bytes=reply["stored_bytes"],
            files=reply.get("files", 0),
            created_by_user=principal.user if getattr(principal.user, "pk", None) else None,
            created_by_key=principal.key)
        Sandbox.objects.filter(pk=sandbox.pk).update(last_snapshot=snapshot, last_active_at=timezone.now())
    sandbox.last_snapshot = snapshot
    audit_record(org=principal.org, action="snapshot.create", principal=principal, request=request,
                 target_type="snapshot", target_id=snapshot.pk,
                 metadata={"sandbox": sandbox.pk, "digest": snapshot.digest, "stored_bytes": snapshot.stored_bytes})
    return snapshot


def snapshot_restore(*, principal, snapshot: Snapshot, request=None) -> Sandbox:
    """A new sandbox on the best agent whose workspace is the snapshot's tree (chunks fetched as needed)."""
    sandbox = sandbox_create(principal=principal, runtime=snapshot.runtime, env=snapshot.env, request=request,
                             source_snapshot=snapshot, restore_digest=snapshot.digest,
                             restore_scope=snapshot.store_scope)
    Sandbox.objects.filter(pk=sandbox.pk).update(last_snapshot=snapshot)
    sandbox.last_snapshot = snapshot
    return sandbox


def snapshot_delete(*, principal, snapshot: Snapshot, request=None) -> None:
    """Soft-delete; the organisation is then charged for what its other live snapshots still reference."""
    org = principal.org
    with transaction.atomic():
        quotas.storage_lock(org=org)
        Snapshot.objects.filter(pk=snapshot.pk, deleted_at__isnull=True).update(deleted_at=timezone.now())
        SnapshotTag.objects.filter(snapshot=snapshot).delete()
        quotas.storage_hold(org=org, held_bytes=storage.held_bytes(org))
    audit_record(org=principal.org, action="snapshot.delete", principal=principal, request=request,
                 target_type="snapshot", target_id=snapshot.pk, metadata={"digest": snapshot.digest})


def snapshot_tag(*, principal, snapshot: Snapshot, tag: str, request=None) -> SnapshotTag:
    """Point `tag` at this snapshot (moving it from any other snapshot of the organisation)."""
    with transaction.atomic():
        row, _ = SnapshotTag.objects.update_or_create(organization=principal.org, name=tag,
                                                      defaults={"snapshot": snapshot})
    audit_record(org=principal.org, action="snapshot.tag", principal=principal, request=request,
                 target_type="snapshot", target_id=snapshot.pk, metadata={"tag": tag})
    return row
