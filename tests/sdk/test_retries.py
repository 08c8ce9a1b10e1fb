"""Automatic retries against a live server's real rate limiter (a Free-plan tenant: burst 60, 5 req/s)."""

import time
import uuid

import pytest

from mem0sdk import Mem0, RateLimitedError


@pytest.fixture
def free_tenant_key(mem0_server):
    if mem0_server.var_dir is None:
        pytest.skip("needs a server started by the fixture (manage.py createtenant)")
    slug = f"sdk-free-{uuid.uuid4().hex[:8]}"
    output = mem0_server.manage("createtenant", slug, "--email", f"{slug}@example.com", "--plan", "free")
    return output.strip().splitlines()[-1]


def drain(client: Mem0) -> RateLimitedError:
    """Spend the tenant's burst (with a client that does not retry); the first refusal."""
    for _ in range(500):
        try:
            client.me()
        except RateLimitedError as exc:
            return exc
    pytest.fail("the Free plan's burst never ran out")


def test_rate_limited_is_typed_retried_when_safe_and_not_otherwise(mem0_server, free_tenant_key):
    once = Mem0(api_key=free_tenant_key, base_url=mem0_server.base_url, max_retries=0)
    patient = Mem0(api_key=free_tenant_key, base_url=mem0_server.base_url, max_retries=4)
    with once, patient:
        limited = drain(once)
        assert limited.status == 429 and limited.code == "rate_limited"
        assert limited.retry_after is not None and limited.retry_after > 0
        assert limited.details["limit_name"] == "requests_per_minute"

        # A POST without an Idempotency-Key is never repeated: refused, it fails at once. (Tokens refill
        # continuously, so a create sent just after a drain may find one; then drain and try again.)
        for _ in range(10):
            drain(once)
            started = time.monotonic()
            try:
                patient.sandboxes.create().kill()
            except RateLimitedError:
                assert time.monotonic() - started < limited.retry_after
                break
        else:
            pytest.fail("a create right after draining the bucket was never refused")
        drain(once)
        assert patient.me()["organization"]["slug"].startswith("sdk-free-")  # a GET waits and retries
