"""Token buckets for request rates: atomic in Redis (one Lua script), in-process without Redis.

A request takes one token from each bucket it is subject to (its organisation's and, with an API key, the
key's); the script checks every bucket before charging any, so a request refused by one bucket costs
nothing in the others, and the whole decision is one atomic step however many web processes share Redis.
Capacity is the plan's `request_burst`; refill is `requests_per_minute / 60` tokens a second. The script
reads Redis' own clock (TIME), so web processes with skewed clocks still agree.

No REDIS_URL (the embedded default, one process): the same buckets live in this process.

Redis unreachable: neither fail open (an outage would lift every limit) nor fail closed (an outage of a
cache would take the API down). Decisions fall back to this process's buckets with the same parameters,
so a tenant gets at most its plan's rate per web process. The switch is logged once per outage, counted in
`mem0_ratelimit_redis_errors_total`, and `mem0_ratelimit_degraded` is 1 while it lasts. Redis is tried
again after REDIS_RETRY_AFTER_S instead of on every request, so an outage does not add a connect timeout
to each call.

Why our own ~30 lines of Lua: DESIGN §5 asks for a token bucket (burst + refill) taken atomically from two
buckets at once. `limits` and django-ratelimit offer fixed/moving windows (a window lets 2× the limit through
across its edge and has no separate burst), and redis-cell (GCRA) is a Redis module that managed Redis
services do not load. One EVALSHA is one round trip: 0.12 ms a request (two buckets, localhost Redis 7).
"""

import logging
import math
import threading
import time
from dataclasses import dataclass

import redis
from django.conf import settings
from prometheus_client import Counter, Gauge

log = logging.getLogger("mem0.ratelimit")

KEY_PREFIX = "mem0:rl:"
REDIS_TIMEOUT_S = 0.25
REDIS_RETRY_AFTER_S = 5.0
LOCAL_MAX_BUCKETS = 100_000

REDIS_ERRORS = Counter("mem0_ratelimit_redis_errors", "Rate-limit calls to Redis that failed.")
LOCAL_FALLBACK_DECISIONS = Counter(
    "mem0_ratelimit_fallback_decisions",
    "Rate-limit decisions made by the per-process bucket while Redis was down.",
)
DEGRADED = Gauge(
    "mem0_ratelimit_degraded", "1 while rate limits are enforced per process because Redis is down."
)
REJECTIONS = Counter("mem0_ratelimit_rejections", "Requests refused with 429 rate_limited.", ["bucket"])

# KEYS: bucket keys. ARGV: cost, then capacity and refill-per-second for each key in order.
# Returns {index of the refusing bucket (0 = admitted), seconds until it has a token}.
TAKE_LUA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local cost = tonumber(ARGV[1])
local levels = {}
local refused, wait = 0, 0
for i, key in ipairs(KEYS) do
  local capacity = tonumber(ARGV[2 * i])
  local rate = tonumber(ARGV[2 * i + 1])
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local level, ts = tonumber(state[1]), tonumber(state[2])
  if level == nil or ts == nil then level, ts = capacity, now end
  level = math.min(capacity, level + math.max(0, now - ts) * rate)
  levels[i] = level
  if level < cost then
    local need = (cost - level) / rate
    if need > wait then refused, wait = i, need end
  end
end
if refused == 0 then
  for i, key in ipairs(KEYS) do
    local capacity = tonumber(ARGV[2 * i])
    local rate = tonumber(ARGV[2 * i + 1])
    redis.call('HSET', key, 'tokens', levels[i] - cost, 'ts', now)
    redis.call('EXPIRE', key, math.ceil(capacity / rate) + 1)
  end
