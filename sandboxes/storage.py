"""The block store as the web/Celery side sees it: the host's chunk cache plus the optional S3 cold tier.

Agents on a host and the Celery worker share the host's cache directory (settings.MEM0_BLOCKSTORE_DIR);
S3 is the tier every host shares. Tiering and garbage collection run here, with the live set taken from
the database (snapshots not deleted).

Each organisation snapshots into its own block store scope (`scope_for`): chunks dedupe within an
organisation, never across, so what one tenant stores cannot be learned from another's snapshot figures
or timings (issue 13, finding 8). An organisation is charged for what its live snapshots keep referenced,
shared chunks once (`held_bytes`, recorded in billing's StorageHeld on every create and delete).
"""

import logging
import threading
from collections import Counter, defaultdict
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from sandboxes.models import Snapshot

log = logging.getLogger("mem0.storage")


def s3_backend():
    if not settings.MEM0_S3_BUCKET:
        return None
    from sandboxes.engine.blockstore import S3Backend

    return S3Backend(settings.MEM0_S3_BUCKET, prefix=settings.MEM0_S3_PREFIX,
                     endpoint_url=settings.MEM0_S3_ENDPOINT_URL or None,
                     storage_class=settings.MEM0_S3_STORAGE_CLASS, sse=settings.MEM0_S3_SSE or None,
                     kms_key_id=settings.MEM0_S3_KMS_KEY_ID or None)


def block_store():
    from sandboxes.engine.blockstore import BlockStore

    return BlockStore(settings.MEM0_BLOCKSTORE_DIR, s3=s3_backend())


_shared: dict[str, object] = {}
_shared_lock = threading.Lock()


def shared_store():
    """This process's long-lived BlockStore for reading manifests (one per MEM0_BLOCKSTORE_DIR)."""
    with _shared_lock:
        store = _shared.get(settings.MEM0_BLOCKSTORE_DIR)
        if store is None:
            store = _shared[settings.MEM0_BLOCKSTORE_DIR] = block_store()
        return store


def scope_for(org) -> str:
    """The block store scope of an organisation's snapshots."""
    return f"org-{org.pk}"


def live_digests(scope: str | None = None) -> set[str]:
    """Digests of live snapshots (of one block store scope when given)."""
    live = Snapshot.objects.filter(deleted_at__isnull=True)
    if scope is not None:
        live = live.filter(store_scope=scope)
    return set(live.values_list("digest", flat=True))


def held_bytes(org, *, plus: tuple[str, str] | None = None) -> int:
    """Bytes the organisation's live snapshots (and `plus` = (scope, digest), one being recorded) keep
    referenced in the block store, each chunk once. A snapshot whose data is gone is charged nothing."""
    by_scope: dict[str, set[str]] = defaultdict(set)
    live = Snapshot.objects.for_org(org).filter(deleted_at__isnull=True).values_list("store_scope", "digest")
    for scope, digest in live:
        by_scope[scope].add(digest)
    if plus is not None:
        by_scope[plus[0]].add(plus[1])
    base, total = shared_store(), 0
    for scope, digests in by_scope.items():
        missing: list[str] = []
        total += (base.scoped(scope) if scope else base).referenced_bytes(digests, missing=missing)
        if missing:
            log.error("storage_missing_snapshots org=%s scope=%s digests=%s", org.pk, scope or "-", len(missing))
    return total


def chunks_collect(*, grace_seconds: float = 3600.0) -> dict:
    """Sweep chunks no live snapshot references, in the unscoped store and every organisation's scope;
    chunks younger than the grace period are kept. Returns the sweep's figures summed over the stores."""
    totals: Counter = Counter()
    with block_store() as store:
        totals.update(store.gc(live_digests(""), grace_seconds=grace_seconds))
        for scope in store.scope_names():
            totals.update(store.scoped(scope).gc(live_digests(scope), grace_seconds=grace_seconds))
    return dict(totals)


def snapshot_move_cold(snapshot: Snapshot) -> bool:
    """Upload the snapshot's chunks to S3 and move its data to the cold storage class."""
    if settings.MEM0_S3_BUCKET == "" or snapshot.tier == Snapshot.Tier.COLD:
        return False
    with block_store() as base:
        store = base.scoped(snapshot.store_scope) if snapshot.store_scope else base
        store.upload(snapshot.digest)
        store.archive(snapshot.digest, storage_class=settings.MEM0_S3_COLD_CLASS)
    return bool(Snapshot.objects.filter(pk=snapshot.pk, tier=Snapshot.Tier.HOT).update(tier=Snapshot.Tier.COLD))


def snapshots_tier(now=None) -> int:
    """Move snapshots older than MEM0_COLD_AFTER_DAYS to the cold tier."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.MEM0_COLD_AFTER_DAYS)
    moved = 0
    for snapshot in Snapshot.objects.filter(tier=Snapshot.Tier.HOT, deleted_at__isnull=True, created_at__lt=cutoff):
        moved += snapshot_move_cold(snapshot)
    return moved
