"""Celery tasks for billing: each calls a service and is safe to retry."""

from celery import shared_task

from billing import services


@shared_task
def roll_up_usage() -> int:
    return services.usage_roll_up()
