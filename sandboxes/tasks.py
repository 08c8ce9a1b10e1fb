"""Celery tasks: each loads what it needs, calls a service, and is safe to retry."""

from celery import shared_task

from sandboxes import reaping


@shared_task
def reap_sandboxes() -> int:
    return reaping.sandboxes_reap()


@shared_task
def sweep_dead_agents() -> dict:
    return reaping.agents_sweep()
