"""Throttles on the console's public doors: failed sign-ins per account and per client address, sign-ups
per client address, and free organisations per client address.

Counters are fixed windows in the Django cache: Redis when REDIS_URL is set (every web process shares
them; `add` + `incr` are atomic there), this process's memory in the embedded default (one process). A
fixed window lets up to twice its limit through across a window edge; against password guessing that is
a constant factor on a small number, and it keeps a lockout's end exact to tell the user ("try again in
N minutes"), which a token bucket (billing/ratelimit.py) cannot say without a peek it does not have.

Client addresses are REMOTE_ADDR (the web tier's proxy must set it, as Daphne's --proxy-headers does);
IPv6 clients are counted per /64, the block one subscriber usually holds, so rotating addresses inside
it does not reset the count. Free organisations are counted from the audit log (durable, and an
organisation's creation is audited with its address anyway).
"""

import hashlib
import ipaddress
import math
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from accounts.audit import client_ip


def client_address(request) -> str:
    """The address a client is throttled by: its IPv4 address, or its IPv6 /64."""
    ip = client_ip(request) or "unknown"
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if addr.version == 6:
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)


@dataclass(frozen=True)
class Window:
    """At most `limit` events per subject in each `seconds`-long window."""

    name: str
    limit: int
    seconds: int

    def _key(self, subject: str, now: float) -> str:
        digest = hashlib.sha256(subject.encode()).hexdigest()[
            :32
        ]  # user names and addresses stay out of keys
        return f"mem0:throttle:{settings.MEM0_THROTTLE_NAMESPACE}:{self.name}:{digest}:{int(now // self.seconds)}"

    def count(self, subject: str) -> int:
        return int(cache.get(self._key(subject, time.time()), 0))

    def hit(self, subject: str) -> int:
        """Count one event; returns the window's count including it."""
        key = self._key(subject, time.time())
        cache.add(key, 0, timeout=self.seconds + 1)
        try:
            return cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=self.seconds + 1)
            return 1

    def exceeded(self, subject: str) -> bool:
        return self.count(subject) >= self.limit

    def retry_after(self) -> int:
        """Seconds until the current window ends (at least 1)."""
        now = time.time()
        return max(1, math.ceil((int(now // self.seconds) + 1) * self.seconds - now))


def signin_by_account() -> Window:
    return Window(
        "signin-account", settings.MEM0_SIGNIN_FAILURES_PER_ACCOUNT, settings.MEM0_SIGNIN_LOCKOUT_SECONDS
    )


def signin_by_address() -> Window:
    return Window(
        "signin-address", settings.MEM0_SIGNIN_FAILURES_PER_ADDRESS, settings.MEM0_SIGNIN_LOCKOUT_SECONDS
    )


def signups_by_address() -> Window:
    return Window("signup-address", settings.MEM0_SIGNUPS_PER_ADDRESS_PER_HOUR, 3600)


def account_subject(username: str) -> str:
    return (username or "").strip().lower()


def signin_locked_for(request, username: str) -> int:
    """Seconds the sign-in of `username` from this client stays refused; 0 when it is not locked out."""
    windows = []
    if username:
        windows.append((signin_by_account(), account_subject(username)))
    if request is not None:
        windows.append((signin_by_address(), client_address(request)))
    return max((w.retry_after() for w, subject in windows if w.exceeded(subject)), default=0)


def signin_failed(request, username: str) -> None:
    if username:
        signin_by_account().hit(account_subject(username))
    if request is not None:
        signin_by_address().hit(client_address(request))


def free_organizations_from(request) -> int:
    """Free organisations created from this client's address within MEM0_FREE_ORGS_WINDOW_DAYS."""
    from accounts.models import AuditEvent

    since = timezone.now() - timedelta(days=settings.MEM0_FREE_ORGS_WINDOW_DAYS)
    return AuditEvent.objects.filter(
        action="organization.create", ip=client_ip(request), created_at__gte=since, metadata__plan="free"
    ).count()
