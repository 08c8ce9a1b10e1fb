"""The block store as the web/Celery side sees it: the host's chunk cache plus the optional S3 cold tier.

Agents on a host and the Celery worker share the host's cache directory (settings.MEM0_BLOCKSTORE_DIR);
S3 is the tier every host shares. Tiering and garbage collection run here, with the live set taken from
the database (snapshots not deleted).
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Sum
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


def live_digests() -> set[str]:
    return set(Snapshot.objects.filter(deleted_at__isnull=True).values_list("digest", flat=True))


def chunks_collect(*, grace_seconds: float = 3600.0) -> dict:
    """Sweep chunks no live snapshot references; chunks younger than the grace period are kept."""
    with block_store() as store:
        return store.gc(live_digests(), grace_seconds=grace_seconds)


def snapshot_move_cold(snapshot: Snapshot) -> bool:
    """Upload the snapshot's chunks to S3 and move its data to the cold storage class."""
    if settings.MEM0_S3_BUCKET == "" or snapshot.tier == Snapshot.Tier.COLD:
        return False
    with block_store() as store:
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


def storage_bytes(org) -> int:
    """Bytes the organisation's live snapshots added to the store (after compression)."""
    return Snapshot.objects.for_org(org).filter(deleted_at__isnull=True).aggregate(s=Sum("stored_bytes"))["s"] or 0
