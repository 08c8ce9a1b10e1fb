"""Console pages for an organisation's members: the list, the invite form (admins) and accepting a link."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts import invites
from accounts.models import Membership
from console.views import org_page
from mem0web.errors import Mem0Error


@org_page
@require_http_methods(["GET", "POST"])
def members(request, principal):
    link = None
    if request.method == "POST":
        email = request.POST.get("email", "").strip()
        role = request.POST.get("role", Membership.Role.MEMBER)
        if "@" not in email or len(email) > 254:
            messages.error(request, "Enter the e-mail address to invite.")
        else:
            try:
                link = invites.member_invite(principal=principal, email=email, role=role, request=request)
                messages.success(request, f"Invitation sent to {email}.")
            except Mem0Error as exc:
                messages.error(request, exc.message)
    people = Membership.objects.filter(organization=principal.org).select_related("user").order_by("created_at")
    return render(request, "console/members.html", {"p": principal, "members": people, "link": link,
                                                    "roles": invites.INVITABLE_ROLES})


@login_required
@require_http_methods(["GET", "POST"])
def invite(request, token: str):
    """GET shows what the link offers; POST joins (a mail scanner fetching the link joins nothing)."""
    found = invites.invite_read(token)
    if request.method == "POST" and found is not None:
        try:
            membership = invites.invite_accept(user=request.user, token=token, request=request)
        except Mem0Error as exc:
            messages.error(request, exc.message)
        else:
            request.session["org_id"] = membership.organization_id
            messages.success(request, f"You joined {membership.organization.name} as {membership.role}.")
            return redirect("console-home")
    return render(request, "console/invite.html", {"found": found}, status=200 if found else 400)
