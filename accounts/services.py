"""Writes for tenancy: sign-up, tenants, keys. Keyword-only, named <entity>_<action>."""

from datetime import datetime

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.crypto import get_random_string
from django.utils.text import slugify

from accounts import keys as keymod
from accounts.audit import audit_record
from accounts.models import APIKey, Membership, Organization
from accounts.signals import principal_changed
from billing.selectors import plan_by_slug
from mem0web.errors import Conflict, InvalidRequest, PermissionDenied


def organization_create(*, name: str, slug: str | None, owner, plan: str = "free") -> Organization:
    slug = slugify(slug or name)[:60]
    if not slug:
        raise InvalidRequest("An organisation needs a name.")
    if Organization.objects.filter(slug=slug).exists():
        raise Conflict(f"The organisation slug {slug!r} is taken.")
    org = Organization.objects.create(name=name or slug, slug=slug, plan=plan_by_slug(plan))
    Membership.objects.create(user=owner, organization=org, role=Membership.Role.OWNER)
    return org


def organization_slug_unused(name: str) -> str:
    """A free slug for an organisation called `name`: its slug, or that with a random suffix when taken.

    The console never says "that organisation exists": a taken slug just gets a suffix."""
    base = slugify(name)[:53] or "org"
    slug = base
    while Organization.objects.filter(slug=slug).exists():
        slug = f"{base}-{get_random_string(6, 'abcdefghijklmnopqrstuvwxyz0123456789')}"
    return slug


@transaction.atomic
def tenant_signup(*, username: str, email: str, password: str | None, org_name: str, org_slug: str | None = None,
                  plan: str = "free", request=None, confirmed: bool = True) -> tuple[Organization, object, str | None]:
    """User + organisation + owner membership + a first key. Returns (org, user, full key shown once).

    `confirmed=False` (console sign-up with e-mail confirmation): the user is inactive and gets no key until
    `signup_confirm`; the key is then None."""
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise Conflict(f"The user name {username!r} is taken.")
    try:
        user = User.objects.create_user(username=username, email=email, password=password, is_active=confirmed)
    except IntegrityError as exc:
        raise Conflict("That user already exists.") from exc
    org = organization_create(name=org_name, slug=org_slug, owner=user, plan=plan)
    audit_record(org=org, action="organization.create", user=user, request=request, target_type="organization",
                 target_id=str(org.pk), metadata={"plan": plan})
    if not confirmed:
        return org, user, None
    _, raw = apikey_create(org=org, name="default", created_by=user, request=request)
    return org, user, raw


@transaction.atomic
def signup_confirm(*, user, request=None) -> tuple[Organization | None, str | None]:
    """Activate a user who followed their confirmation link; their organisation gets its first key.

    Returns (org, full key) or (None, None) when the user was already active (a link works once)."""
    User = get_user_model()
    if not User.objects.filter(pk=user.pk, is_active=False).update(is_active=True):
        return None, None
    user.is_active = True
    membership = Membership.objects.filter(user=user, role=Membership.Role.OWNER).select_related("organization")
    org = membership.first().organization
    audit_record(org=org, action="user.confirm", user=user, request=request, target_type="user",
                 target_id=str(user.pk))
    _, raw = apikey_create(org=org, name="default", created_by=user, request=request)
    return org, raw


def apikey_create(*, org: Organization, name: str, created_by=None, scopes: list[str] | None = None,
                  expires_at: datetime | None = None, principal=None, request=None) -> tuple[APIKey, str]:
    """Create a key; the full key is returned once and never stored."""
    scopes = list(scopes) if scopes is not None else list(keymod.ALL_SCOPES)
    unknown = sorted(set(scopes) - set(keymod.ALL_SCOPES))
    if unknown:
        raise InvalidRequest("Unknown scopes.", details={"unknown_scopes": unknown, "allowed": keymod.ALL_SCOPES})
    if principal is not None and not set(scopes) <= principal.scopes:
        raise PermissionDenied("A key cannot grant scopes its creator does not hold.")
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidRequest("expires_at must be in the future.")
    prefix, secret, raw = keymod.new_key_material()
    key = APIKey.objects.create(organization=org, name=name[:100] or "key", prefix=prefix,
                                digest=keymod.digest_secret(secret), scopes=scopes,
                                created_by=created_by or getattr(principal, "user", None), expires_at=expires_at)
    audit_record(org=org, action="key.create", principal=principal, user=created_by, request=request,
                 target_type="api_key", target_id=str(key.pk), metadata={"name": key.name, "prefix": prefix})
    return key, raw


def apikey_revoke(*, key: APIKey, principal=None, user=None, request=None) -> APIKey:
    """Revoke a key (idempotent); it stops working at once, caches included."""
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        from accounts.authentication import forget_key

        forget_key(key.prefix)
        principal_changed.send(sender=APIKey, key_prefix=key.prefix, org_id=None)  # closes its open websockets
        audit_record(org=key.organization, action="key.revoke", principal=principal, user=user, request=request,
                     target_type="api_key", target_id=str(key.pk), metadata={"prefix": key.prefix})
    return key
