"""Tenant-scoped reads for sandboxes, executions and snapshots: missing and forbidden are both 404."""

from django.db.models import QuerySet

from mem0web.errors import NotFound
from mem0web.sql import rows_where
from sandboxes.models import Execution, Sandbox, Snapshot


def sandboxes_for_org(org, *, state: str | None = None, runtime: str | None = None,
                      metadata: dict[str, str] | None = None) -> QuerySet[Sandbox]:
    qs = Sandbox.objects.for_org(org)
    if state:
        qs = qs.filter(state=state)
    if runtime:
        qs = qs.filter(runtime=runtime)
    for key, value in (metadata or {}).items():
        qs = qs.filter(**{f"metadata__{key}": value})
    return qs


def sandbox_by_id(org, sandbox_id: str) -> Sandbox:
    found = rows_where(Sandbox, id=sandbox_id, organization_id=org.pk)  # every request with a sandbox id
    if not found:
        raise NotFound("No such sandbox.")
    return found[0]


def execution_by_id(org, execution_id: str) -> Execution:
    found = list(Execution.objects.select_related("sandbox").filter(pk=execution_id, organization=org))
    if not found:
        raise NotFound("No such execution.")
    return found[0]


def snapshots_for_org(org) -> QuerySet[Snapshot]:
    return Snapshot.objects.for_org(org).filter(deleted_at__isnull=True).prefetch_related("tag_set")


def snapshot_by_id(org, snapshot_id: str) -> Snapshot:
    snapshot = snapshots_for_org(org).filter(pk=snapshot_id).first()
    if snapshot is None:
        raise NotFound("No such snapshot.")
    return snapshot
