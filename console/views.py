"""Console pages over the sandbox API: playground, sandboxes (list, page, kill), snapshot lineage, quickstart.

Pages are server-rendered; the playground and the lineage graph are small ES modules under static/console/
that call the public API (session-authenticated, CSRF token from the page) and the websocket."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.authentication import principal_for_session
from console import selectors
from mem0web.errors import Mem0Error, NotFound
from sandboxes import services
from sandboxes.models import Sandbox
from sandboxes.selectors import sandbox_by_id, sandboxes_for_org

PAGE_SIZE = 100


def _principal_or_none(request):
    return principal_for_session(request.user, request.session.get("org_id"))


def org_page(view):
    """A signed-in page of the user's organisation; without one, the dashboard explains."""

    @login_required
    def wrapped(request, *args, **kwargs):
        principal = _principal_or_none(request)
        if principal is None:
            return redirect("console-home")
        return view(request, principal, *args, **kwargs)

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return wrapped


@org_page
def playground(request, principal):
    return render(request, "console/playground.html", {"p": principal})


@org_page
def sandboxes(request, principal):
    """The organisation's sandboxes, filtered by state, runtime and `metadata.KEY=value` like the API."""
    state = request.GET.get("state") or None
    runtime = request.GET.get("runtime") or None
    metadata = {k[len("metadata."):]: v for k, v in request.GET.items() if k.startswith("metadata.") and v}
    meta_text = request.GET.get("metadata", "").strip()
    if "=" in meta_text:
        key, value = meta_text.split("=", 1)
        metadata[key.strip()] = value.strip()
    error = None
    try:
        rows = list(sandboxes_for_org(principal.org, state=state, runtime=runtime, metadata=metadata)
                    .order_by("-created_at")[:PAGE_SIZE])
    except Mem0Error as exc:
        rows, error = [], exc.message
    return render(request, "console/sandboxes.html", {
        "p": principal, "sandboxes": rows, "error": error, "states": Sandbox.State.values,
        "state": state or "", "runtime": runtime or "", "metadata": meta_text,
        "live_count": selectors.live_sandboxes(principal.org).count(), "page_size": PAGE_SIZE,
    })


def _sandbox_or_404(principal, sandbox_id: str) -> Sandbox:
    try:
        return sandbox_by_id(principal.org, sandbox_id)
    except NotFound:
        raise Http404("No such sandbox.") from None


@org_page
def sandbox_detail(request, principal, sandbox_id: str):
    sandbox = _sandbox_or_404(principal, sandbox_id)
    return render(request, "console/sandbox.html", {
        "p": principal, "sandbox": sandbox, "limits": sorted((sandbox.limits or {}).items()),
        "executions": selectors.executions_for_sandbox(principal.org, sandbox),
        "forks": selectors.forks_of(principal.org, sandbox),
        "snapshots": selectors.snapshots_of(principal.org, sandbox),
        "live": sandbox.state in selectors.LIVE_STATES,
    })


@org_page
@require_POST
def sandbox_kill(request, principal, sandbox_id: str):
    sandbox = _sandbox_or_404(principal, sandbox_id)
    try:
        services.sandbox_kill(principal=principal, sandbox=sandbox, request=request)
        messages.success(request, f"Sandbox {sandbox.pk} killed.")
    except Mem0Error as exc:
        messages.error(request, f"Could not kill {sandbox.pk}: {exc.message}")
    if request.POST.get("back") == "detail":
        return redirect("console-sandbox", sandbox_id=sandbox.pk)
    return redirect("console-sandboxes")


@org_page
@require_POST
def sandboxes_kill_all(request, principal):
    """Kill every live sandbox of the organisation (the page asks to confirm first)."""
    killed, failed = 0, []
    for sandbox in selectors.live_sandboxes(principal.org):
        try:
            services.sandbox_kill(principal=principal, sandbox=sandbox, request=request)
            killed += 1
        except Mem0Error as exc:
            failed.append(f"{sandbox.pk}: {exc.message}")
    messages.success(request, f"Killed {killed} sandbox{'es' if killed != 1 else ''}.")
    for line in failed:
        messages.error(request, f"Could not kill {line}")
    return redirect("console-sandboxes")


@org_page
def snapshots(request, principal):
    return render(request, "console/snapshots.html", {"p": principal})


@org_page
def quickstart(request, principal):
    """After sign-up: the new key (shown once, taken from the session) in SDK, CLI and curl snippets."""
    return render(request, "console/quickstart.html", {
        "p": principal, "new_key": request.session.pop("new_key", None),
        "base_url": request.build_absolute_uri("/").rstrip("/"),
    })
