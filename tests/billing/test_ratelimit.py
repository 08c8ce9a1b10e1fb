"""The token buckets: burst and refill, atomic across threads and processes, and Redis-down behaviour."""

import logging
import subprocess
import sys
import threading
import time
import uuid

import pytest
from django.conf import settings
from prometheus_client import REGISTRY

from billing.ratelimit import (
    REDIS_RETRY_AFTER_S,
    Bucket,
    LocalBuckets,
    RateLimiter,
    RedisBuckets,
    retry_after_header,
)
from tests.billing.conftest import requires_redis

CLOSED_PORT_URL = "redis://127.0.0.1:1/0"


def bucket(capacity: int, per_minute: int = 1) -> Bucket:
    """A bucket with its own name; one token a minute refills nothing within a test."""
    return Bucket.for_plan(f"test:{uuid.uuid4().hex}", requests_per_minute=per_minute, request_burst=capacity)


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def hammer(take, n_threads: int, per_thread: int) -> int:
    """Admitted requests when n_threads clients fire per_thread requests each, all at once."""
    barrier, admitted, lock = threading.Barrier(n_threads), [0], threading.Lock()

    def client():
        barrier.wait()
        mine = sum(1 for _ in range(per_thread) if take().allowed)
        with lock:
            admitted[0] += mine

    threads = [threading.Thread(target=client) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return admitted[0]


def test_local_bucket_allows_the_burst_then_refuses_with_the_refill_wait():
    clock = FakeClock()
    local, b = LocalBuckets(clock), bucket(3, per_minute=60)
    assert [local.take([b]).allowed for _ in range(3)] == [True, True, True]
    refused = local.take([b])
    assert not refused.allowed and refused.refused_by == b
    assert refused.retry_after == pytest.approx(1.0)
    clock.now += 0.5
    assert local.take([b]).retry_after == pytest.approx(0.5)
    clock.now += 0.5
    assert local.take([b]).allowed
    clock.now += 3600
    assert sum(local.take([b]).allowed for _ in range(10)) == 3


def test_a_request_refused_by_one_bucket_costs_nothing_in_the_other():
    local = LocalBuckets(FakeClock())
    org, key1, key2 = bucket(5), bucket(2), bucket(5)
    assert local.take([org, key1]).allowed and local.take([org, key1]).allowed
    refused = local.take([org, key1])
    assert refused.refused_by == key1
    assert sum(local.take([org, key2]).allowed for _ in range(5)) == 3


def test_retry_after_header_is_whole_seconds_rounded_up():
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(1.0) == "1"
    assert retry_after_header(1.2) == "2"


def test_zero_limits_in_a_plan_do_not_divide_by_zero():
    b = Bucket.for_plan("z", requests_per_minute=0, request_burst=0)
    assert b.capacity == 1 and b.per_second > 0


def test_local_bucket_admits_exactly_the_burst_to_fifty_concurrent_clients():
    local, b = LocalBuckets(), bucket(60)
    assert hammer(lambda: local.take([b]), 50, 4) == 60


@requires_redis
def test_redis_bucket_admits_exactly_the_burst_to_fifty_concurrent_clients_of_two_processes():
    """Two limiters (two web processes' worth of connections) share one bucket in Redis."""
    web1, web2, b = RedisBuckets(settings.REDIS_URL), RedisBuckets(settings.REDIS_URL), bucket(60)
    counter = iter(range(10**6))
    assert hammer(lambda: (web1 if next(counter) % 2 else web2).take([b]), 50, 4) == 60


@requires_redis
def test_redis_bucket_holds_across_separate_os_processes():
    b = bucket(40)
    code = (
        "import sys; from billing.ratelimit import RedisBuckets, Bucket; "
        f"r = RedisBuckets({settings.REDIS_URL!r}); b = Bucket({b.name!r}, {b.capacity}, {b.per_second!r}); "
        "print(sum(r.take([b]).allowed for _ in range(30)))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(4)
    ]
    assert sum(int(p.communicate(timeout=60)[0]) for p in procs) == 40


@requires_redis
def test_redis_bucket_refills_at_the_plan_rate_on_redis_time():
    web, b = RedisBuckets(settings.REDIS_URL), bucket(2, per_minute=600)
    assert web.take([b]).allowed and web.take([b]).allowed
    refused = web.take([b])
    assert not refused.allowed and 0 < refused.retry_after <= 0.1
    time.sleep(refused.retry_after + 0.02)
    assert web.take([b]).allowed


@requires_redis
def test_redis_refusal_by_the_key_bucket_leaves_the_organisation_bucket_untouched():
    web = RedisBuckets(settings.REDIS_URL)
    org, key1, key2 = bucket(5), bucket(2), bucket(5)
    assert web.take([org, key1]).allowed and web.take([org, key1]).allowed
    assert web.take([org, key1]).refused_by == key1
    assert sum(web.take([org, key2]).allowed for _ in range(5)) == 3


def test_unreachable_redis_falls_back_to_a_per_process_bucket_logs_and_counts(caplog):
    limiter, b = RateLimiter(CLOSED_PORT_URL), bucket(3)
    errors, fallbacks = (
        metric("mem0_ratelimit_redis_errors_total"),
        metric("mem0_ratelimit_fallback_decisions_total"),
    )
    with caplog.at_level(logging.WARNING, logger="mem0.ratelimit"):
        results = [limiter.take([b]).allowed for _ in range(5)]
    assert results == [True, True, True, False, False]
    assert limiter.degraded and metric("mem0_ratelimit_degraded") == 1
    assert metric("mem0_ratelimit_redis_errors_total") == errors + 1
    assert metric("mem0_ratelimit_fallback_decisions_total") == fallbacks + 5
    assert [r.message for r in caplog.records].count(
        f"ratelimit_redis_down policy=per_process_buckets retry_in_s={REDIS_RETRY_AFTER_S} error=ConnectionError"
    ) == 1


def test_while_redis_is_down_requests_do_not_wait_on_it():
    limiter, b = RateLimiter(CLOSED_PORT_URL), bucket(1000)
    started = time.monotonic()
    for _ in range(500):
        limiter.take([b])
    assert time.monotonic() - started < 1.0


@requires_redis
def test_limiter_goes_back_to_redis_when_it_answers_again():
    limiter, b = RateLimiter(CLOSED_PORT_URL), bucket(3)
    limiter.take([b])
    assert limiter.degraded
    limiter.redis = RedisBuckets(settings.REDIS_URL)
    assert limiter.take([b]).allowed and limiter.degraded, "Redis is not retried before REDIS_RETRY_AFTER_S"
    limiter._retry_redis_at = 0.0
    assert limiter.take([b]).allowed
    assert not limiter.degraded and metric("mem0_ratelimit_degraded") == 0
