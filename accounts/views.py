"""Console pages for tenancy: sign up (and its e-mail confirmation), sign in/out, dashboard, API keys, audit log."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors, services, throttles
from accounts import signup as signupmail
from accounts.audit import audit_record
from accounts.authentication import principal_for_session
from accounts.forms import KeyCreateForm, SignupForm
from billing.selectors import effective_limits, usage_report
from console import usage_display
from mem0web.errors import Mem0Error, NotFound


def _principal(request):
    return principal_for_session(request.user, request.session.get("org_id"))


def _refused(request, template: str, context: dict, message: str, retry_after: int):
    """A sign-in or sign-up refused by a throttle: 429, the reason and the wait, in the page and the header."""
    minutes = max(1, -(-retry_after // 60))
    context["form"].add_error(None, f"{message} Try again in {minutes} minute{'s' if minutes > 1 else ''}.")
    response = render(request, template, context, status=429)
    response["Retry-After"] = str(retry_after)
    return response


@require_http_methods(["GET", "POST"])
def signup(request):
    """Create a user, a free organisation and its first key; throttled per client address.

    With MEM0_SIGNUP_CONFIRMATION the account waits for its e-mailed link, and a taken user name or e-mail
    gets the same answer as a free one (the owner is told by e-mail); see accounts/signup.py."""
    form = SignupForm(request.POST or None)
    context = {"form": form}
    if request.method != "POST" or not form.is_valid():
        return render(request, "accounts/signup.html", context)
    address = throttles.client_address(request)
    if throttles.signups_by_address().hit(address) > settings.MEM0_SIGNUPS_PER_ADDRESS_PER_HOUR:
        return _refused(request, "accounts/signup.html", context, "Too many sign-ups from your address.",
                        throttles.signups_by_address().retry_after())
    if throttles.free_organizations_from(request) >= settings.MEM0_FREE_ORGS_PER_ADDRESS:
        return _refused(request, "accounts/signup.html", context,
                        "Your address has reached its limit of free organisations.",
                        settings.MEM0_FREE_ORGS_WINDOW_DAYS * 86400)
    data = form.cleaned_data
    confirm = settings.MEM0_SIGNUP_CONFIRMATION
    if confirm:
        holders = signupmail.accounts_holding(username=data["username"], email=data["email"])
        if holders:
            signupmail.send_taken_notice(request, holders, password=data["password"])
            return render(request, "accounts/signup_sent.html")
    try:
        org, user, raw = services.tenant_signup(username=data["username"], email=data["email"],
                                                password=data["password"], org_name=data["organization"],
                                                org_slug=services.organization_slug_unused(data["organization"]),
                                                request=request, confirmed=not confirm)
    except Mem0Error as exc:
        form.add_error(None, exc.message)
        return render(request, "accounts/signup.html", context)
    if confirm:
        signupmail.send_confirmation(request, user)
        return render(request, "accounts/signup_sent.html")
    return _signed_in(request, user, org, raw)


def _signed_in(request, user, org, raw: str):
    login(request, user, backend=settings.AUTHENTICATION_BACKENDS[0])
    request.session["org_id"] = org.pk
    request.session["new_key"] = raw
    return redirect("console-quickstart")


@require_http_methods(["GET", "POST"])
def signup_confirm(request, token: str):
    """GET shows a button, POST activates: a mail scanner that fetches the link confirms nothing."""
    user = signupmail.user_for_token(token)
    if user is None:
        return render(request, "accounts/signup_confirm.html", {"valid": False}, status=400)
    if request.method == "POST":
        org, raw = services.signup_confirm(user=user, request=request)
        if org is not None:
            return _signed_in(request, user, org, raw)
    return render(request, "accounts/signup_confirm.html", {"valid": True})


def _next_url(request) -> str | None:
    """The `next` page to go to after signing in, if it is on this site (no open redirect)."""
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return None


@require_http_methods(["GET", "POST"])
def signin(request):
    """Sign in; refused with 429 and the wait while the account or the client address is locked out."""
    form = AuthenticationForm(request, data=request.POST or None)
    context = {"form": form}
    if request.method == "POST":
        locked = throttles.signin_locked_for(request, request.POST.get("username", ""))
        if locked:
            return _refused(request, "accounts/signin.html", context,
                            "Too many failed sign-in attempts for this account or from your address.", locked)
    if request.method == "POST" and form.is_valid():
        user = form.get_user()
        login(request, user)
        principal = principal_for_session(user)
        if principal is not None:
            request.session["org_id"] = principal.org.pk
        audit_record(org=principal.org if principal else None, action="user.sign_in", user=user,
                     request=request, target_type="user", target_id=str(user.pk))
        return redirect(_next_url(request) or "console-home")
    return render(request, "accounts/signin.html", context)


@require_POST
def signout(request):
    logout(request)
    return redirect("console-signin")


def home(request):
    """The dashboard; a visitor who is not signed in gets the landing page."""
    if not request.user.is_authenticated:
        return render(request, "console/landing.html")
    principal = _principal(request)
    if principal is None:
        return render(request, "accounts/no_org.html")
    usage = usage_report(principal.org, history_count=6)
    return render(request, "accounts/home.html", {"p": principal, "limits": effective_limits(principal.org),
                                                  "usage": usage, "meters": usage_display.meters(usage),
                                                  "charts": usage_display.charts(usage)})


@login_required
@require_http_methods(["GET", "POST"])
def keys(request):
    principal = _principal(request)
    if principal is None:
        return redirect("console-home")
    form = KeyCreateForm(request.POST or None)
    new_key = request.session.pop("new_key", None)
    if request.method == "POST" and form.is_valid():
        _, new_key = services.apikey_create(org=principal.org, name=form.cleaned_data["name"],
                                            scopes=form.cleaned_data["scopes"] or None, principal=principal,
                                            request=request)
        form = KeyCreateForm()
    return render(request, "accounts/keys.html", {
        "p": principal, "form": form, "new_key": new_key, "keys": selectors.keys_for_org(principal.org),
    })


@login_required
@require_POST
def key_revoke(request, key_id: int):
    principal = _principal(request)
    if principal is None:
        return redirect("console-home")
    try:
        key = selectors.key_by_id(principal.org, key_id)
    except NotFound:
        raise Http404("No such key.") from None
    services.apikey_revoke(key=key, principal=principal, request=request)
    messages.success(request, f"Key {key.name} revoked.")
    return redirect("console-keys")


@login_required
def audit(request):
    principal = _principal(request)
    if principal is None or not principal.is_admin:
        return render(request, "accounts/forbidden.html", status=403)
    action = request.GET.get("action") or None
    events = selectors.audit_for_org(principal.org, action=action)[:200]
    return render(request, "accounts/audit.html", {"p": principal, "events": events, "action": action or ""})
