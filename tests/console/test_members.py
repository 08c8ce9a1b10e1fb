"""Members and invitations: an admin invites by e-mail (console backend), only that address can join."""

import re

from django.core import mail

from accounts import invites
from accounts.models import AuditEvent, Membership


def invite_link(client, org_a, email: str, role: str = "member") -> str:
    client.force_login(org_a[1])
    page = client.post("/members", {"email": email, "role": role}).content.decode()
    link = re.search(r'<code id="invite-link">([^<]+)</code>', page).group(1)
    assert link in mail.outbox[-1].body and mail.outbox[-1].to == [email]
    return link.split("testserver", 1)[1]


def test_admin_invites_and_the_invited_address_joins_with_its_role(client, org_a, django_user_model):
    path = invite_link(client, org_a, "Grace@Example.com", role="admin")
    assert AuditEvent.objects.filter(organization=org_a[0], action="member.invite").exists()
    grace = django_user_model.objects.create_user("grace", email="grace@example.com", password="a-long-password-1")
    client.force_login(grace)
    assert "Join org-a" in client.get(path).content.decode()
    assert not Membership.objects.filter(user=grace, organization=org_a[0]).exists()  # GET joins nothing
    assert client.post(path).status_code == 302
    assert Membership.objects.get(user=grace, organization=org_a[0]).role == "admin"
    assert client.get("/api/v1/me").json()["organization"]["slug"] == "org-a"
    assert "grace" in client.get("/members").content.decode()


def test_another_account_cannot_use_a_forwarded_link(client, org_a, django_user_model):
    path = invite_link(client, org_a, "grace@example.com")
    mallory = django_user_model.objects.create_user("mallory", email="m@example.com", password="a-long-password-1")
    client.force_login(mallory)
    page = client.post(path, follow=True).content.decode()
    assert "This invitation is for grace@example.com" in page
    assert not Membership.objects.filter(user=mallory).exists()


def test_a_member_cannot_invite_and_a_tampered_link_is_refused(client, org_a, django_user_model):
    member = django_user_model.objects.create_user("plain", email="p@example.com", password="a-long-password-1")
    Membership.objects.create(user=member, organization=org_a[0], role="member")
    client.force_login(member)
    page = client.post("/members", {"email": "x@example.com", "role": "member"}).content.decode()
    assert "Only owners and admins can invite." in page and not mail.outbox
    token = invites.invite_token(org=org_a[0], email="p@example.com", role="owner")  # not an invitable role
    assert client.get(f"/invite/{token}").status_code == 400
    assert client.get("/invite/not-a-token").status_code == 400
