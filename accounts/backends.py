"""Password sign-in with a lockout, for every door that calls `authenticate()` (console and admin).

A sign-in is refused while its account or its client address has too many recent failures
(accounts/throttles.py), whether or not the password is right: a guesser learns nothing during a lockout
and the password is not even checked. Failures are counted from Django's `user_login_failed` signal, so
wrong passwords on the admin's login page count as well as the console's.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver

from accounts import throttles


class ThrottledModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        name = username if username is not None else kwargs.get(get_user_model().USERNAME_FIELD, "")
        if throttles.signin_locked_for(request, name or ""):
            raise PermissionDenied("sign-in locked out")  # stops authenticate() at once: no other backend
        return super().authenticate(request, username=username, password=password, **kwargs)


@receiver(user_login_failed, dispatch_uid="mem0-count-signin-failures")
def count_signin_failure(sender, credentials, request=None, **kwargs) -> None:
    username = credentials.get(get_user_model().USERNAME_FIELD) or credentials.get("username") or ""
    throttles.signin_failed(request, username)
