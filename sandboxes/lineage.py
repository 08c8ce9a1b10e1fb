"""The lineage graph around one snapshot: the connected snapshots, forks and restores of one tenant.

Nodes are snapshots and sandboxes; edges are `parent` (snapshot → its child snapshot), `snapshot`
(sandbox → a snapshot taken of it), `fork` (sandbox → its fork) and `restore` (snapshot → the sandbox
restored from it). The walk is breadth-first inside the organisation and stops at MAX_NODES.
"""

from collections import deque

from django.db.models import Q

from sandboxes.models import Sandbox, Snapshot

MAX_NODES = 2000


def _snapshot_node(s: Snapshot) -> dict:
    return {"id": s.pk, "kind": "snapshot", "name": s.name, "digest": s.digest, "created_at": s.created_at,
            "logical_bytes": s.logical_bytes, "stored_bytes": s.stored_bytes, "tier": s.tier,
            "deleted": s.deleted_at is not None, "tags": sorted(t.name for t in s.tag_set.all())}


def _sandbox_node(b: Sandbox) -> dict:
    return {"id": b.pk, "kind": "sandbox", "runtime": b.runtime, "state": b.state, "created_at": b.created_at,
            "memory": b.memory or None}


def lineage(org, snapshot: Snapshot) -> dict:
    snapshots = {s.pk: s for s in Snapshot.objects.for_org(org).prefetch_related("tag_set")}
    sandboxes = {b.pk: b for b in Sandbox.objects.for_org(org).only(
        "id", "runtime", "state", "created_at", "memory", "parent_id", "source_snapshot_id")}
    edges: set[tuple[str, str, str]] = set()
    for s in snapshots.values():
        if s.parent_id in snapshots:
            edges.add((s.parent_id, s.pk, "parent"))
        if s.sandbox_id in sandboxes:
            edges.add((s.sandbox_id, s.pk, "snapshot"))
    for b in sandboxes.values():
        if b.parent_id in sandboxes:
            edges.add((b.parent_id, b.pk, "fork"))
        if b.source_snapshot_id in snapshots:
            edges.add((b.source_snapshot_id, b.pk, "restore"))
    neighbours: dict[str, set[str]] = {}
    for a, b, _ in edges:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    seen, queue = {snapshot.pk}, deque([snapshot.pk])
    while queue and len(seen) < MAX_NODES:
        for n in neighbours.get(queue.popleft(), ()):
            if n not in seen:
                seen.add(n)
                queue.append(n)
    nodes = [_snapshot_node(snapshots[n]) if n in snapshots else _sandbox_node(sandboxes[n]) for n in seen]
    nodes.sort(key=lambda n: (n["created_at"], n["id"]))
    return {"root": snapshot.pk, "nodes": nodes,
            "edges": [{"from": a, "to": b, "kind": k} for a, b, k in sorted(edges) if a in seen and b in seen],
            "truncated": len(seen) >= MAX_NODES}


ORG_PAGE_DEFAULT = 500


def org_lineage(org, *, limit: int = ORG_PAGE_DEFAULT, before: Snapshot | None = None,
                tag: str | None = None) -> dict:
    """One page of the organisation's lineage, newest first: at most `limit` live snapshots (created before
    `before`, with `tag` if given), the sandboxes they were taken of or restored into, and those sandboxes'
    fork parents and children, at most 2 × `limit` sandboxes in all. Every query is bounded by `limit`, so a
    long history is never loaded at once; `next` is the snapshot id to pass as `before` for the older page.
    """
    qs = Snapshot.objects.for_org(org).filter(deleted_at__isnull=True).prefetch_related("tag_set")
    if tag:
        qs = qs.filter(tag_set__name=tag)
    if before is not None:
        qs = qs.filter(Q(created_at__lt=before.created_at) | Q(created_at=before.created_at, id__lt=before.pk))
    page = list(qs.order_by("-created_at", "-id")[: limit + 1])
    more, snaps = len(page) > limit, page[:limit]
    snap_ids = {s.pk for s in snaps}
    fields = ("id", "runtime", "state", "created_at", "memory", "parent_id", "source_snapshot_id")
    boxes = Sandbox.objects.for_org(org).only(*fields)
    direct = {b.pk: b for b in boxes.filter(Q(pk__in={s.sandbox_id for s in snaps if s.sandbox_id})
                                            | Q(source_snapshot_id__in=snap_ids))[: 2 * limit]}
    room = 2 * limit - len(direct)
    if room > 0 and direct:
        parents = {b.parent_id for b in direct.values() if b.parent_id} - direct.keys()
        related = boxes.filter(Q(pk__in=parents) | Q(parent_id__in=direct.keys())).exclude(pk__in=direct.keys())
        direct.update({b.pk: b for b in related[:room]})
    edges = []
    for s in snaps:
        if s.parent_id in snap_ids:
            edges.append({"from": s.parent_id, "to": s.pk, "kind": "parent"})
        if s.sandbox_id in direct:
            edges.append({"from": s.sandbox_id, "to": s.pk, "kind": "snapshot"})
    for b in direct.values():
        if b.parent_id in direct:
            edges.append({"from": b.parent_id, "to": b.pk, "kind": "fork"})
        if b.source_snapshot_id in snap_ids:
            edges.append({"from": b.source_snapshot_id, "to": b.pk, "kind": "restore"})
    nodes = [_snapshot_node(s) for s in snaps] + [_sandbox_node(b) for b in direct.values()]
    nodes.sort(key=lambda n: (n["created_at"], n["id"]))
    return {"nodes": nodes, "edges": edges, "next": snaps[-1].pk if more and snaps else None}
