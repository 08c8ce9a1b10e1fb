"""DRF authentication: API keys (`Authorization: Bearer mem0_<prefix>_<secret>`) and console sessions.

Keys are looked up by prefix and compared in constant time. The looked-up key (with its organisation,
plan and the creator's role) is cached for KEY_CACHE_SECONDS in the shared cache and for LOCAL_TTL_S (1 s)
in each process (mem0web/localcache.py); `forget_key()` drops it on revoke, suspension and plan change, so a
revoked key stops working at once in the process that revoked it and within a second in every other one.
`forget_org_keys()` and a revoke (accounts/services.py) also send `accounts.signals.principal_changed`, which
makes the organisation's (or the key's) open websockets re-check at once.
`last_used_at` is written at most once a minute per key, not on every request.
"""

import copy
from datetime import timedelta

from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication

from accounts import keys as keymod
from accounts.models import APIKey, Membership
from accounts.principal import Principal
from accounts.signals import principal_changed
from mem0web.localcache import LocalCache

KEY_CACHE_SECONDS = 30
LAST_USED_GRANULARITY = timedelta(seconds=60)


class KeyAuthFailed(exceptions.AuthenticationFailed):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.mem0_code = code


_local = LocalCache()


def _cache_key(prefix: str) -> str:
    return f"mem0:apikey:{prefix}"


# A tombstone instead of a plain delete: a request that read the key from the database just before
# the revoke cannot put its stale copy back (fills use cache.add, which a tombstone blocks).
TOMBSTONE = "forgotten"


def forget_key(prefix: str) -> None:
    _local.forget([prefix])
    cache.set(_cache_key(prefix), TOMBSTONE, KEY_CACHE_SECONDS * 2)


def forget_org_keys(org) -> None:
    prefixes = list(APIKey.objects.filter(organization=org).values_list("prefix", flat=True))
    _local.forget(prefixes)
    cache.set_many({_cache_key(p): TOMBSTONE for p in prefixes}, KEY_CACHE_SECONDS * 2)
    principal_changed.send(sender=APIKey, key_prefix=None, org_id=org.pk)  # its websockets re-check at once


def _load_key(prefix: str) -> tuple[APIKey, str] | None:
    local = _local.get(prefix)
    if local is None:
        local = _load_shared(prefix, _local.generation)
        if local is None:
            return None
    key, role = local
    key = copy.copy(key)  # the cached instances are shared between threads; hand out copies
    key.organization = copy.copy(key.organization)
    return key, role


def _load_shared(prefix: str, generation: int) -> tuple[APIKey, str] | None:
    cached = cache.get(_cache_key(prefix))
    if cached is not None and cached != TOMBSTONE:
        _local.put(prefix, cached, generation)
        return cached
    key = APIKey.objects.select_related("organization", "organization__plan", "created_by").filter(prefix=prefix).first()
    if key is None:
        return None
    role = Membership.Role.MEMBER
    if key.created_by_id:
        membership = Membership.objects.filter(user_id=key.created_by_id, organization_id=key.organization_id).first()
        role = membership.role if membership else Membership.Role.MEMBER
    if cache.add(_cache_key(prefix), (key, role), KEY_CACHE_SECONDS):  # not if a tombstone is there
        _local.put(prefix, (key, role), generation)
    return key, role


def principal_for_key(raw: str) -> Principal:
    """Resolve a full key string to its principal or raise KeyAuthFailed with a distinct code."""
    parsed = keymod.parse_key(raw)
    if parsed is None:
        raise KeyAuthFailed("key_malformed", "The API key is malformed; expected mem0_<prefix>_<secret>.")
    prefix, secret = parsed
    loaded = _load_key(prefix)
    if loaded is None or not keymod.secret_matches(secret, loaded[0].digest):
        raise KeyAuthFailed("key_unknown", "The API key is not known.")
    key, role = loaded
    now = timezone.now()
    if key.revoked_at is not None:
        raise KeyAuthFailed("key_revoked", "The API key has been revoked.")
    if key.expires_at is not None and key.expires_at <= now:
        raise KeyAuthFailed("key_expired", "The API key has expired.")
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_GRANULARITY:
        APIKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
        generation = _local.generation
        if cache.get(_cache_key(prefix)) != TOMBSTONE:
            cache.set(_cache_key(prefix), (key, role), KEY_CACHE_SECONDS)
            _local.put(prefix, (key, role), generation)
    return Principal(org=key.organization, role=role, scopes=frozenset(key.scopes), user=key.created_by, key=key)


def bearer_token(header: str) -> str | None:
    parts = header.split()
    if len(parts) == 2 and parts[0].lower() == "bearer":
        return parts[1]
    if header:
        raise KeyAuthFailed("key_malformed", "Use `Authorization: Bearer <api key>`.")
    return None


class APIKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        token = bearer_token(request.META.get("HTTP_AUTHORIZATION", ""))
        if token is None:
            return None
        principal = principal_for_key(token)
        return (principal.user or AnonymousUser(), principal)

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


def principal_for_session(user, org_id: int | None = None) -> Principal | None:
    from accounts.selectors import membership_for

    membership = membership_for(user, org_id)
    if membership is None:
        return None
    return Principal(org=membership.organization, role=membership.role, scopes=frozenset(keymod.ALL_SCOPES), user=user)


class ConsoleSessionAuthentication(SessionAuthentication):
    """The console's session cookie (CSRF enforced), acting in the user's current organisation."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        user, _ = result
        principal = principal_for_session(user, request._request.session.get("org_id"))
        if principal is None:
            raise exceptions.PermissionDenied("You are not a member of any organisation.")
        return (user, principal)
