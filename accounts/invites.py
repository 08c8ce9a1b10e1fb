"""Inviting people into an organisation: a signed, expiring link bound to the invited e-mail address.

The link is `django.core.signing` of {org, email, role} (timestamped, salted, HMAC with SECRET_KEY), valid for
INVITE_SECONDS. Only a signed-in user whose account has that e-mail (case-insensitive) can accept it, so a
forwarded or leaked link lets no one else in; accepting twice changes nothing. The e-mail is sent with the
configured backend (the console log in the embedded default) and the link is also shown to the admin.
"""

from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse

from accounts.audit import audit_record
from accounts.models import Membership, Organization
from mem0web.errors import Mem0Error

SALT = "mem0.accounts.invite"
INVITE_SECONDS = 7 * 86400
INVITABLE_ROLES = (Membership.Role.MEMBER, Membership.Role.ADMIN)


class InviteRefused(Mem0Error):
    code, status, message = "permission_denied", 403, "This invitation cannot be accepted."


def invite_token(*, org: Organization, email: str, role: str) -> str:
    return signing.dumps({"org": org.pk, "email": email.lower(), "role": role}, salt=SALT)


def invite_read(token: str) -> tuple[Organization, str, str] | None:
    """(organisation, e-mail, role) of a valid, unexpired link, or None."""
    try:
        payload = signing.loads(token, salt=SALT, max_age=INVITE_SECONDS)
    except signing.BadSignature:  # SignatureExpired is a BadSignature
        return None
    org = Organization.objects.filter(pk=payload.get("org")).first()
    if org is None or payload.get("role") not in INVITABLE_ROLES:
        return None
    return org, payload["email"], payload["role"]


def member_invite(*, principal, email: str, role: str, request) -> str:
    """Send an invitation (admins only); returns the link."""
    if not principal.is_admin:
        raise InviteRefused("Only owners and admins can invite.")
    if role not in INVITABLE_ROLES:
        raise InviteRefused(f"role must be one of {', '.join(INVITABLE_ROLES)}.")
    link = request.build_absolute_uri(reverse("console-invite", args=[invite_token(org=principal.org, email=email,
                                                                                    role=role)]))
    body = render_to_string("accounts/email/invite.txt", {"org": principal.org, "link": link, "role": role,
                                                           "days": INVITE_SECONDS // 86400,
                                                           "inviter": principal.user})
    send_mail(f"Join {principal.org.name} on Mem0", body, None, [email])
    audit_record(org=principal.org, action="member.invite", principal=principal, request=request,
                 target_type="email", target_id=email.lower(), metadata={"role": role})
    return link


def invite_accept(*, user, token: str, request) -> Membership:
    """Join the organisation the link names, with its role; the user's e-mail must be the invited one."""
    found = invite_read(token)
    if found is None:
        raise InviteRefused("This invitation is invalid or has expired.")
    org, email, role = found
    if (user.email or "").lower() != email:
        raise InviteRefused(f"This invitation is for {email}; sign in with that account to accept it.")
    with transaction.atomic():
        membership, created = Membership.objects.get_or_create(user=user, organization=org,
                                                               defaults={"role": role})
        if created:
            audit_record(org=org, action="member.join", user=user, request=request, target_type="user",
                         target_id=str(user.pk), metadata={"role": role})
    return membership
