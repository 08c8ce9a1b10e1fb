"""Tenant-scoped reads for sandboxes, executions and snapshots: missing and forbidden are both 404."""

from django.db.models import QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.db.models.lookups import Exact

from mem0web.errors import InvalidRequest, NotFound
from mem0web.filters import field_name, filter_value
from mem0web.sql import rows_where
from sandboxes.models import Execution, Sandbox, Snapshot

MAX_METADATA_FILTERS = 32


def sandboxes_for_org(org, *, state: str | None = None, runtime: str | None = None,
                      metadata: dict[str, str] | None = None) -> QuerySet[Sandbox]:
    """The organisation's sandboxes; `metadata` keys are validated names matched exactly (InvalidRequest
    otherwise): the key is looked up as data, never parsed as an ORM lookup."""
    qs = Sandbox.objects.for_org(org)
    if state:
        qs = qs.filter(state=filter_value("state", state))
    if runtime:
        qs = qs.filter(runtime=filter_value("runtime", runtime))
    metadata = metadata or {}
    if len(metadata) > MAX_METADATA_FILTERS:
        raise InvalidRequest(f"At most {MAX_METADATA_FILTERS} metadata filters.")
    for key, value in metadata.items():
        value = filter_value(f"metadata.{field_name(key)}", value)
        qs = qs.filter(Exact(KeyTextTransform(key, "metadata"), value))  # an expression: no lookup is parsed
    return qs


def _is_id(text: str) -> bool:
    """Ids come from the URL path: one with a NUL can match nothing (and PostgreSQL would refuse it: a 500)."""
    return "\x00" not in text


def sandbox_by_id(org, sandbox_id: str) -> Sandbox:
    if not _is_id(sandbox_id):
        raise NotFound("No such sandbox.")
    found = rows_where(Sandbox, id=sandbox_id, organization_id=org.pk)  # every request with a sandbox id
    if not found:
        raise NotFound("No such sandbox.")
    return found[0]


def execution_by_id(org, execution_id: str) -> Execution:
    if not _is_id(execution_id):
        raise NotFound("No such execution.")
    found = list(Execution.objects.select_related("sandbox").filter(pk=execution_id, organization=org))
    if not found:
        raise NotFound("No such execution.")
    return found[0]


def snapshots_for_org(org) -> QuerySet[Snapshot]:
    return Snapshot.objects.for_org(org).filter(deleted_at__isnull=True).prefetch_related("tag_set")


def snapshot_by_id(org, snapshot_id: str) -> Snapshot:
    if not _is_id(snapshot_id):
        raise NotFound("No such snapshot.")
    snapshot = snapshots_for_org(org).filter(pk=snapshot_id).first()
    if snapshot is None:
        raise NotFound("No such snapshot.")
    return snapshot
