"""Personas shared by the Django-side tests: an owner's organisation with a key, a second tenant, a member."""

import importlib
import uuid

import pytest
from rest_framework.test import APIClient

from accounts import services
from accounts.models import Membership


def ensure_plans() -> None:
    """Transactional tests flush the tables, seeded plans included; put the seeded plans back."""
    from billing.models import Plan

    seed = importlib.import_module("billing.migrations.0002_seed_plans")
    if Plan.objects.count() < len(seed.PLANS):
        for plan in seed.PLANS:
            Plan.objects.update_or_create(slug=plan["slug"], defaults=plan)


@pytest.fixture(autouse=True)
def _fresh_throttles(settings):
    """Sign-in and sign-up throttles count in the cache (Redis when set): give each test its own counters."""
    settings.MEM0_THROTTLE_NAMESPACE = uuid.uuid4().hex


@pytest.fixture
def tenant(db):
    """Factory: tenant(slug, plan) → (org, owner user, full key)."""
    ensure_plans()

    def make(slug: str = "acme", plan: str = "free"):
        return services.tenant_signup(username=f"{slug}-owner", email=f"{slug}@example.com",
                                      password="a-long-password-1", org_name=slug, org_slug=slug, plan=plan)

    return make


@pytest.fixture
def org_a(tenant):
    return tenant("org-a")


@pytest.fixture
def org_b(tenant):
    return tenant("org-b")


def client_for(key: str | None) -> APIClient:
    c = APIClient()
    if key:
        c.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return c


@pytest.fixture
def api_a(org_a) -> APIClient:
    return client_for(org_a[2])


@pytest.fixture
def api_b(org_b) -> APIClient:
    return client_for(org_b[2])


@pytest.fixture
def member_key(org_a, django_user_model):
    """A key created by a plain member of org A."""
    org = org_a[0]
    user = django_user_model.objects.create_user("member-a", password="a-long-password-1")
    Membership.objects.create(user=user, organization=org, role=Membership.Role.MEMBER)
    _, raw = services.apikey_create(org=org, name="member", created_by=user)
    return raw


@pytest.fixture(scope="session", autouse=True)
def _close_connection_pools(django_db_setup):
    """Close psycopg pools before pytest-django drops the test database (open pooled sessions block it)."""
    yield
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        if hasattr(conn, "close_pool"):
            conn.close_pool()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """A skipped test is not a passed one: say so loudly, with each reason (no root, no PostgreSQL, no
    Redis...). With MEM0_FAIL_ON_SKIP=1 (CI sets it) any skip fails the session."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    reasons: dict[str, int] = {}
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    terminalreporter.write_sep("!", f"{len(skipped)} TESTS WERE SKIPPED, NOT PASSED", red=True, bold=True)
    for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"  {count:>4}  {reason}", red=True)
    terminalreporter.write_line("  Run `make test` as root with DATABASE_URL and REDIS_URL set to run them all.")


def pytest_sessionfinish(session, exitstatus):
    import os

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if os.environ.get("MEM0_FAIL_ON_SKIP") == "1" and skipped and exitstatus == 0:
        session.exitstatus = 1
