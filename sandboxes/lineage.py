"""Lineage graphs of one tenant's snapshots, forks and restores: around one snapshot (`lineage`), or a page
of the organisation's newest snapshots (`org_lineage`, which the console's graph reads).

Nodes are snapshots and sandboxes; edges are `parent` (snapshot → its child snapshot), `snapshot`
(sandbox → a snapshot taken of it), `fork` (sandbox → its fork) and `restore` (snapshot → the sandbox
restored from it). Both read only what they return (bounded queries), never the whole history.
"""

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


_SANDBOX_FIELDS = ("id", "runtime", "state", "created_at", "memory", "parent_id", "source_snapshot_id")


def _edges(snaps: dict, boxes: dict) -> list[dict]:
    """Every edge between the nodes given (both ends among them), in a stable order."""
    edges = set()
    for s in snaps.values():
        if s.parent_id in snaps:
            edges.add((s.parent_id, s.pk, "parent"))
        if s.sandbox_id in boxes:
            edges.add((s.sandbox_id, s.pk, "snapshot"))
    for b in boxes.values():
        if b.parent_id in boxes:
            edges.add((b.parent_id, b.pk, "fork"))
        if b.source_snapshot_id in snaps:
            edges.add((b.source_snapshot_id, b.pk, "restore"))
    return [{"from": a, "to": b, "kind": k} for a, b, k in sorted(edges)]


def lineage(org, snapshot: Snapshot, *, depth: int | None = None) -> dict:
    """The graph connected to `snapshot`, walked breadth-first a level at a time (at most `depth` levels,
    MAX_NODES nodes): each level costs at most four queries on its frontier's ids, so the walk reads only
    what it returns, never the organisation's whole history. `truncated` says the node cap was reached."""
    snap_qs = Snapshot.objects.for_org(org).prefetch_related("tag_set")
    box_qs = Sandbox.objects.for_org(org).only(*_SANDBOX_FIELDS)
    snaps, boxes = {snapshot.pk: snapshot}, {}
    new_snaps, new_boxes = {snapshot.pk}, set()
    level = 0
    while (new_snaps or new_boxes) and (depth is None or level < depth):
        room = MAX_NODES - len(snaps) - len(boxes)
        if room <= 0:
            break
        frontier_s = [snaps[i] for i in new_snaps]
        frontier_b = [boxes[i] for i in new_boxes]
        snap_filter = (Q(pk__in={s.parent_id for s in frontier_s if s.parent_id} | {b.source_snapshot_id for b in frontier_b if b.source_snapshot_id})
                       | Q(parent_id__in=new_snaps) | Q(sandbox_id__in=new_boxes))
        box_filter = (Q(pk__in={s.sandbox_id for s in frontier_s if s.sandbox_id} | {b.parent_id for b in frontier_b if b.parent_id})
                      | Q(source_snapshot_id__in=new_snaps) | Q(parent_id__in=new_boxes))
        found_s = [s for s in snap_qs.filter(snap_filter).exclude(pk__in=snaps.keys())[:room]]
        found_b = [b for b in box_qs.filter(box_filter).exclude(pk__in=boxes.keys())[: max(0, room - len(found_s))]]
        snaps.update((s.pk, s) for s in found_s)
        boxes.update((b.pk, b) for b in found_b)
        new_snaps, new_boxes = {s.pk for s in found_s}, {b.pk for b in found_b}
        level += 1
    nodes = [_snapshot_node(s) for s in snaps.values()] + [_sandbox_node(b) for b in boxes.values()]
    nodes.sort(key=lambda n: (n["created_at"], n["id"]))
    return {"root": snapshot.pk, "nodes": nodes, "edges": _edges(snaps, boxes),
            "truncated": len(snaps) + len(boxes) >= MAX_NODES}


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
    boxes = Sandbox.objects.for_org(org).only(*_SANDBOX_FIELDS)
    direct = {b.pk: b for b in boxes.filter(Q(pk__in={s.sandbox_id for s in snaps if s.sandbox_id})
                                            | Q(source_snapshot_id__in=snap_ids))[: 2 * limit]}
    room = 2 * limit - len(direct)
    if room > 0 and direct:
        parents = {b.parent_id for b in direct.values() if b.parent_id} - direct.keys()
        related = boxes.filter(Q(pk__in=parents) | Q(parent_id__in=direct.keys())).exclude(pk__in=direct.keys())
        direct.update({b.pk: b for b in related[:room]})
    nodes = [_snapshot_node(s) for s in snaps] + [_sandbox_node(b) for b in direct.values()]
    nodes.sort(key=lambda n: (n["created_at"], n["id"]))
    return {"nodes": nodes, "edges": _edges({s.pk: s for s in snaps}, direct),
            "next": snaps[-1].pk if more and snaps else None}
