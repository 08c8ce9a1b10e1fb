"""/healthz: the database answers and, when configured, Redis answers."""

import functools

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse


@functools.cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


def healthz(request):
    checks = {}
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any failure means unhealthy, whatever the driver raises
        checks["database"] = f"error: {type(exc).__name__}"
    if settings.REDIS_URL:
        try:
            _redis(settings.REDIS_URL).ping()
            checks["redis"] = "ok"
        except redis.RedisError as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
    healthy = all(v == "ok" for v in checks.values())
    return JsonResponse({"status": "ok" if healthy else "unhealthy", "checks": checks}, status=200 if healthy else 503)