end
return {refused, tostring(wait)}
"""


@dataclass(frozen=True)
class Bucket:
    """One token bucket: `name` is unique per limited thing (e.g. "{o42}:org")."""

    name: str
    capacity: int
    per_second: float

    @classmethod
    def for_plan(cls, name: str, *, requests_per_minute: int, request_burst: int) -> "Bucket":
        # A zero in a plan would mean "no requests at all"; keep one token and one a minute instead of
        # dividing by zero.
        return cls(name, max(1, int(request_burst)), max(1, int(requests_per_minute)) / 60.0)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0
    refused_by: Bucket | None = None


class LocalBuckets:
    """Token buckets in this process (monotonic clock); the embedded default and the Redis-down fallback."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, float]] = {}

    def take(self, buckets: list[Bucket], cost: int = 1) -> Decision:
        now = self._clock()
        with self._lock:
            if len(self._state) > LOCAL_MAX_BUCKETS:
                self._state.clear()  # every bucket refills to full anyway; bounded memory matters more
            levels, refused, wait = [], None, 0.0
            for b in buckets:
                level, ts = self._state.get(b.name, (b.capacity, now))
                level = min(b.capacity, level + max(0.0, now - ts) * b.per_second)
                levels.append(level)
                if level < cost and (cost - level) / b.per_second > wait:
                    refused, wait = b, (cost - level) / b.per_second
            if refused is not None:
                return Decision(False, wait, refused)
            for b, level in zip(buckets, levels, strict=True):
                self._state[b.name] = (level - cost, now)
        return Decision(True)


class RedisBuckets:
    """Token buckets in Redis, decided atomically by TAKE_LUA (EVALSHA, re-sent if Redis lost the script)."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
        self._take = self.client.register_script(TAKE_LUA)

    def take(self, buckets: list[Bucket], cost: int = 1) -> Decision:
        args: list = [cost]
        for b in buckets:
            args += [b.capacity, repr(b.per_second)]
        refused, wait = self._take(keys=[KEY_PREFIX + b.name for b in buckets], args=args)
        if int(refused):
            return Decision(False, float(wait), buckets[int(refused) - 1])
        return Decision(True)


class RateLimiter:
    """Redis buckets when configured, falling back to local ones while Redis is unreachable."""

    def __init__(self, redis_url: str | None) -> None:
        self.redis_url = redis_url or None
        self.redis = RedisBuckets(redis_url) if redis_url else None
        self.local = LocalBuckets()
        self._retry_redis_at = 0.0
        self._degraded = False

    @property
    def degraded(self) -> bool:
        return self._degraded

    def take(self, buckets: list[Bucket], cost: int = 1) -> Decision:
        if self.redis is not None and time.monotonic() >= self._retry_redis_at:
            try:
                decision = self.redis.take(buckets, cost)
            except redis.RedisError as exc:
                self._redis_failed(exc)
            else:
                if self._degraded:
                    self._degraded = False
                    DEGRADED.set(0)
                    log.warning("ratelimit_redis_recovered")
                return decision
        if self.redis is not None:
            LOCAL_FALLBACK_DECISIONS.inc()
        return self.local.take(buckets, cost)

    def _redis_failed(self, exc: Exception) -> None:
        REDIS_ERRORS.inc()
        self._retry_redis_at = time.monotonic() + REDIS_RETRY_AFTER_S
        if not self._degraded:
            self._degraded = True
            DEGRADED.set(1)
            log.warning(
                "ratelimit_redis_down policy=per_process_buckets retry_in_s=%s error=%s",
                REDIS_RETRY_AFTER_S,
                type(exc).__name__,
            )


_limiter: RateLimiter | None = None
_limiter_lock = threading.Lock()


def limiter() -> RateLimiter:
    """The process-wide limiter for settings.REDIS_URL (rebuilt if the setting changes, as tests do)."""
    global _limiter
    url = settings.REDIS_URL or None
    current = _limiter
    if current is not None and current.redis_url == url:
        return current
    with _limiter_lock:
        if _limiter is None or _limiter.redis_url != url:
            _limiter = RateLimiter(url)
        return _limiter


def retry_after_header(seconds: float) -> str:
    """Retry-After is whole seconds; round up so a client that obeys it finds a token."""
    return str(max(1, math.ceil(seconds)))
