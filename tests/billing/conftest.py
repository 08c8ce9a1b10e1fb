"""Billing test helpers: which backing services are in use, a fresh rate limiter, overrides, a live agent."""

import uuid

import pytest
from django.conf import settings
from django.db import connection

from billing import ratelimit
from billing.models import PlanOverride

requires_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL (set DATABASE_URL)"
)
requires_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (set REDIS_URL)")


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


@pytest.fixture(scope="session")
def billing_agent(tmp_path_factory):
    """One embedded fork-agent (python only) on a private in-process bus, for the tests that need real runs."""
    from sandboxes.engine.agent import start_embedded_agent
    from sandboxes.engine.transport import make_bus

    prefix = f"mem0billing-{uuid.uuid4().hex[:8]}"
    agent = start_embedded_agent(
        make_bus(None, prefix),
        agent_id="billing-agent",
        state_dir=str(tmp_path_factory.mktemp("billing-agent")),
        pool_min=1,
        pool_max=4,
        templates=["python"],
    )
    try:
        yield prefix
    finally:
        agent.stop()


@pytest.fixture
def live_engine(settings, billing_agent):
    """Point the Django side at the billing agent's bus for one test."""
    from sandboxes import dispatch

    settings.MEM0_BUS_URL = ""
    settings.MEM0_BUS_PREFIX = billing_agent
    settings.MEM0_EMBEDDED_AGENT = False
    dispatch.reset()
    yield dispatch.engine()
    dispatch.reset()
