"""Console sign-up with e-mail confirmation: the signed, expiring confirmation link, and the two e-mails.

With MEM0_SIGNUP_CONFIRMATION on, a sign-up answers the same whether or not its user name or e-mail is
taken ("check your e-mail"), so the form cannot be used to find accounts: a free one gets a confirmation
link; a taken one sends its owner a notice instead. The link is `django.core.signing` of the user id
(timestamped, salted, HMAC with SECRET_KEY), valid for MEM0_SIGNUP_CONFIRM_SECONDS and once: it only
activates an inactive user.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core import signing
from django.core.mail import send_mail
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse

SALT = "mem0.accounts.signup-confirm"


def confirmation_token(user) -> str:
    return signing.dumps({"user": user.pk}, salt=SALT)


def user_for_token(token: str):
    """The inactive user a still-valid link names, or None (bad signature, expired, used, unknown)."""
    try:
        payload = signing.loads(token, salt=SALT, max_age=settings.MEM0_SIGNUP_CONFIRM_SECONDS)
    except signing.BadSignature:  # SignatureExpired is a BadSignature
        return None
    return get_user_model().objects.filter(pk=payload.get("user"), is_active=False).first()


def accounts_holding(*, username: str, email: str) -> list:
    """Existing users with this user name or this e-mail (case-insensitive)."""
    return list(get_user_model().objects.filter(Q(username__iexact=username) | Q(email__iexact=email)))


def send_confirmation(request, user) -> None:
    link = request.build_absolute_uri(reverse("console-signup-confirm", args=[confirmation_token(user)]))
    hours = settings.MEM0_SIGNUP_CONFIRM_SECONDS // 3600
    body = render_to_string("accounts/email/confirm.txt", {"user": user, "link": link, "hours": hours})
    send_mail("Confirm your Mem0 account", body, None, [user.email])


def send_taken_notice(request, holders: list, *, password: str) -> None:
    """Tell the owners of a taken user name or e-mail that someone tried to sign up with it.

    Hashes the password as a real sign-up would, so the two answers also take about the same time."""
    make_password(password)
    signin = request.build_absolute_uri(reverse("console-signin"))
    for user in holders:
        if user.email:
            body = render_to_string("accounts/email/taken.txt", {"user": user, "signin": signin})
            send_mail("Someone tried to sign up to Mem0 with your details", body, None, [user.email])
