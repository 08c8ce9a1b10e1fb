"""The DRF throttle for every API view: the plan's request rate, per API key and per organisation.

DRF runs throttles after authentication and permissions, so an unknown key (401) or a suspended
organisation (403) is refused before it costs a token. A refused request gets the envelope
`429 rate_limited` with `Retry-After` (whole seconds) and details naming the bucket that refused it.
"""

from datetime import timedelta

from django.utils import timezone
from rest_framework.throttling import BaseThrottle

from accounts.principal import Principal
from billing.ratelimit import REJECTIONS, Bucket, limiter, retry_after_header
from billing.selectors import effective_limits
from mem0web.errors import Mem0Error


class RateLimited(Mem0Error):
    code, status, message = "rate_limited", 429, "Too many requests; slow down."


def request_buckets(principal: Principal) -> list[Bucket]:
    """The organisation's bucket and, for an API key, the key's; both sized from the effective limits.

    The organisation bucket caps the tenant however many keys it makes; the key bucket keeps one key
    within the plan's rate on its own. Names share one `{...}` hash tag so Redis Cluster keeps them in one
    slot, as a multi-key script needs; the tag carries the organisation's creation time as well as its id,
    so an id reused after a deletion (or a test database rebuilt) never inherits an old bucket."""
    org = principal.org
    limits = effective_limits(org)
    params = {"requests_per_minute": limits["requests_per_minute"], "request_burst": limits["request_burst"]}
    tag = f"{{o{org.pk}.{int(org.created_at.timestamp() * 1_000_000)}}}"
    buckets = [Bucket.for_plan(f"{tag}:org", **params)]
    if principal.key is not None:
        buckets.append(Bucket.for_plan(f"{tag}:key:{principal.key.prefix}", **params))
    return buckets


class PlanRateThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        principal = request.auth
        if isinstance(principal, Principal):
            request_rate_take(principal)
        return True


def request_rate_take(principal: Principal) -> None:
    """Take one request from the principal's buckets, or RateLimited (429): REST requests and websocket
    run messages draw on the same buckets."""
    buckets = request_buckets(principal)
    decision = limiter().take(buckets)
    if decision.allowed:
        return
    scope = "key" if ":key:" in decision.refused_by.name else "organization"
    REJECTIONS.labels(bucket=scope).inc()
    raise RateLimited(
        f"Rate limit of {buckets[0].capacity} requests burst, {round(buckets[0].per_second * 60)}/min "
        f"reached for this {scope}; retry after {decision.retry_after:.2f} s.",
        details={
            "limit_name": "requests_per_minute",
            "scope": scope,
            "limit": round(decision.refused_by.per_second * 60),
            "burst": decision.refused_by.capacity,
            "retry_after_s": round(decision.retry_after, 3),
            "resets_at": (timezone.now() + timedelta(seconds=decision.retry_after)).isoformat(),
        },
        headers={"Retry-After": retry_after_header(decision.retry_after)},
    )
