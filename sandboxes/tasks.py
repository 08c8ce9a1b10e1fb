"""Celery tasks: each loads what it needs, calls a service, and is safe to retry."""

from celery import shared_task

from sandboxes import reaping, storage
from sandboxes.models import Snapshot


@shared_task
def reap_sandboxes() -> int:
    return reaping.sandboxes_reap()


@shared_task
def meter_sandbox_cpu() -> int:
    return reaping.sandboxes_meter_cpu()


@shared_task
def sweep_dead_agents() -> dict:
    return reaping.agents_sweep()


@shared_task
def gc_chunks() -> dict:
    return storage.chunks_collect()


@shared_task
def tier_snapshots() -> int:
    return storage.snapshots_tier()


@shared_task
def move_snapshot_cold(snapshot_id: str) -> bool:
    snapshot = Snapshot.objects.filter(pk=snapshot_id).first()
    return storage.snapshot_move_cold(snapshot) if snapshot is not None else False
