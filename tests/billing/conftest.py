"""Billing test helpers: the backing services in use, a fresh rate limiter, a plan with small limits."""

import pytest
import redis
from django.conf import settings
from django.db import connection

from billing import ratelimit
from billing.models import Plan, PlanOverride

requires_postgres = pytest.mark.skipif(connection.vendor != "postgresql",
                                       reason="row-level concurrency is proven on PostgreSQL (set DATABASE_URL)")
requires_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (set REDIS_URL)")


def redis_client() -> redis.Redis | None:
    if not settings.REDIS_URL:
        return None
    return redis.Redis.from_url(settings.REDIS_URL)


@pytest.fixture
def fresh_limiter():
    """A limiter built for this test (no buckets carried over from another test)."""
    ratelimit._limiter = None
    yield ratelimit.limiter()
    ratelimit._limiter = None


@pytest.fixture
def override(db):
    """override(org, **limits): set operator overrides for an organisation."""

    def make(org, **limits):
        row, _ = PlanOverride.objects.update_or_create(organization=org, defaults=limits)
        return row

    return make


@pytest.fixture
def free_plan(db) -> Plan:
    return Plan.objects.get(slug="free")
