"""The lineage graph around one snapshot: the connected snapshots, forks and restores of one tenant.

Nodes are snapshots and sandboxes; edges are `parent` (snapshot → its child snapshot), `snapshot`
(sandbox → a snapshot taken of it), `fork` (sandbox → its fork) and `restore` (snapshot → the sandbox
restored from it). The walk is breadth-first inside the organisation and stops at MAX_NODES.
"""

from collections import deque

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
