"""Console pages for tenancy: sign up, sign in/out, dashboard, API keys, audit log."""

from django.contrib import messages
from django.contrib.auth import authenticate, login, logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors, services
from accounts.audit import audit_record
from accounts.authentication import principal_for_session
from accounts.forms import KeyCreateForm, SignupForm
from billing.selectors import effective_limits, usage_report
from mem0web.errors import Mem0Error, NotFound

USAGE_PANEL = ("concurrent_sandboxes", "executions", "cpu_ms", "sandbox_seconds", "storage_bytes")


def _principal(request):
    return principal_for_session(request.user, request.session.get("org_id"))


@require_http_methods(["GET", "POST"])
def signup(request):
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            org, user, raw = services.tenant_signup(username=data["username"], email=data["email"],
                                                    password=data["password"], org_name=data["organization"],
                                                    request=request)
        except Mem0Error as exc:
            form.add_error(None, exc.message)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            request.session["org_id"] = org.pk
            request.session["new_key"] = raw
            return redirect("console-keys")
    return render(request, "accounts/signup.html", {"form": form})


@require_http_methods(["GET", "POST"])
def signin(request):
    form = AuthenticationForm(request, data=request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = authenticate(request, username=form.cleaned_data["username"], password=form.cleaned_data["password"])
        if user is not None:
            login(request, user)
            principal = principal_for_session(user)
            if principal is not None:
                request.session["org_id"] = principal.org.pk
            audit_record(org=principal.org if principal else None, action="user.sign_in", user=user,
                         request=request, target_type="user", target_id=str(user.pk))
            return redirect(request.GET.get("next") or "console-home")
    return render(request, "accounts/signin.html", {"form": form})


@require_POST
def signout(request):
    logout(request)
    return redirect("console-signin")


@login_required
def home(request):
    principal = _principal(request)
    if principal is None:
        return render(request, "accounts/no_org.html")
    usage = usage_report(principal.org, history_count=6)
    meters = [{"name": name, **usage[name]} for name in USAGE_PANEL]
    return render(request, "accounts/home.html", {"p": principal, "limits": effective_limits(principal.org),
                                                  "usage": usage, "meters": meters})


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
