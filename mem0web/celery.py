"""Celery app: the broker is Redis when REDIS_URL is set; embedded runs tasks eagerly."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mem0web.settings")
app = Celery("mem0web")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
